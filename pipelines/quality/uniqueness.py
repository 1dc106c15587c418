"""Exact ID uniqueness over any number of rows, in memory bounded by the shard, not the input.

Each ID becomes a uint64 hash. Integer IDs go through splitmix64's finalizer, a bijection on 64-bit
words: two different integers never share a hash, so the check is exact and a duplicate's hash can
be turned back into the ID for the report. Other IDs (text, ...) use pandas' `hash_array` (SipHash
with a fixed key, so the same across processes and machines); two different IDs then collide with
probability about n**2 / 2**65 for n IDs (~3e-8 at 1 billion): a false "duplicate" that rare is
acceptable, a missed duplicate is impossible.

Each shard keeps one sorted uint64 array (8 bytes per row of the shard; the caller saves it as a
`.npy` part). `find_duplicates` merges any number of parts bucket by bucket on the hash's top bits:
well-mixed hashes spread evenly, so a bucket holds about N / 2**bits hashes, and
`np.searchsorted` on each sorted part (a read-only `np.memmap` is fine) reads just that slice.
Peak memory is about 8 * N / 2**bits bytes whatever N is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1_INV = np.uint64(pow(0xBF58476D1CE4E5B9, -1, 1 << 64))
_M2_INV = np.uint64(pow(0x94D049BB133111EB, -1, 1 << 64))
TARGET_BUCKET_ROWS = 1 << 20  # hashes per merge bucket: ~8 MB


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: a bijection on uint64 (xor-shifts and odd multipliers invert)."""
    z = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z += _GOLDEN
        z ^= z >> np.uint64(30)
        z *= _M1
        z ^= z >> np.uint64(27)
        z *= _M2
        z ^= z >> np.uint64(31)
    return z


def unmix64(h: np.ndarray) -> np.ndarray:
    """Inverse of `mix64`: recovers integer IDs from their hashes (for reporting duplicates)."""
    z = np.asarray(h, dtype=np.uint64).copy()
    with np.errstate(over="ignore"):
        z = _unshift(z, 31)
        z *= _M2_INV
        z = _unshift(z, 27)
        z *= _M1_INV
        z = _unshift(z, 30)
        z -= _GOLDEN
    return z


def _unshift(y: np.ndarray, s: int) -> np.ndarray:
    x = y.copy()
    for _ in range(64 // s + 1):
        x = y ^ (x >> np.uint64(s))
    return x


def hash_ids(values: pd.Series | np.ndarray) -> tuple[np.ndarray, str]:
    """Hash non-null IDs to uint64; returns (hashes, kind) with kind "int" (exact) or "hash".

    Floats that are all whole numbers count as integers: pandas turns an int64 column with a
    missing value into float64, and 5 must hash the same in a batch with gaps and one without.
    Nulls must be dropped by the caller (they are not IDs; the not-null expectation routes them).
    """
    arr = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if arr.dtype.kind in "iu":
        return mix64(arr.astype(np.int64, copy=False).view(np.uint64)), "int"
    if arr.dtype.kind == "f" and arr.size:
        finite = np.isfinite(arr).all()
        if finite and (np.abs(arr) < 2.0**63).all() and (arr == np.floor(arr)).all():
            return mix64(arr.astype(np.int64).view(np.uint64)), "int"
    if arr.dtype.kind == "f" and not arr.size:
        return np.empty(0, np.uint64), "int"
    obj = arr if arr.dtype == object else arr.astype(object)
    return pd.util.hash_array(obj, categorize=False).astype(np.uint64, copy=False), "hash"


@dataclass
class IdHashCollector:
    """Collects one shard's ID hashes batch by batch; `sorted()` gives the shard's part."""

    kinds: set[str] = field(default_factory=set)
    _parts: list[np.ndarray] = field(default_factory=list)
    _sorted: np.ndarray | None = None

    def add(self, ids: pd.Series) -> np.ndarray:
        """Hash the non-null IDs of one batch; returns this batch's hashes, sorted."""
        present = ids[ids.notna()]
        hashes, kind = hash_ids(present)
        if len(hashes):
            self.kinds.add(kind)
        hashes.sort()
        self._parts.append(hashes)
        self._sorted = None
        return hashes

    @property
    def kind(self) -> str:
        """Kind "int" when every ID was an integer (exact, invertible); "hash" otherwise."""
        return "int" if self.kinds <= {"int"} else "hash"

    def sorted(self) -> np.ndarray:
        if self._sorted is None:
            merged = np.concatenate(self._parts) if self._parts else np.empty(0, np.uint64)
            merged.sort(kind="stable")  # runs of sorted batches: timsort merges them cheaply
            self._parts = [merged]
            self._sorted = merged
        return self._sorted


@dataclass(frozen=True)
class DuplicateReport:
    """What the merge found: `values` duplicated IDs spread over `rows` rows."""

    values: int
    rows: int
    total: int
    examples: list[int]  # hashes of up to `max_examples` duplicated IDs
    buckets: int

    @property
    def ok(self) -> bool:
        return self.values == 0


def bucket_bits_for(total: int, target: int = TARGET_BUCKET_ROWS) -> int:
    """Smallest number of top bits that keeps a bucket under `target` hashes (max 20)."""
    bits = 0
    while (total >> bits) > target and bits < 20:
        bits += 1
    return bits


def find_duplicates(
    parts: Sequence[np.ndarray],
    bucket_bits: int | None = None,
    max_examples: int = 20,
) -> DuplicateReport:
    """Exact duplicate count over sorted uint64 parts (in memory or `np.memmap`), bucket by bucket.

    Each part must be sorted ascending (as `IdHashCollector.sorted()` returns it); this is
    checked cheaply on each bucket slice, since an unsorted part would hide duplicates.
    """
    total = int(sum(len(p) for p in parts))
    bits = bucket_bits_for(total) if bucket_bits is None else bucket_bits
    shift = 64 - bits
    values = rows = 0
    examples: list[int] = []
    starts = [0] * len(parts)
    for bucket in range(1 << bits):
        slices = []
        for i, part in enumerate(parts):
            if bucket == (1 << bits) - 1:
                end = len(part)
            else:
                bound = np.uint64((bucket + 1) << shift) if bits else None
                end = len(part) if bound is None else int(np.searchsorted(part, bound, "left"))
            if end > starts[i]:
                chunk = np.asarray(part[starts[i] : end])
                if len(chunk) > 1 and (chunk[1:] < chunk[:-1]).any():
                    raise ValueError(f"ID hash part {i} is not sorted; sort it before merging")
                slices.append(chunk)
            starts[i] = end
        if not slices:
            continue
        merged = np.concatenate(slices) if len(slices) > 1 else slices[0].copy()
        merged.sort(kind="stable")
        if len(merged) < 2:
            continue
        same = merged[1:] == merged[:-1]
        if not same.any():
            continue
        # a run of k equal hashes is k rows and 1 duplicated value
        starts_of_runs = same & ~np.concatenate(([False], same[:-1]))
        values += int(starts_of_runs.sum())
        rows += int(same.sum() + starts_of_runs.sum())
        if len(examples) < max_examples:
            picked = merged[1:][starts_of_runs][: max_examples - len(examples)]
            examples.extend(int(h) for h in picked)
    return DuplicateReport(values, rows, total, examples, 1 << bits)


def save_part(path: Path, hashes: np.ndarray) -> Path:
    """Write one shard's sorted hashes as `.npy` (memory-mappable by `load_parts`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ascontiguousarray(hashes, dtype=np.uint64))
    return path


def load_parts(paths: Iterable[Path]) -> list[np.ndarray]:
    """Open saved parts read-only and memory-mapped: nothing is read until a bucket needs it."""
    parts = []
    for p in paths:
        try:
            parts.append(np.load(p, mmap_mode="r"))
        except ValueError:  # an empty array cannot be memory-mapped
            parts.append(np.load(p))
    return parts
