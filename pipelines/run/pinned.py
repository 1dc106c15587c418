"""Which model a run scores with, pinned at plan time and loaded the same way on every worker.

A model source is a file path or a registry URI (`models:/NAME@ALIAS`, `models:/NAME/VERSION`).
The plan resolves it once into a `ModelSpec` (an alias is read there and never again): the local
file or the registry pin, and the sha256 nothing is deserialized without. Every shard, on any
worker, loads exactly that spec: a registry version is fetched by its number (never by alias)
into a local cache and verified before deserializing. Deserialized models are kept per process
for as long as their file is unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pipelines.config import Settings, card_path_for
from pipelines.model.artifact import LoadedModel, load_model
from pipelines.storage.hashing import sha256_file

REGISTRY_SCHEME = "models:/"
CACHE_ENV = "BATCHSCORE_CACHE"  # where registry versions are fetched (default ~/.cache/batchscore)
_models: dict[tuple[Any, ...], LoadedModel] = {}


class ModelSpec(BaseModel):
    """A model as the plan pins it (JSON, so it travels over XCom to every shard task)."""

    source: str  # as given: a path or a models:/ URI
    path: str  # the local file (a registry version: its fetched copy where the plan ran)
    sha256: str | None  # the pin; None only before the plan has loaded it (then: the card's)
    card: str | None = None
    baseline: str | None = None  # a registry version's baseline artifact, if it has one
    trusted_types: list[str] = []
    pin: dict[str, Any] | None = None  # a registry version: its ModelPin

    @property
    def registry(self) -> dict[str, Any] | None:
        """What the manifest records of a registry model: name, version, alias, URIs."""
        if self.pin is None:
            return None
        keys = ("name", "version", "alias", "registry_uri", "source_uri")
        return {k: self.pin[k] for k in keys}


def is_registry_uri(source: str | Path | None) -> bool:
    return isinstance(source, str) and source.startswith(REGISTRY_SCHEME)


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "batchscore") / "models"


def champion_spec(cfg: Settings) -> ModelSpec:
    """The run's model before the plan pins it: `model.uri` if set, else `model.path`."""
    if cfg.model.uri and is_registry_uri(cfg.model.uri):
        return _registry_spec(cfg, cfg.model.uri)
    path = _local(cfg, cfg.model.uri) if cfg.model.uri else cfg.model.path
    card = cfg.model.card_path if not cfg.model.uri else cfg.model.card or card_path_for(path)
    return ModelSpec(
        source=str(path),
        path=str(path),
        sha256=cfg.model.sha256,
        card=str(card),
        trusted_types=list(cfg.model.trusted_types),
    )


def challenger_spec(cfg: Settings) -> ModelSpec | None:
    """The shadow model (`model.challenger`), pinned by its registry version or its card."""
    source = cfg.model.challenger
    if not source:
        return None
    if is_registry_uri(source):
        return _registry_spec(cfg, source)
    path = _local(cfg, source)
    return ModelSpec(
        source=str(path),
        path=str(path),
        sha256=None,
        card=str(card_path_for(path)),
        trusted_types=list(cfg.model.trusted_types),
    )


def pinned(spec: ModelSpec, model: LoadedModel) -> ModelSpec:
    """The spec with the sha256 of the bytes the plan verified: shards load exactly those."""
    return spec.model_copy(update={"sha256": model.sha256})


def load_spec(cfg: Settings, spec: ModelSpec) -> LoadedModel:
    """The verified model, deserialized once per process for as long as the file is unchanged.

    The file is hashed again on every call, so a model swapped between shards is never reused.
    The plan's spec (pinned by the card) and the shards' (pinned by the sha256 the plan verified)
    share one entry: the same bytes, so the same model (it used to be deserialized twice).
    """
    path, card = Path(spec.path), Path(spec.card) if spec.card else None
    if spec.pin is not None:
        fetched = _fetch(cfg, spec)
        path, card = fetched.model_path, fetched.card_path
    digest = sha256_file(path) if path.is_file() else None
    key = (path, digest, card, tuple(spec.trusted_types))
    if key not in _models or spec.sha256 not in (None, _models[key].sha256):
        model = load_model(
            path,
            pinned_sha256=spec.sha256,
            card_path=card,
            trusted_types=spec.trusted_types,
        )
        if len(_models) > 1:  # a champion and a challenger at most
            _models.clear()
        _models[key] = model
    return _models[key]


def load_pinned_model(cfg: Settings) -> LoadedModel:
    """The run's model as configured (resolving an alias now): for callers without a plan."""
    return load_spec(cfg, champion_spec(cfg))


def _local(cfg: Settings, source: str) -> Path:
    path = Path(source).expanduser()
    return path if path.is_absolute() else (cfg.root / path).resolve()


def _registry_spec(cfg: Settings, uri: str) -> ModelSpec:
    """Resolve the alias (once, here) and fetch the pinned version on this machine."""
    from pipelines.registry.pin import resolve

    pin = resolve(uri, cfg.registry, cfg.root)
    spec = ModelSpec(
        source=uri,
        path="",
        sha256=pin.sha256,
        trusted_types=list(cfg.model.trusted_types),
        pin=pin.model_dump(),
    )
    fetched = _fetch(cfg, spec)
    return spec.model_copy(
        update={
            "path": str(fetched.model_path),
            "card": str(fetched.card_path) if fetched.card_path else None,
            "baseline": str(fetched.baseline_path) if fetched.baseline_path else None,
        }
    )


def _fetch(cfg: Settings, spec: ModelSpec) -> Any:
    from pipelines.registry.pin import ModelPin, fetch

    return fetch(ModelPin(**(spec.pin or {})), cfg.registry, cfg.root, cache_dir())
