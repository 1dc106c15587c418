"""What DVC records for a file: the md5 in the `.dvc` file or `dvc.lock` that tracks it.

A file is tracked by `<path>.dvc` of itself or of a parent directory, or as a stage output in a
`dvc.lock` beside a `dvc.yaml` anywhere from the repo root down to its folder. A file inside a
tracked directory has its md5 in the directory's listing (a `.dir` object in the DVC cache), which
exists only once pulled. Outputs added by DVC 2 are hashed `md5-dos2unix` (CRLF normalised).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from pipelines.errors import DataPullError
from pipelines.storage.hashing import file_digest


@dataclass(frozen=True)
class DvcRecord:
    """The md5 DVC records for one file, how it was computed, and which file records it."""

    md5: str
    algorithm: str  # "md5", or "md5-dos2unix" for legacy DVC 2 outputs
    source: str


# libyaml where PyYAML has it: a project's dvc.lock is read on every run's plan
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def find_record(repo_root: Path, target: PurePosixPath) -> DvcRecord | None:
    """The md5 a `.dvc` file or `dvc.lock` records for `target` (a file, maybe in a dir output).

    Looked up where DVC keeps them: `<path>.dvc` of the file or of a parent directory, and the
    `dvc.lock` beside any `dvc.yaml` from the repo root down to the file's folder.
    """
    candidates: list[Path] = []
    parents = [target, *[p for p in target.parents if p != PurePosixPath(".")]]
    candidates += [repo_root / f"{p}.dvc" for p in parents]
    candidates += [repo_root / p / "dvc.lock" for p in [PurePosixPath("."), *target.parents]]
    for meta in dict.fromkeys(candidates):
        if not meta.is_file():
            continue
        for out_path, out in _outs(meta):
            out_rel = _normalize(meta.parent.relative_to(repo_root) / out_path)
            record = _match(repo_root, meta, out_rel, out, target)
            if record:
                return record
    return None


def file_md5(path: Path, algorithm: str = "md5") -> str:
    """The hash DVC records for a file: plain md5, or DVC 2's md5 of CRLF-normalised text."""
    if algorithm == "md5-dos2unix":
        from dvc_data.hashfile.hash import file_md5 as dvc_file_md5

        return str(dvc_file_md5(str(path), name="md5-dos2unix"))
    return file_digest(path, "md5")


def inside(path: Path, root: Path) -> bool:
    """Whether `path` lies under `root`, compared as absolute paths (symlinks not resolved)."""
    return Path(os.path.abspath(path)).is_relative_to(Path(os.path.abspath(root)))


def relative(path: Path, root: Path) -> PurePosixPath:
    """`path` relative to `root` as DVC writes it ('/'-separated); `path` must be inside."""
    return PurePosixPath(Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix())


def _outs(meta: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        doc = yaml.load(meta.read_text(), Loader=_LOADER) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DataPullError(f"cannot read {meta.name}: {exc}", where=str(meta)) from None
    if meta.name == "dvc.lock":
        outs = [o for stage in (doc.get("stages") or {}).values() for o in stage.get("outs") or []]
    else:
        outs = doc.get("outs") or []
    for out in outs:
        if isinstance(out, dict) and out.get("path") and out.get("md5"):
            yield str(out["path"]), out


def _match(
    repo_root: Path, meta: Path, out_rel: PurePosixPath, out: dict[str, Any], target: PurePosixPath
) -> DvcRecord | None:
    algorithm = "md5" if out.get("hash") == "md5" else "md5-dos2unix"
    source = str(meta.relative_to(repo_root))
    md5 = str(out["md5"])
    if out_rel == target and not md5.endswith(".dir"):
        return DvcRecord(md5, algorithm, source)
    if md5.endswith(".dir") and out_rel in target.parents:
        relpath = str(target.relative_to(out_rel))
        listing = _dir_listing(repo_root, md5, algorithm)
        if not listing:  # tracked, but the directory's listing is not in the cache (not pulled)
            return DvcRecord(md5, algorithm, f"{source} ({out_rel}/)")
        for entry in listing:
            if entry.get("relpath") == relpath and entry.get("md5"):
                return DvcRecord(str(entry["md5"]), algorithm, f"{source} ({out_rel}/)")
    return None


def _dir_listing(repo_root: Path, md5: str, algorithm: str) -> list[dict[str, Any]]:
    """A directory output's file list: the `.dir` object in the repo's DVC cache, once pulled."""
    cache = repo_root / ".dvc" / "cache"
    obj = (cache / "files" / "md5" if algorithm == "md5" else cache) / md5[:2] / md5[2:]
    try:
        listing = json.loads(obj.read_text())
    except (OSError, ValueError):
        return []
    return listing if isinstance(listing, list) else []


def _normalize(path: Path | PurePosixPath) -> PurePosixPath:
    return PurePosixPath(os.path.normpath(path.as_posix()))
