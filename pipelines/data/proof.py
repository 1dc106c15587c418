"""Proof that a shard reads the bytes the plan hashed, however late and wherever it runs.

The plan hashes the file once (`prove_input`): whole-file sha256, each shard's byte span, the
Parquet footer, and for CSV the number of records counted from the bytes (so `reconcile_csv` in
`pipelines.data.read` can catch a parser that swallows lines). A shard checks its bytes before it
reads (`check_shard_bytes`) and that the file did not change while it read (`check_unchanged`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.data.source import InputInfo, Shard
from pipelines.errors import InputChangedError
from pipelines.storage.hashing import BLOCK, file_digest


@dataclass(frozen=True)
class InputProof:
    """What the planned bytes were, so a shard can prove it reads the same ones.

    Made in the single pass that hashes the file at plan time. A shard checks the file's size,
    its Parquet footer (row-group layout) and the sha256 of its own byte span before reading, and
    that the file did not change while it read; a CSV (one shard) is hashed whole again.
    """

    sha256: str
    size: int
    footer_sha256: str | None = None
    shard_sha256: tuple[str, ...] = ()
    csv_records: int | None = None  # records after the header (blank lines not counted)


def prove_input(info: InputInfo, shards: list[Shard]) -> InputProof:
    """Hash the file once: whole-file sha256, each shard's span, the footer, CSV records."""
    spans = [s.span or (0, 0) for s in shards if s.row_groups is not None]
    span_hashes = [hashlib.sha256() for _ in spans]
    whole = hashlib.sha256()
    lines = _LineCounter() if info.format == "csv" else None
    offset = 0
    with open(info.path, "rb") as fh:
        while block := fh.read(BLOCK):
            whole.update(block)
            if lines is not None:
                lines.feed(block)
            end = offset + len(block)
            for (a, b), h in zip(spans, span_hashes, strict=True):
                if a < end and b > offset:
                    h.update(block[max(a, offset) - offset : min(b, end) - offset])
            offset = end
    footer = _footer_sha256(info.path) if info.format == "parquet" else None
    return InputProof(
        sha256=whole.hexdigest(),
        size=offset,
        footer_sha256=footer,
        shard_sha256=tuple(h.hexdigest() for h in span_hashes),
        csv_records=lines.records() if lines is not None else None,
    )


def check_shard_bytes(info: InputInfo, shard: Shard, proof: InputProof) -> os.stat_result:
    """Refuse to read a shard whose bytes are not the ones planned; returns the file's stat.

    Raises InputChangedError (retryable: a re-pull may restore the file, a new plan will hash
    the new one). Pass the returned stat to `check_unchanged` once the shard has been read.
    """
    path = info.path
    try:
        st = path.stat()
    except FileNotFoundError:
        raise _changed(path, shard, "it no longer exists") from None
    if st.st_size != proof.size:
        raise _changed(path, shard, f"its size is {st.st_size:,} bytes, planned {proof.size:,}")
    if info.format == "parquet":
        if _footer_sha256(path) != proof.footer_sha256:
            raise _changed(path, shard, "its Parquet footer (row-group layout) differs")
        if shard.span is not None:
            a, b = shard.span
            if file_digest(path, "sha256", a, b) != proof.shard_sha256[shard.index]:
                raise _changed(path, shard, f"bytes {a:,}-{b:,} of this shard differ")
    elif file_digest(path, "sha256", 0, st.st_size) != proof.sha256:
        raise _changed(path, shard, "its sha256 differs")
    return st


def check_unchanged(info: InputInfo, shard: Shard, before: os.stat_result) -> None:
    """After reading: the file was not replaced or rewritten while the shard read it."""
    try:
        st = info.path.stat()
    except FileNotFoundError:
        raise _changed(info.path, shard, "it was deleted while the shard read it") from None
    if (st.st_ino, st.st_size, st.st_mtime_ns) != (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    ):
        raise _changed(info.path, shard, "it was modified while the shard read it")


def _changed(path: Path, shard: Shard, what: str) -> InputChangedError:
    return InputChangedError(
        f"input {path} changed after the run was planned ({what}); shard {shard.index} refuses "
        "to score bytes the plan did not hash",
        fix="retry once the file is back as planned (e.g. `dvc pull`), or start a new run so "
        "that the new file is planned and hashed",
    )


def _footer_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        fh.seek(-8, os.SEEK_END)
        length = int.from_bytes(fh.read(4), "little")
        fh.seek(-(length + 8), os.SEEK_END)
        return hashlib.sha256(fh.read(length + 8)).hexdigest()


class _LineCounter:
    """Counts a file's lines and blank lines from its bytes, block by block (numpy-fast)."""

    def __init__(self) -> None:
        self.newlines = 0
        self.blank = 0
        self.last_nl = -1  # absolute offset of the previous newline (-1: start of file)
        self.prev_cr = False  # byte before the current block's first byte was '\r'
        self.offset = 0
        self.last_byte = b""

    def feed(self, block: bytes) -> None:
        arr = np.frombuffer(block, np.uint8)
        nl = np.flatnonzero(arr == 10) + self.offset
        if nl.size:
            starts = np.concatenate(([self.last_nl], nl[:-1]))
            length = nl - starts - 1  # bytes between consecutive newlines
            blank = length == 0
            one = np.flatnonzero(length == 1)
            if one.size:  # "\r\n" alone is a blank line too
                pos = nl[one] - 1 - self.offset
                cr = np.where(pos >= 0, arr[np.maximum(pos, 0)] == 13, self.prev_cr)
                blank[one] = cr
            blank[0] &= self.last_nl >= 0  # the header line is never "blank"
            self.blank += int(blank.sum())
            self.newlines += nl.size
            self.last_nl = int(nl[-1])
        self.prev_cr = bool(arr.size and arr[-1] == 13)
        self.offset += len(block)
        self.last_byte = block[-1:]

    def records(self) -> int:
        lines = self.newlines + (1 if self.last_byte not in (b"\n", b"") else 0)
        return max(lines - self.blank - 1, 0)  # minus the header
