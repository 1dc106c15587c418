"""Counting a numeric column into the baseline's bins without sorting it: a lookup table.

`bins.count_numeric` sorts each batch, which is fast where numpy's sort is vectorized for the
CPU and about 50 ns a value where it is not (seen on an AMD EPYC: 3 ms per 65,536 float64s,
drift monitoring's largest cost). Here the range where the baseline holds its mass is cut into
65,536 equal cells, and tables give each cell's first bin and its edge, if it holds one. The
map value -> cell, `(x - lo) * scale` clipped and truncated, never decreases as x grows (and the
edges are mapped by the same code), so every edge of an earlier cell is below a value and every
edge of a later one above it: a value in a cell with no edge has that cell's open bin, exactly,
and one in a cell with one edge is below it, on it (its point bin) or past it. Only values in a
cell with several edges (the tails, clipped into the end cells, and edges closer together than
a cell) are binned the exact way, by `searchsorted`; a batch where most are (data moved far
from the baseline) is counted by `count_numeric`.
Both give the same counts, bit for bit (tests/monitoring/test_numcount.py).
"""

from __future__ import annotations

import numpy as np

from pipelines.monitoring.bins import count_numeric, count_small_ints, numeric_bins

CELLS = 1 << 16  # tables of 768 KiB per column (bins int32, edges float64), per process
CORE_MASS = 0.002  # each side: baseline mass left to the exact path (the tails)
MOST_EXACT = 0.25  # above this share of a batch in edge cells, sorting is cheaper


class NumericCounter:
    """Counts of float values per bin of `edges` (2m+1 bins, `bins` module), and missing."""

    def __init__(self, edges: np.ndarray, reference: np.ndarray | None = None) -> None:
        self.edges = np.asarray(edges, dtype="float64")
        self.sentinel = 2 * self.edges.size + 1  # past the last bin: "bin this value exactly"
        self.table: np.ndarray | None = None
        if self.edges.size < 2:
            return
        first, last = _core(self.edges.size, reference)
        self.lo = float(self.edges[first])
        span = float(self.edges[last]) - self.lo
        self.scale = CELLS / span if span > 0 else 0.0
        if not (np.isfinite(self.scale) and self.scale > 0):
            return
        cells = self._cells(self.edges)
        per_cell = np.bincount(cells, minlength=CELLS)
        below = np.concatenate(([0], np.cumsum(per_cell)[:-1]))  # edges in earlier cells
        table = (2 * below).astype(np.int64)
        table[per_cell > 1] = self.sentinel
        self.table = table.astype(np.int32 if self.sentinel < 2**31 else np.int64)
        # a cell's one edge (+inf where it has none: no value compares past it)
        self.edge = np.full(CELLS, np.inf)
        single = per_cell[cells] == 1
        self.edge[cells[single]] = self.edges[single]

    def _cells(self, values: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):  # huge values: inf, clipped below
            cells = (values - self.lo) * self.scale  # monotone in the value: see the module
        np.clip(cells, 0, CELLS - 1, out=cells)  # ±inf and the tails land in the end cells
        return cells.astype(np.intp)

    def count(self, values: np.ndarray) -> tuple[np.ndarray, int]:
        """`count_numeric(values, edges)`, for any values."""
        if (small := count_small_ints(values, self.edges)) is not None:
            return small  # one bincount: faster still
        if values.dtype.kind in "iu":
            values = values.astype("float64")
        if self.table is None or values.dtype != np.float64 or values.size == 0:
            return count_numeric(values, self.edges)
        nan = np.isnan(values)
        missing = int(np.count_nonzero(nan))
        if missing:
            values = values[~nan]
        cells = self._cells(values)
        edge = self.edge[cells]
        # no edge in the cell: its open bin; one edge e: below it, on it or past it
        bins = self.table[cells] + (values >= edge) + (values > edge)
        counts = np.bincount(bins, minlength=self.sentinel + 3)
        exact = int(counts[self.sentinel :].sum())  # in a cell with several edges
        if exact > MOST_EXACT * values.size:
            return count_numeric(values, self.edges)[0], missing
        counts = counts[: self.sentinel].astype(np.int64)
        if exact:
            rest = values[bins >= self.sentinel]
            counts += np.bincount(numeric_bins(rest, self.edges), minlength=counts.size)
        return counts, missing


def _core(m: int, reference: np.ndarray | None) -> tuple[int, int]:
    """The first and last edge of the range holding all but CORE_MASS of the baseline each
    side (all edges without a reference): the table's cells are spent where the data lies."""
    if reference is None or reference.size != 2 * m + 1 or reference.sum() <= 0:
        return 0, m - 1
    cdf = np.cumsum(reference) / reference.sum()
    low_bin = int(np.searchsorted(cdf, CORE_MASS, side="right"))
    high_bin = int(np.searchsorted(cdf, 1 - CORE_MASS, side="left"))
    first, last = max(0, low_bin // 2 - 1), min(m - 1, high_bin // 2 + 1)
    return (first, last) if last > first else (0, m - 1)
