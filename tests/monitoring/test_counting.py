"""The fast counting paths equal a plain Python reference, row by row, on the awkward cases."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipelines.monitoring.bins import as_numbers, count_numeric
from pipelines.monitoring.textcount import MAX_FAST, CategoryCounter
from pipelines.outcomes.estimate import EXACT_ROWS, SCALE_BITS, EstimateState

CATEGORIES = ["north", "", "transfer", "é", "日本", "a-long-category", "ab"]


def _reference(values: list, categories: list[str]) -> tuple[list[int], int, dict[str, int]]:
    """Counts per category (+ other), missing, unseen by name: one Python dict lookup a row."""
    index = {c: i for i, c in enumerate(categories)}
    counts, missing, unseen = [0] * (len(index) + 1), 0, Counter()
    for v in values:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            missing += 1
            continue
        i = index.get(str(v))
        if i is None:
            unseen[str(v)] += 1
            i = len(index)
        counts[i] += 1
    return counts, missing, dict(unseen)


def _check(values: list, column: object, categories: list[str] = CATEGORIES) -> None:
    counter = CategoryCounter({c: i for i, c in enumerate(categories)})
    count = counter.count_array if isinstance(column, pa.Array) else counter.count
    counts, missing, unseen = count(column)
    want_counts, want_missing, want_unseen = _reference(values, categories)
    assert counts.tolist() == want_counts and missing == want_missing
    assert unseen == want_unseen
    # first seen first, as the hashing path names them
    assert list(unseen) == list(dict.fromkeys(str(v) for v in values if str(v) in want_unseen))


MIXED = ["north", "", "ab", "ab\x00", "a", "transfer", "transfers", "é", "e", "日本", None, "nort"]
MIXED += ["a-long-category", "north", "ab", None, "", "日本", "zz", "north"]


@pytest.mark.parametrize("dtype", [object, "str", "category"])
def test_text_counts_equal_the_reference_in_any_column_type(dtype: object) -> None:
    rng = np.random.default_rng(3)
    values = [MIXED[i] for i in rng.integers(0, len(MIXED), 5_000)]
    _check(values, pd.Series(values, dtype=dtype))
    short = [v for v in values if v is None or len(v.encode()) <= 8]  # the 8-byte path only
    _check(short, pd.Series(short, dtype=dtype))


def test_values_at_the_end_of_the_buffer_slices_and_nulls() -> None:
    for tail in (["ab"], ["north", "é"], [""], ["transfer"], [None], ["x", None, "ab"]):
        values = ["north", "transfer", *tail]
        _check(values, pa.array(values, pa.string()))
        _check(values, pa.array(values, pa.large_string()))
    values = ["north", None, "ab", "zz", "transfer", "", "north", "日本", None, "ab"] * 50
    whole = pa.array(values, pa.string())
    for start, stop in ((0, 7), (3, 9), (1, 500), (257, 500), (499, 500), (5, 5)):
        _check(values[start:stop], whole.slice(start, stop - start))
    _check([None] * 9, pa.array([None] * 9, pa.string()))
    _check(["", ""], pa.array(["", ""], pa.string()))  # no data buffer to read words from


def test_non_text_columns_are_named_by_str_and_many_categories_are_hashed() -> None:
    _check([True, False, None, True], pd.Series([True, False, None, True], dtype=object))
    _check([1, 2, 2, 7], pd.Series([1, 2, 2, 7]), ["1", "2", "3"])
    many = [f"c{k}" for k in range(MAX_FAST + 5)]
    values = [*many, "c1", "new", None, "c3"]
    _check(values, pd.Series(values, dtype="str"), many)


def _bin_of(x: float, edges: np.ndarray) -> int:
    below = int(np.sum(edges < x))
    return 2 * below + 1 if below < edges.size and edges[below] == x else 2 * below


@pytest.mark.parametrize("dtype", ["float64", "float32", "Float64", "int64", "Int64", "bool"])
def test_numeric_counts_equal_the_reference_at_edges_nan_and_inf(dtype: str) -> None:
    edges = np.array([-2.0, 0.0, 0.5, 1.0, 3.0, 1e6])
    raw = [-3.0, -2.0, -1.0, 0.0, 0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 1e6, 2e6, 7.0, 1.0]
    if dtype in ("float64", "float32", "Float64"):
        raw += [np.nan, np.inf, -np.inf, -0.0, 0.5000001, np.nextafter(1.0, 2.0)]
    values = np.array(raw, dtype="float64")
    if dtype in ("int64", "Int64"):
        values = np.rint(values)
    if dtype == "bool":
        values = (values > 0.5).astype("float64")
    column = pd.Series(values).astype(dtype)
    if dtype in ("Float64", "Int64"):
        column.iloc[2] = pd.NA
        values[2] = np.nan
    counts, missing = count_numeric(as_numbers(column), edges)
    want = np.zeros(2 * edges.size + 1, np.int64)
    for x in values[~np.isnan(values)]:
        want[_bin_of(float(np.float32(x)) if dtype == "float32" else x, edges)] += 1
    assert counts.tolist() == want.tolist() and missing == int(np.isnan(values).sum())


def test_small_non_negative_and_wide_integers_count_as_their_floats() -> None:
    edges = np.array([0.0, 1.0, 2.5, 7.0, 70_000.0])
    for values in ([0, 1, 1, 2, 3, 7, 7, 8, 9], [5, 6, 7], [2, 70_000, 70_001], [-5, 100_000]):
        ints = np.array(values, dtype=np.int64)
        as_floats = count_numeric(ints.astype("float64"), edges)[0]
        assert count_numeric(ints, edges)[0].tolist() == as_floats.tolist()


def test_estimate_sums_are_exact_past_the_float_slice() -> None:
    rng = np.random.default_rng(8)
    p = np.concatenate((np.ones(EXACT_ROWS + 3), rng.random(1000), [0.0, 0.5, 1.0]))
    state = EstimateState()
    state.update(p)
    fixed = [int(v) for v in np.rint(p * float(1 << SCALE_BITS))]
    bins = np.minimum((p * state.bins).astype(np.int64), state.bins - 1)
    want: Counter[int] = Counter()
    for b, f in zip(bins.tolist(), fixed, strict=True):
        want[b] += f
    assert {int(b): int(state.sums[b]) for b in np.flatnonzero(state.counts)} == dict(want)
    assert state.sums[-1] == (EXACT_ROWS + 4) * (1 << SCALE_BITS)  # above 2**53: still exact
