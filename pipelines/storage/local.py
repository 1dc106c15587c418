"""A local folder standing in for a bucket, with the same guarantees as S3.

A write goes to a temp file beside the target, then `os.replace` (atomic overwrite) or `os.link`
(atomic create-if-absent: fails if the name exists, with the full content already in place). So a
reader never sees half a file and two racing commits cannot both win.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from pipelines.errors import StorageError
from pipelines.storage.base import ObjectStore, writing


class LocalStore(ObjectStore):
    """A folder standing in for a bucket. Writes go to a temp file then `os.replace`/`os.link`."""

    def __init__(self, root: Path) -> None:
        # Resolved once: a folder reached through a symlink or `..` is the folder it names, so
        # every key below it (written, listed, cleaned up after the commit) is relative to one
        # real path.
        self.root = root.resolve()
        self.uri = f"file://{self.root}"

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents and path != self.root:
            raise StorageError(f"key {key!r} escapes the output folder {self.root}")
        return path

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def _tmp(self, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        os.close(fd)
        return Path(name)

    def put_file(self, local: Path, key: str) -> None:
        dest = self._path(key)
        if dest == local.resolve():
            return
        with writing(self.url(key)):
            tmp = self._tmp(dest)
            try:
                shutil.copyfile(local, tmp)
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        with writing(self.url(key)):
            return self._put_bytes(key, data, if_absent=if_absent)

    def _put_bytes(self, key: str, data: bytes, *, if_absent: bool) -> bool:
        dest = self._path(key)
        tmp = self._tmp(dest)
        try:
            tmp.write_bytes(data)
            if not if_absent:
                os.replace(tmp, dest)
                return True
            try:
                os.link(tmp, dest)  # atomic create-if-absent with the full content in place
            except FileExistsError:
                return False
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def list_keys(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if base.is_file():
            return [prefix]
        keys = []
        for folder, _, files in os.walk(base):  # tolerates folders removed while we walk
            for name in files:
                if not name.endswith(".tmp"):
                    keys.append((Path(folder) / name).relative_to(self.root).as_posix())
        return sorted(keys)

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            for parent in path.parents:  # prune now-empty folders, like S3 has none
                if parent == self.root:
                    break
                try:
                    parent.rmdir()
                except OSError:  # not empty, or removed by a concurrent delete
                    break

    def modified_at(self, key: str) -> float | None:
        try:
            return self._path(key).stat().st_mtime
        except FileNotFoundError:
            return None

    def cleanup_incomplete(self, prefix: str, older_than_s: float) -> int:
        base = self._path(prefix) if prefix else self.root
        cutoff, removed = time.time() - older_than_s, 0
        for tmp in base.rglob("*.tmp") if base.is_dir() else []:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed
