"""Counting a text column against the baseline's categories without hashing every row.

Hashing (Arrow's `dictionary_encode`) costs about 15 ns a row, most of drift monitoring's time
on a table with a few text columns. Categories are usually short words, so when every row of a
batch is at most 8 bytes, each row's bytes are read from the Arrow buffers as one uint64 and
compared, with its length, to each category's: a few vectorized passes per category. Rows no
category matched (values the baseline never saw) are few; only they are hashed, to name them.
Any other batch (longer values, many categories) takes the hashing path; both give the same
counts, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.monitoring.bins import as_text

WORD = 8  # bytes compared at once: values up to this long take the fast path
MAX_FAST = 16  # categories compared one by one; with more, hashing is cheaper
Counted = tuple[np.ndarray, int, dict[str, int]]  # counts (+ other), missing, unseen by name
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(WORD + 1)], dtype=np.uint64)


def _word(text: str) -> tuple[int, int] | None:
    """A category as (its UTF-8 bytes as a little-endian uint64, its length); None if longer."""
    raw = text.encode("utf-8")
    if len(raw) > WORD:
        return None
    return int.from_bytes(raw.ljust(WORD, b"\0"), "little"), len(raw)


class CategoryCounter:
    """Counts of one text column per baseline category (+1 slot: none of them), by category
    index as in `index`, plus missing rows and the unseen values by name."""

    def __init__(self, index: Mapping[str, int]) -> None:
        self.index = dict(index)
        self.other = len(self.index)  # the slot of values not among the categories
        short = [(w, i) for c, i in self.index.items() if (w := _word(c)) is not None]
        self._words = [(np.uint64(w), n, i) for (w, n), i in short]
        self.fast = len(self.index) <= MAX_FAST

    def count(self, column: pd.Series) -> Counted:
        """(counts: int64, other + 1 long; missing; unseen value -> rows, first seen first)."""
        return self.count_array(as_text(column))

    def count_array(self, array: pa.Array) -> Counted:
        """`count` of a column already as Arrow text (`as_text`)."""
        counts = np.zeros(self.other + 1, np.int64)
        got = self._fast(array, counts) if self.fast else None
        if got is None:
            return self._hashed(array, counts)
        return counts, array.null_count, got

    def _hashed(self, array: pa.Array, counts: np.ndarray) -> Counted:
        """Every distinct value of the batch looked up by name (the general path)."""
        values, per_value = _distinct(array)
        unseen: dict[str, int] = {}
        for value, c in zip(values, per_value, strict=True):
            if c:
                i = self.index.get(value)
                if i is None:
                    unseen[value] = c
                    i = self.other
                counts[i] += c
        return counts, array.null_count, unseen

    def _fast(self, array: pa.Array, counts: np.ndarray) -> dict[str, int] | None:
        """Fill `counts` by comparing 8-byte words; None (counts untouched) when a value is
        longer than 8 bytes or the array is not plain offsets + data."""
        n = len(array)
        wide = pa.types.is_large_string(array.type)
        if n == 0 or not (wide or pa.types.is_string(array.type)):
            return {} if n == 0 else None
        _, offsets_buf, data = array.buffers()
        if data is None or data.size < WORD:
            return None
        kind = np.dtype(np.int64 if wide else np.int32)
        offsets = np.frombuffer(offsets_buf, kind, n + 1, array.offset * kind.itemsize)
        starts = offsets[:-1].astype(np.int64, copy=False)
        lengths = np.diff(offsets).astype(np.int64, copy=False)
        missing = array.null_count
        valid = array.is_valid().to_numpy(zero_copy_only=False) if missing else None
        if valid is not None:
            lengths = np.where(valid, lengths, 0)
        if int(lengths.max()) > WORD:
            return None
        # the uint64 at every byte of the data (a view: indexing it reads 8 bytes a row, where
        # np.take would copy all of it first; a batch's rows share one buffer): a value's bytes
        # are the low ones of its word, except for values starting in the last 7 bytes (offsets
        # ascend: they come last)
        last = data.size - WORD
        words = np.ndarray((last + 1,), dtype="<u8", buffer=data, strides=(1,))
        tail = int(np.searchsorted(starts, last, side="right"))
        keys = np.empty(n, dtype=np.uint64)
        keys[:tail] = words[starts[:tail]]
        if tail < n:
            shift = ((starts[tail:] - last) * 8).astype(np.uint64)
            keys[tail:] = words[last] >> shift
        keys &= _MASKS[lengths]
        if valid is not None:  # a null matches nothing: no category is 9 bytes long
            lengths[~valid] = WORD + 1
        matched = 0
        for word, size, i in self._words:
            c = int(np.count_nonzero((keys == word) & (lengths == size)))
            counts[i] += c
            matched += c
        rest = n - missing - matched
        if not rest:
            return {}
        # values the baseline never saw: only their rows are hashed, to name them
        seen = np.zeros(n, dtype=bool) if valid is None else ~valid
        for word, size, _ in self._words:
            seen |= (keys == word) & (lengths == size)
        values, per_value = _distinct(array.take(np.flatnonzero(~seen)))
        counts[self.other] += rest
        return {v: c for v, c in zip(values, per_value, strict=True) if c}


def _distinct(array: pa.Array) -> tuple[list[str], list[int]]:
    """Distinct non-null values, first seen first, and how many rows hold each."""
    encoded = array.dictionary_encode()
    values = encoded.dictionary.to_pylist()
    indices = encoded.indices
    if indices.null_count:
        indices = indices.fill_null(len(values))
    codes = indices.to_numpy(zero_copy_only=False)
    return values, np.bincount(codes, minlength=len(values) + 1)[: len(values)].tolist()
