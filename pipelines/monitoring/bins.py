"""The binning the baseline and the scoring pass share: fine numeric bins and category counts.

A numeric feature's edges e_0 < ... < e_{m-1} make 2m+1 bins: below e_0, then for each edge a
*point* bin (x == e_k) and the *open* bin after it (e_k < x < e_{k+1}), the last open bin being
x > e_{m-1}. Point bins make discrete data exact (every distinct value of a low-cardinality
column is an edge) and let the CDF be read on both sides of every edge.

Counting is a sort of the batch plus two `searchsorted` of the edges into it (integer columns
with a small range: one `bincount`); a sort (SIMD in numpy) is several times faster than a
`searchsorted` of every value into the edges. Text is counted by `textcount`. A batch costs a
few vectorized passes per column, not a Python loop per row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

TAIL_EDGES = 48  # geometric edges added beyond the baseline's min and max, each side
TAIL_FIRST, TAIL_GROWTH = 0.02, 1.2  # first tail step (in baseline stds) and its growth
INT_RANGE = 1 << 16  # integer batches spanning at most this many values are counted by bincount


def numeric_edges(values: np.ndarray, fine: int, width: int) -> np.ndarray:
    """Sorted unique edges for `values` (any order): data quantiles + equal-width + tails.

    Quantile edges are data values (order statistics), so each holds reference mass; when the
    column has at most `fine` distinct values, every one of them is an edge (discrete data).
    Equal-width edges bound the width of a bin in heavy tails; the geometric tail edges (about
    600 stds each side) keep moved data measurable beyond the baseline's range.
    """
    finite = np.sort(values[np.isfinite(values)])
    if finite.size == 0:
        return np.zeros(0, dtype="float64")
    distinct = np.concatenate(([True], finite[1:] != finite[:-1]))
    if int(distinct.sum()) <= fine:
        core = finite[distinct]
    else:
        ranks = np.ceil(np.linspace(0, 1, fine + 1) * finite.size).astype(np.int64) - 1
        core = finite[np.clip(ranks, 0, finite.size - 1)]
        if width:
            core = np.concatenate((core, np.linspace(finite[0], finite[-1], width + 1)))
    lo, hi = float(finite[0]), float(finite[-1])
    std = float(finite.std())
    scale = std if std > 0 else max(abs(lo), abs(hi), 1.0) * 0.01
    steps = scale * TAIL_FIRST * np.cumsum(TAIL_GROWTH ** np.arange(TAIL_EDGES))
    edges = np.unique(np.concatenate((lo - steps[::-1], core, hi + steps)))
    return edges[np.isfinite(edges)].astype("float64")


def numeric_bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each (non-missing) value, see the module docstring."""
    idx = np.searchsorted(edges, values, side="left")
    hit = edges[np.minimum(idx, edges.size - 1)] == values if edges.size else False
    return 2 * idx + hit


def count_small_ints(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, int] | None:
    """`count_numeric` of integers spanning fewer than INT_RANGE values, by one bincount of the
    values (no sort); None for any other array."""
    if values.dtype.kind not in "iu" or not values.size:
        return None
    lo, hi = int(values.min()), int(values.max())
    if hi - lo >= INT_RANGE:
        return None
    if values.dtype.kind == "i" and lo >= 0 and hi < INT_RANGE:
        lo = 0  # counts, ages, flags: bincount as they are, no shifted copy
    seen = np.bincount(values - lo if lo else values)
    nz = np.flatnonzero(seen)
    bins = numeric_bins((nz + lo).astype("float64"), edges)
    counts = np.bincount(bins, weights=seen[nz], minlength=2 * edges.size + 1)
    return np.rint(counts).astype(np.int64), 0


def count_numeric(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, int]:
    """Counts per bin (2m+1 of them, int64) and the number of missing (NaN) values."""
    if (small := count_small_ints(values, edges)) is not None:
        return small
    if values.dtype.kind in "iu":
        values = values.astype("float64")
    ordered = np.sort(values)  # NaN sorts last
    valid = int(np.searchsorted(ordered, np.inf, side="right"))
    ordered = ordered[:valid]
    counts = np.empty(2 * edges.size + 1, dtype=np.int64)
    if edges.size == 0:
        counts[0] = valid
        return counts, values.size - valid
    below = np.searchsorted(ordered, edges, side="left")
    upto = np.searchsorted(ordered, edges, side="right")
    counts[0] = below[0]
    counts[1::2] = upto - below
    counts[2:-1:2] = below[1:] - upto[:-1]
    counts[-1] = valid - upto[-1]
    return counts, values.size - valid


def as_numbers(column: pd.Series) -> np.ndarray:
    """A numeric column as a numpy array: integers as they are, anything else float64 + NaN."""
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "iu":
        return column.to_numpy()
    if column.dtype == np.float64:  # NaN is already its missing value: no conversion, no copy
        return column.to_numpy()
    return column.to_numpy(dtype="float64", na_value=np.nan)


def as_text(column: pd.Series) -> pa.Array:
    """A categorical column as an Arrow string array, missing as null (bools read "True").

    Text columns convert without a copy; others become `str` values, so the baseline and the
    scoring pass name categories the same way whatever the column's type.
    """
    if isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(object)
    if not (column.dtype == object or pd.api.types.is_string_dtype(column)):
        missing = column.isna()
        column = column.astype(str).astype(object).mask(missing, None)
    try:
        array = pa.array(column, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        array = None
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array is None or not (
        pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
    ):
        # Python objects that are not all text (bools, numbers, a mix): name them by str()
        array = pa.array([None if pd.isna(v) else str(v) for v in column], pa.string())
    return array


def encode_text(column: pd.Series) -> tuple[list[str], np.ndarray]:
    """Distinct values of a text column and each row's index into them (len(values) = missing)."""
    encoded = as_text(column).dictionary_encode()
    values = encoded.dictionary.to_pylist()
    indices = encoded.indices
    if indices.null_count:
        indices = indices.fill_null(len(values))
    codes = indices.to_numpy(zero_copy_only=False)
    return values, codes


def count_text(column: pd.Series) -> tuple[dict[str, int], int]:
    """How often each value occurs, and how many rows are missing."""
    values, codes = encode_text(column)
    counts = np.bincount(codes, minlength=len(values) + 1)
    return {v: int(c) for v, c in zip(values, counts[:-1], strict=True) if c}, int(counts[-1])


def keep_first_names(named: dict[str, Any], limit: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split into the `limit` names first in sorted order and the rest (both name -> value).

    Keeping by name (not by count) is what makes capped counts mergeable exactly: a name kept in
    the end is kept at every step of any split, so its count is whole, and the dropped ones' sum
    is the same whatever order the batches came in.
    """
    if len(named) <= limit:
        return named, {}
    names = sorted(named)
    return {n: named[n] for n in names[:limit]}, {n: named[n] for n in names[limit:]}
