"""Object storage behind one small interface: a local folder (embedded default) or S3.

Keys are '/'-separated and relative to the output URI. The publish protocol (`publish.py`) needs
exactly four primitives from a backend: upload a file, write small bytes *only if absent* (the
commit), read, list and delete. Both backends give the same guarantees: a single object write is
atomic (a reader sees the whole object or none), and `put_bytes(..., if_absent=True)` is a true
create-if-absent, so two racing commits cannot both win.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines.config import Settings
from pipelines.errors import StorageError


class ObjectStore(ABC):
    """What the publish protocol needs from a backend."""

    uri: str

    @abstractmethod
    def put_file(self, local: Path, key: str) -> None:
        """Upload a local file to `key`, replacing it atomically."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        """Write `data` to `key`. With `if_absent`, write nothing and return False if it exists."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes | None:
        """The object's bytes, or None if there is no such key."""

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """All keys under `prefix`, sorted."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Delete keys; missing keys are not an error."""

    @abstractmethod
    def modified_at(self, key: str) -> float | None:
        """Last-modified time (epoch seconds), or None if absent."""

    def cleanup_incomplete(self, prefix: str, older_than_s: float) -> int:
        """Remove half-written uploads under `prefix` (orphaned multipart uploads, temp files)."""
        return 0

    def url(self, key: str) -> str:
        return f"{self.uri}/{key}"

    def local_path(self, key: str) -> Path | None:
        """Where `key` lives on disk, if the backend is a local folder (writers skip a copy)."""
        return None


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


@contextmanager
def writing(where: str) -> Iterator[None]:
    """Turn a local write's OSError (disk full, read-only, no permission) into a StorageError
    that says what happened and what to do, instead of a traceback."""
    try:
        yield
    except OSError as exc:
        reason = {
            errno.ENOSPC: "the disk is full",
            errno.EDQUOT: "the disk quota is exhausted",
            errno.EROFS: "the file system is read-only",
            errno.EACCES: "permission denied",
            errno.EPERM: "permission denied",
        }.get(exc.errno or 0, exc.strerror or str(exc))
        raise StorageError(
            f"cannot write {where}: {reason}",
            fix="free space or fix the output folder's permissions (output.uri), then run "
            "again; nothing was published and the next run cleans up what this one staged",
        ) from None


def open_store(cfg: Settings) -> ObjectStore:
    """The backend the output URI names; `s3://` needs no code change, only the URI."""
    uri = cfg.output.uri
    if uri.startswith("file://"):
        return LocalStore(Path(uri.removeprefix("file://")))
    from pipelines.storage.s3 import S3Store  # boto3 only when asked for

    return S3Store.from_config(cfg)


def sha256_file(path: Path, bufsize: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(bufsize):
            h.update(chunk)
    return h.hexdigest()
