"""Distances between the baseline's counts and tonight's: pure functions of count arrays.

Fine numeric bins follow `monitoring.bins` (2m+1 bins: below e_0, then point e_k / open after
e_k). KS and Wasserstein read the CDFs at both sides of every edge, so their error is bounded by
the largest mass of one fine bin (≈ 1/fine_bins of the baseline for continuous data, 0 for data
whose distinct values are all edges). PSI, Jensen-Shannon and the G-test use coarse bins.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import chi2


def shares(counts: np.ndarray) -> np.ndarray:
    """Counts as shares of their total (all zero when there is nothing)."""
    total = counts.sum()
    return counts / total if total else np.zeros(counts.size)


def psi(ref: np.ndarray, cur: np.ndarray, epsilon: float) -> float:
    """Population stability index Σ (q−p) ln(q/p) over shares, an empty bin counting `epsilon`."""
    p = np.maximum(shares(ref), epsilon)
    q = np.maximum(shares(cur), epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(ref: np.ndarray, cur: np.ndarray) -> float:
    """Jensen-Shannon distance (square root of the divergence, log base 2: 0 same, 1 disjoint)."""
    p, q = shares(ref), shares(cur)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return float(np.sqrt(max((kl(p) + kl(q)) / 2, 0.0)))


def linf(ref: np.ndarray, cur: np.ndarray) -> float:
    """Largest absolute change of one bin's (category's) share."""
    return float(np.max(np.abs(shares(ref) - shares(cur)))) if ref.size else 0.0


def ks_binned(ref: np.ndarray, cur: np.ndarray) -> float:
    """Kolmogorov-Smirnov statistic from the CDFs at every fine bin boundary."""
    diff = np.cumsum(shares(ref)) - np.cumsum(shares(cur))
    return float(np.max(np.abs(diff))) if diff.size else 0.0


def wasserstein_binned(ref: np.ndarray, cur: np.ndarray, edges: np.ndarray) -> float:
    """Wasserstein-1 distance ∫|F_ref − F_cur| dx from fine counts (not yet normalised).

    Point bins have no width; within an open bin both CDFs are taken as linear, so |ΔF| is
    integrated exactly for a linear ΔF. Mass outside the outermost edges sits on them.
    """
    if edges.size < 2:
        return 0.0
    diff = np.cumsum(shares(ref)) - np.cumsum(shares(cur))
    a = diff[1:-2:2]  # just after each point bin e_k (k = 0 .. m-2)
    b = diff[2:-1:2]  # just before e_{k+1}
    width = np.diff(edges)
    same = a * b >= 0
    absum = np.abs(a) + np.abs(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        crossing = np.where(absum > 0, (a * a + b * b) / (2 * absum), 0.0)
    area = np.where(same, absum / 2, crossing)
    return float(np.sum(width * area))


def g_test(ref: np.ndarray, cur: np.ndarray) -> float:
    """p-value of the G-test (likelihood ratio) that both count vectors share one distribution.

    A 2 x K contingency test: it accounts for the size of both samples, so a small baseline is
    not taken as exact. Bins empty in both are dropped; one bin left means no evidence (1.0).
    """
    keep = (ref + cur) > 0
    table = np.vstack((ref[keep], cur[keep])).astype("float64")
    if table.shape[1] < 2 or table[0].sum() == 0 or table[1].sum() == 0:
        return 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    nz = table > 0
    g = 2.0 * float(np.sum(table[nz] * np.log(table[nz] / expected[nz])))
    return float(chi2.sf(max(g, 0.0), table.shape[1] - 1))


def coarse_groups(ref: np.ndarray, bins: int) -> np.ndarray:
    """Group id of each fine bin so that groups hold about 1/bins of the baseline each.

    Consecutive fine bins are merged while the baseline mass before them stays in the same
    1/bins slice; a point mass larger than a slice stays one group. Ids are 0..G-1.
    """
    total = ref.sum()
    if total == 0:
        return np.zeros(ref.size, dtype=np.int64)
    before = (np.cumsum(ref) - ref) / total
    raw = np.searchsorted(np.arange(1, bins) / bins, before, side="right")
    return np.unique(raw, return_inverse=True)[1].astype(np.int64)


def grouped(counts: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Fine counts summed per coarse group."""
    size = int(groups.max()) + 1 if groups.size else 0
    return np.bincount(groups, weights=counts, minlength=size).astype(np.int64)


def coarse_edges(edges: np.ndarray, groups: np.ndarray, lo: float, hi: float) -> list[float]:
    """Plotting edges of the coarse groups, from `lo` (baseline min) to `hi` (baseline max).

    A group starting at an open bin (e_k, e_{k+1}) after a point bin e_k starts midway between
    them, so discrete values get bars of a readable width.
    """
    starts = np.flatnonzero(np.diff(groups)) + 1  # first fine bin of every group but the first
    inner = []
    for b in starts:
        k = (b - 1) // 2
        if b % 2 == 0 and k + 1 < edges.size:  # open bin after point e_k
            inner.append((edges[k] + edges[k + 1]) / 2)
        else:  # a point bin e_k (or past the last edge)
            inner.append(edges[min(k, edges.size - 1)])
    out = np.clip(np.array([lo, *inner, hi], dtype="float64"), lo, hi)
    return np.maximum.accumulate(out).tolist()
