"""Importing `skops.io` without importing all of scikit-learn (and pytest) every time.

When `skops.io` is imported it builds its default trusted list from
`sklearn.utils.all_estimators()`, which imports every scikit-learn module (and, through
`sklearn.utils._testing`, pytest): ~0.3 s of every process's start-up, a pool worker's or an
Airflow task's alike, for a list of ~200 names that only changes with the library versions.

The first import in an environment runs the real thing and stores the names it produced, keyed
by the scikit-learn, skops and Python versions. Later imports hand skops those same names
(`all_estimators` answers with placeholder classes of the same module and name, for the length
of the import only) and check that the trusted list skops built equals the stored one. A
missing, stale or unreadable cache file, or one naming anything outside `sklearn.`, means the
real import: never a guessed list. The file sits in the user's own cache folder (mode 0600).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any

CACHE_ENV = "BATCHSCORE_CACHE"


def import_skops() -> ModuleType:
    """`skops.io`, imported as cheaply as the cache allows (see the module docstring)."""
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    path = cache_path()
    names = _read(path)
    if names is None:
        import skops.io

        _write(path, _trusted_names())
        return skops.io
    with _estimators_named(names):
        import skops.io
    if _trusted_names() != names:  # skops built its list otherwise than we assumed
        raise RuntimeError(f"skops' trusted list differs from {path}; delete that file")
    return skops.io


def cache_path() -> Path:
    """The names' cache file for the installed versions."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "batchscore")
    key = "-".join(
        [
            f"sklearn{version('scikit-learn')}",
            f"skops{version('skops')}",
            f"py{sys.version_info.major}.{sys.version_info.minor}",
        ]
    )
    return root / "skops" / f"trusted-estimators-{key}.json"


def _trusted_names() -> list[str]:
    from skops.io import _trusted_types

    return list(_trusted_types.SKLEARN_ESTIMATOR_TYPE_NAMES)


def _read(path: Path) -> list[str] | None:
    try:
        names = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(names, list) or not names:
        return None
    if not all(isinstance(n, str) and n.startswith("sklearn.") for n in names):
        return None  # skops trusts scikit-learn's own estimators only: anything else is not ours
    return names


def _write(path: Path, names: list[str]) -> None:
    """Store atomically (a temp file renamed); a read-only home only costs the speed-up."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(names))
        tmp.chmod(0o600)
        tmp.replace(path)
    except OSError:
        pass


@contextmanager
def _estimators_named(names: list[str]) -> Iterator[None]:
    """`sklearn.utils.all_estimators` answers with placeholders named `names`, for a while."""
    import sklearn.utils

    real = sklearn.utils.all_estimators

    def placeholders(*args: Any, **kwargs: Any) -> list[tuple[str, type]]:
        out = []
        for name in names:
            module, _, cls = name.rpartition(".")
            out.append((cls, type(cls, (), {"__module__": module})))
        return out

    sklearn.utils.all_estimators = placeholders  # type: ignore[assignment]
    try:
        yield
    finally:
        sklearn.utils.all_estimators = real
