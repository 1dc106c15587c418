"""File digests, streamed: the one place a file's bytes are hashed (input, model pin, DVC md5)."""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 1 << 20


def file_digest(
    path: Path, algorithm: str = "sha256", start: int = 0, end: int | None = None
) -> str:
    """Hex digest of `path`'s bytes `[start, end)` (default: the whole file), 1 MiB at a time."""
    h = (
        hashlib.new(algorithm, usedforsecurity=False)
        if algorithm == "md5"
        else hashlib.new(algorithm)
    )
    with open(path, "rb") as fh:
        fh.seek(start)
        left = None if end is None else end - start
        while left is None or left > 0:
            block = fh.read(BLOCK if left is None else min(BLOCK, left))
            if not block:
                break
            h.update(block)
            if left is not None:
                left -= len(block)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a whole file."""
    return file_digest(path, "sha256")
