"""What may enter the registry: a skops file whose every type is trusted, never a pickle.

Checked before upload, so a version in the registry is always one `load_model` can open with the
same allow-list; nothing here deserializes the file (skops reads only its schema).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipelines.registry.errors import UnsafeArtifactError

PICKLE_SUFFIXES = {".pkl", ".pickle", ".joblib"}
ZIP_MAGIC = b"PK\x03\x04"


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_skops_file(path: Path, trusted_types: Sequence[str] = ()) -> None:
    """Refuse a pickle/joblib file, a non-skops file, or a skops file with untrusted types.

    `trusted_types` extends skops' own defaults (the project's list plus `model.trusted_types`).
    """
    if not path.is_file():
        raise UnsafeArtifactError(
            f"model file {path} not found", fix="give the path of a .skops file to register"
        )
    with open(path, "rb") as fh:
        head = fh.read(4)
    if path.suffix.lower() in PICKLE_SUFFIXES or head[:1] == b"\x80":
        raise UnsafeArtifactError(
            f"refusing to register {path.name}: it is a pickle/joblib file, which runs "
            "arbitrary code when loaded",
            where=str(path),
            fix="save the model with skops (`skops.io.dump(model, 'model.skops')`) and "
            "register that file",
        )
    if head != ZIP_MAGIC or not zipfile.is_zipfile(path):
        raise UnsafeArtifactError(
            f"{path.name} is not a skops file (no zip archive)",
            where=str(path),
            fix="register the file written by `skops.io.dump` or `batchscore train`",
        )
    untrusted = sorted(set(_untrusted(path)) - set(trusted_types))
    if untrusted:
        raise UnsafeArtifactError(
            f"{path.name} holds types skops does not trust: {', '.join(untrusted)}",
            where=str(path),
            fix="if you trust them, add them to model.trusted_types in params.yaml (or pass "
            "--trust TYPE); otherwise do not register this file",
        )


def _untrusted(path: Path) -> list[str]:
    import skops.io as sio

    try:
        return list(sio.get_untrusted_types(file=path))
    except Exception as exc:  # a damaged archive or schema: say so, never a deep traceback
        raise UnsafeArtifactError(
            f"{path.name} is not a readable skops file ({type(exc).__name__}: {exc})",
            where=str(path),
            fix="re-save the model with `skops.io.dump`",
        ) from None


def sklearn_version_in(path: Path, card: dict[str, Any] | None) -> str:
    """The scikit-learn version the model was saved with: the card's, else the file's state."""
    if card and card.get("sklearn_version"):
        return str(card["sklearn_version"])
    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return "unknown"
    return _find_version(schema) or "unknown"


def _find_version(node: Any) -> str | None:
    """The first `_sklearn_version` an estimator's saved state holds, anywhere in the schema."""
    if isinstance(node, dict):
        found = node.get("_sklearn_version")
        if isinstance(found, dict):
            found = found.get("content")
        if isinstance(found, str):
            return found.strip('"')  # skops stores a str's content JSON-quoted
        children: Any = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        if (version := _find_version(child)) is not None:
            return version
    return None
