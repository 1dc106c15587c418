"""The lookup-table counter gives `count_numeric`'s counts exactly, on every kind of column."""

from __future__ import annotations

import numpy as np
import pytest

import pipelines.monitoring.numcount as numcount
from pipelines.monitoring.bins import count_numeric, numeric_edges
from pipelines.monitoring.numcount import NumericCounter


def _reference(kind: str, rng: np.random.Generator, n: int = 20_000) -> np.ndarray:
    if kind == "normal":
        return rng.normal(50.0, 12.0, n)
    if kind == "heavy":
        return rng.lognormal(8.0, 2.0, n)
    if kind == "discrete":  # integer-valued floats: every value is an edge (point bins)
        return rng.integers(18, 90, n).astype("float64")
    if kind == "spike":  # most rows at 0, the rest spread: edges closer than a cell
        return np.where(rng.random(n) < 0.7, 0.0, rng.exponential(1e-3, n))
    if kind == "constant":
        return np.full(n, 3.5)
    if kind == "tiny":  # a span of a few ulps
        return 1.0 + rng.integers(0, 4, n) * np.finfo(float).eps
    raise AssertionError(kind)


def _batch(ref: np.ndarray, edges: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A batch like the reference, with values on the edges, just beside them, NaN, ±inf,
    -0.0, extremes and a few far outside the baseline's range."""
    n = 65_536
    x = rng.choice(ref, n)
    on = rng.integers(0, n, 2_000)
    x[on] = rng.choice(edges, on.size)
    beside = rng.integers(0, n, 2_000)
    x[beside] = np.nextafter(rng.choice(edges, beside.size), rng.choice([-np.inf, np.inf], 2_000))
    special = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1e308, -1e308, 5e-324, edges[0], edges[-1]]
    x[rng.integers(0, n, 200)] = rng.choice(special, 200)
    x[rng.integers(0, n, 300)] = rng.choice(ref, 300) * 1e6
    return x


KINDS = ["normal", "heavy", "discrete", "spike", "constant", "tiny"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("with_reference", [True, False])
def test_counts_equal_the_sorting_count_bit_for_bit(kind: str, with_reference: bool) -> None:
    rng = np.random.default_rng(len(kind) * 7 + with_reference)
    ref = _reference(kind, rng)
    edges = numeric_edges(ref, 100, 50)
    reference = count_numeric(ref, edges)[0] if with_reference else None
    counter = NumericCounter(edges, reference)
    for _ in range(3):
        x = _batch(ref, edges, rng)
        counts, missing = counter.count(x)
        want, want_missing = count_numeric(x, edges)
        assert counts.dtype == np.int64
        np.testing.assert_array_equal(counts, want)
        assert missing == want_missing


def test_moved_data_integers_and_edge_cases_count_the_same() -> None:
    rng = np.random.default_rng(5)
    ref = rng.normal(0.0, 1.0, 10_000)
    edges = numeric_edges(ref, 100, 50)
    counter = NumericCounter(edges, count_numeric(ref, edges)[0])
    cases = [
        ref + 1_000.0,  # moved far: most values in the end cells, counted by sorting
        np.full(1_000, np.nan),
        np.array([], dtype="float64"),
        rng.integers(-(10**12), 10**12, 5_000),  # wide integers: as float64
        rng.integers(0, 100, 5_000),  # narrow integers: bincount
        rng.normal(0.0, 1.0, 5_000).astype("float32"),
    ]
    for x in cases:
        values = x if x.dtype != np.float32 else x.astype("float64")
        counts, missing = counter.count(values)
        want, want_missing = count_numeric(values, edges)
        np.testing.assert_array_equal(counts, want)
        assert missing == want_missing
    for few in (np.zeros(0), np.array([2.0])):  # no table: the sorting count
        assert NumericCounter(few).table is None
        np.testing.assert_array_equal(NumericCounter(few).count(ref)[0], count_numeric(ref, few)[0])


def test_data_like_the_baseline_is_counted_without_sorting(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(9)
    ref = rng.lognormal(3.0, 1.0, 20_000)
    edges = numeric_edges(ref, 100, 50)
    counter = NumericCounter(edges, count_numeric(ref, edges)[0])
    x = rng.choice(ref, 65_536)
    want = count_numeric(x, edges)

    def refuse(*_: object) -> None:
        raise AssertionError("sorted the batch")

    monkeypatch.setattr(numcount, "count_numeric", refuse)
    counts, missing = counter.count(x)
    np.testing.assert_array_equal(counts, want[0])
    assert missing == want[1]
