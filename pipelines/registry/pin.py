"""Pin a registry model once (`resolve`) and fetch exactly that version anywhere (`fetch`).

The run plan resolves `models:/NAME@ALIAS` once; the pin (name, version, sha256) travels with
the plan, and every shard fetches that version by number, never through the alias, so an alias
moved mid-run changes nothing. `fetch` verifies the bytes against the pin before returning a
path: a tampered artifact never reaches a deserializer.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.errors import ConfigError, ModelIntegrityError
from pipelines.registry.client import Registry, error_code, open_registry, translated
from pipelines.registry.errors import RegistryError
from pipelines.registry.safety import sha256_of
from pipelines.registry.settings import RegistrySettings
from pipelines.registry.uri import RegistryRef, parse_model_uri
from pipelines.registry.versions import FILE_TAG, SHA_TAG, TAG, get_model, get_version

QUARANTINE = "quarantine"


class ModelPin(BaseModel):
    """A registry model pinned for one run: what the plan records and every shard fetches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: int = Field(ge=1)
    alias: str | None
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    registry_uri: str  # redacted
    source_uri: str  # the models:/ URI as given
    file: str

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> ModelPin:
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise ConfigError(
                f"not a model pin: {exc.errors()[0]['msg']} ({exc.errors()[0]['loc']})",
                fix="pass the JSON that ModelPin.to_json() wrote at plan time",
            ) from None


@dataclass(frozen=True)
class FetchedModel:
    """A verified local copy of a pinned version: the model file and its sidecars, if any."""

    model_path: Path
    card_path: Path | None
    baseline_path: Path | None


def resolve(uri: str, settings: RegistrySettings, root: Path) -> ModelPin:
    """Read `models:/NAME@ALIAS` (the alias, once) or `models:/NAME/VERSION` into a pin."""
    ref = parse_model_uri(uri)
    if not isinstance(ref, RegistryRef):
        raise ConfigError(
            f"{uri!r} is a file path, not a registry model",
            fix="resolve only models:/NAME@ALIAS or models:/NAME/VERSION; a path is pinned by "
            "model.sha256",
        )
    registry = open_registry(settings, root)
    if ref.alias:
        version = _by_alias(registry, ref)
    else:
        version = get_version(registry, ref.name, int(ref.version or 0))
    tags = version.tags or {}
    if not tags.get(SHA_TAG) or not tags.get(FILE_TAG):
        raise RegistryError(
            f"version {version.version} of {ref.name} was not registered by batchscore "
            "(it has no batchscore.sha256 / batchscore.file tag), so it cannot be pinned",
            where=registry.endpoint.shown,
            fix="register the skops file with `batchscore model register PATH --name NAME` and "
            "promote that version",
        )
    return ModelPin(
        name=ref.name,
        version=int(version.version),
        alias=ref.alias,
        sha256=tags[SHA_TAG],
        registry_uri=registry.endpoint.shown,
        source_uri=uri,
        file=tags[FILE_TAG],
    )


def _by_alias(registry: Registry, ref: RegistryRef) -> Any:
    from mlflow.exceptions import MlflowException

    model = get_model(registry, ref.name)  # an unknown name lists the known ones
    with translated(registry.endpoint, f"resolving {ref}"):
        try:
            return registry.client.get_model_version_by_alias(ref.name, ref.alias)
        except MlflowException as exc:
            if error_code(exc) not in {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"}:
                raise
    aliases = ", ".join(f"{a} (v{v})" for a, v in sorted((model.aliases or {}).items()))
    raise RegistryError(
        f"model {ref.name!r} has no alias {ref.alias!r} (aliases: {aliases or 'none'})",
        where=registry.endpoint.shown,
        fix=f"use one of them, or promote a version: batchscore model promote {ref.name} "
        f"VERSION --alias {ref.alias}",
    )


def fetch(pin: ModelPin, settings: RegistrySettings, root: Path, cache_dir: Path) -> FetchedModel:
    """The pinned version's files under `cache_dir/<name>/<version>-<sha256[:12]>/`, verified.

    A complete earlier download is reused after its sha256 is checked again; a download whose
    model file does not match the pin is moved to `<name>/quarantine/` and refused.
    """
    folder = cache_dir / _safe(pin.name)
    target = folder / f"{pin.version}-{pin.sha256[:12]}"
    if (cached := _verified(target, pin, folder)) is not None:
        return cached
    registry = open_registry(settings, root)
    version = get_version(registry, pin.name, pin.version)
    tagged = (version.tags or {}).get(SHA_TAG)
    if tagged != pin.sha256:
        raise ModelIntegrityError(
            f"version {pin.version} of {pin.name} is now tagged sha256 {tagged}, but the run "
            f"pinned {pin.sha256}; refusing to fetch it",
            where=registry.endpoint.shown,
            fix="someone re-tagged this version; re-plan the run to pin the registry's current "
            "state, or restore the version's batchscore.sha256 tag",
        )
    partial = folder / f".partial-{pin.version}-{uuid.uuid4().hex[:8]}"
    partial.mkdir(parents=True)
    try:
        downloaded = _download(registry, version.source, partial)
        _check_download(downloaded, pin, version.tags or {}, folder)
        with contextlib.suppress(OSError):  # another worker renamed its same copy first
            downloaded.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    found = _verified(target, pin, folder)
    if found is None:
        raise ModelIntegrityError(
            f"version {pin.version} of {pin.name} vanished from {target} right after download",
            fix="check that nothing else cleans the model cache while runs are going; rerun",
        )
    return found


def _download(registry: Registry, source: str, into: Path) -> Path:
    from mlflow.artifacts import download_artifacts

    with translated(registry.endpoint, f"downloading {source}"):
        local = download_artifacts(
            artifact_uri=source, dst_path=str(into), tracking_uri=registry.endpoint.tracking_uri
        )
    return Path(local)


def _check_download(folder: Path, pin: ModelPin, tags: dict[str, str], cache: Path) -> None:
    """The model file must match the pin, the sidecars their tags; else quarantine and refuse."""
    model = folder / pin.file
    actual = sha256_of(model) if model.is_file() else "missing"
    if actual != pin.sha256:
        kept = _quarantine(folder, cache, pin, actual)
        raise ModelIntegrityError(
            f"version {pin.version} of {pin.name}: the registry's {pin.file} has sha256 "
            f"{actual}, but the pin is {pin.sha256}; refusing it (nothing was loaded; "
            f"the download is kept in {kept})",
            where=pin.registry_uri,
            fix="the artifact in the registry was changed or damaged: restore it from a backup "
            "or register the model again and promote the new version",
        )
    for kind in ("card", "baseline"):
        name, expected = tags.get(f"{TAG}{kind}"), tags.get(f"{TAG}{kind}_sha256")
        if name and expected and (got := _digest(folder / name)) != expected:
            kept = _quarantine(folder, cache, pin, pin.sha256)
            raise ModelIntegrityError(
                f"version {pin.version} of {pin.name}: its {kind} {name} has sha256 {got}, "
                f"but was registered as {expected}; refusing it (kept in {kept})",
                where=pin.registry_uri,
                fix=f"restore the {kind} artifact, or register the model again",
            )


def _verified(target: Path, pin: ModelPin, cache: Path) -> FetchedModel | None:
    """A cached copy whose model file still matches the pin; a damaged one is quarantined."""
    model = target / pin.file
    if not model.is_file():
        if target.exists():  # a half-made copy someone left: out of the way
            _quarantine(target, cache, pin, "incomplete")
        return None
    if (actual := sha256_of(model)) != pin.sha256:
        _quarantine(target, cache, pin, actual)
        return None
    stem = pin.file.split(".")[0]
    card, baseline = target / f"{stem}.card.json", target / f"{stem}.baseline.json"
    return FetchedModel(model, _present(card), _present(baseline))


def _present(path: Path) -> Path | None:
    return path if path.is_file() else None


def _quarantine(folder: Path, cache: Path, pin: ModelPin, actual: str) -> Path:
    kept = cache / QUARANTINE / f"{pin.version}-{actual[:12]}-{uuid.uuid4().hex[:8]}"
    kept.parent.mkdir(parents=True, exist_ok=True)
    folder.rename(kept)
    return kept


def _digest(path: Path) -> str:
    return sha256_of(path) if path.is_file() else "missing"


def _safe(name: str) -> str:
    """A model name as one folder name (MLflow names may hold '/' or spaces)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "_"
