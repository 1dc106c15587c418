"""The pinned model, verified and deserialized once per process while its file is unchanged."""

from __future__ import annotations

from typing import Any

from pipelines.config import Settings
from pipelines.model.artifact import LoadedModel, load_model
from pipelines.storage.hashing import sha256_file

_models: dict[tuple[Any, ...], LoadedModel] = {}


def load_pinned_model(cfg: Settings) -> LoadedModel:
    """The verified model, deserialized once per process for as long as the file is unchanged.

    The file is hashed again on every call, so a model swapped between shards is never reused.
    """
    path = cfg.model.path
    digest = sha256_file(path) if path.is_file() else None
    key = (path, digest, cfg.model.sha256, cfg.model.card_path, tuple(cfg.model.trusted_types))
    if key not in _models:
        model = load_model(
            path,
            pinned_sha256=cfg.model.sha256,
            card_path=cfg.model.card_path,
            trusted_types=cfg.model.trusted_types,
        )
        _models.clear()
        _models[key] = model
    return _models[key]
