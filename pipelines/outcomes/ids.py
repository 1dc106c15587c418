"""IDs compared exactly as published, and the hash that partitions them into join buckets.

A label file's IDs are converted to the kind the run published (int64 stays int64, text stays
text), never through float64: "00012" and "12" are different text IDs, and 2**60 + 1 is not
2**60. The hash is `pandas.util.hash_array` (fixed key, the same on every machine); a bucket is
a range of hash values, so buckets in order, each sorted by (hash, ID), give one canonical order
whatever the number of buckets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.errors import InputDataError

INT, TEXT = "int", "text"
_INTEGER = r"^[+-]?[0-9]+$"


def id_kind(published: pa.DataType) -> str:
    """int (any integer type, compared as int64) or text (strings, and any other type as text)."""
    return INT if pa.types.is_integer(published) else TEXT


def published_ids(values: pa.Array | pa.ChunkedArray, kind: str) -> pa.Array:
    """A published ID column as int64 or string: the values untouched."""
    values = _flat(values)
    if kind == INT:
        return values.cast(pa.int64())
    return values.cast(pa.string())


def align_ids(
    values: pa.Array | pa.ChunkedArray, kind: str, where: str
) -> tuple[pa.Array, np.ndarray]:
    """A label file's IDs as the published kind, and which rows hold a usable ID.

    Text that is not an integer (or a null) is not usable for an int64 run; a floating-point ID
    column is refused, since float64 cannot hold every int64 ID.
    """
    values = _flat(values)
    t = values.type
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        raise InputDataError(
            f"the label file's ID column is {t}, which cannot hold every ID exactly",
            where=where,
            fix="write the IDs as integers (int64) or text, as they were scored",
        )
    if kind == INT and pa.types.is_integer(t):
        ok = values.is_valid()
        if t == pa.uint64():
            ok = pc.and_(ok, pc.less_equal(values, np.iinfo(np.int64).max))
        ids = pc.if_else(ok, values, pa.scalar(0, t)).cast(pa.int64())
    elif kind == INT:
        text = values.cast(pa.string())
        ok = pc.fill_null(pc.match_substring_regex(text, _INTEGER), False)
        ids, ok = _parse_ints(pc.if_else(ok, text, "0"), ok)
    else:
        ids = values.cast(pa.string())
        ok = ids.is_valid()
    mask = np.asarray(ok.to_numpy(zero_copy_only=False), dtype=bool)
    return ids, mask


def _parse_ints(text: pa.Array, ok: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Integer text to int64; values beyond int64 become unusable instead of failing the batch."""
    try:
        return text.cast(pa.int64()), ok
    except pa.ArrowInvalid:
        parsed = [int(s) for s in text.to_pylist()]
        fits = [-(2**63) <= v < 2**63 for v in parsed]
        ids = pa.array([v if f else 0 for v, f in zip(parsed, fits, strict=True)], pa.int64())
        return ids, pc.and_(ok, pa.array(fits))


def id_hash(ids: pa.Array) -> np.ndarray:
    """uint64 hash of each ID (int64 or string), stable across processes and machines."""
    if pa.types.is_integer(ids.type):
        return pd.util.hash_array(ids.to_numpy(zero_copy_only=False).astype(np.int64))
    return pd.util.hash_array(np.asarray(ids.to_numpy(zero_copy_only=False), dtype=object))


def bucket_of(hashes: np.ndarray, buckets: int) -> np.ndarray:
    """The bucket of each hash: equal ranges of the hash space, so bucket order is hash order."""
    return ((hashes >> np.uint64(32)) * np.uint64(buckets) >> np.uint64(32)).astype(np.int64)


def bucket_count(rows: int, bucket_rows: int, max_buckets: int) -> int:
    """Buckets for `rows` rows at about `bucket_rows` each (at least 1, at most `max_buckets`)."""
    return int(min(max_buckets, max(1, -(-rows // bucket_rows))))


def _flat(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    return values
