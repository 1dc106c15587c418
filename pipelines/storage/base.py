"""Object storage behind one small interface: a local folder (embedded default) or S3.

Keys are '/'-separated and relative to the output URI. The publish protocol
(`pipelines.publish.commit`) needs exactly four primitives from a backend: upload a file, write
small bytes *only if absent* (the commit), read, list and delete. Both backends give the same
guarantees: a single object write is atomic (a reader sees the whole object or none), and
`put_bytes(..., if_absent=True)` is a true create-if-absent, so two racing commits cannot both
win.

`LocalStore` is `pipelines.storage.local`, `S3Store` is `pipelines.storage.s3`, and the backend a
config names is `pipelines.storage.open.open_store`.
"""

from __future__ import annotations

import errno
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines.errors import LocalWriteError


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
        raise LocalWriteError(
            f"cannot write {where}: {reason}",
            fix="free space or fix the output folder's permissions (output.uri), then run "
            "again; nothing was published and the next run cleans up what this one staged",
        ) from None
