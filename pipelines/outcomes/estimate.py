"""Performance estimated before labels arrive, from the model's own probabilities (CBPE-style).

`EstimateState` is a histogram of P(positive) over `BINS` equal-width bins with integer counts
and fixed-point integer sums of p (p x 2**32, rounded per row), so shards merged in any order
equal one pass bit for bit. If the probabilities are calibrated, a row's label is Bernoulli(p):
expected accuracy is the mean of max(p, 1 - p) (the model predicts the positive class when
p > 0.5), and expected ROC AUC is the AUC of the expected ROC curve, each bin contributing p
expected positives and 1 - p expected negatives; pairs within one bin count as ties, so the
estimate is within `binning_error` (reported) of the same formula on exact scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.errors import InputDataError

BINS = 10_000
SCALE_BITS = 32
EXACT_ROWS = 1 << (53 - SCALE_BITS - 1)  # rows summed in float64 at once, exactly (see _int_sum)
METHOD = "CBPE-style expected metrics from calibrated probabilities"
MULTICLASS_REASON = "estimated performance is computed for binary models only"


@dataclass
class EstimateState:
    """Mergeable, exact: `counts[b]` rows and `sums[b]` = sum of round(p * 2**32) in bin b."""

    bins: int = BINS
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sums: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        if len(self.counts) != self.bins:
            self.counts = np.zeros(self.bins, np.int64)
            self.sums = np.zeros(self.bins, np.int64)

    @property
    def rows(self) -> int:
        return int(self.counts.sum())

    def update(self, score: np.ndarray) -> None:
        """Add a chunk's P(positive); values outside [0, 1] or NaN are refused."""
        p = np.asarray(score, dtype=np.float64)
        if p.size and not (np.isfinite(p).all() and p.min() >= 0.0 and p.max() <= 1.0):
            raise InputDataError(
                "a probability to estimate performance from is NaN or outside [0, 1]",
                fix="score with a classifier whose predict_proba returns probabilities",
            )
        b = np.minimum((p * self.bins).astype(np.int64), self.bins - 1)
        self.counts += np.bincount(b, minlength=self.bins)
        self.sums += _int_sum(b, np.rint(p * float(1 << SCALE_BITS)), self.bins)

    def merge(self, other: EstimateState) -> EstimateState:
        """This state plus another (a new state; integer adds, so order does not matter)."""
        if other.bins != self.bins:
            raise ValueError(f"cannot merge estimate states of {self.bins} and {other.bins} bins")
        return EstimateState(self.bins, self.counts + other.counts, self.sums + other.sums)

    def to_json(self) -> dict[str, Any]:
        """Sparse: the non-empty bins only."""
        used = np.flatnonzero(self.counts)
        return {
            "kind": "probability-histogram",
            "bins": self.bins,
            "scale_bits": SCALE_BITS,
            "index": used.tolist(),
            "counts": self.counts[used].tolist(),
            "sums": self.sums[used].tolist(),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> EstimateState:
        if doc.get("kind") != "probability-histogram" or doc.get("scale_bits") != SCALE_BITS:
            raise ValueError(f"not an estimate state: {str(doc)[:80]}")
        bins = int(doc["bins"])
        state = cls(bins)
        state.counts[doc["index"]] = doc["counts"]
        state.sums[doc["index"]] = doc["sums"]
        return state


def _int_sum(bins: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Exact integer sum per bin of `values`: whole numbers in [0, 2**32] held as float64.

    np.bincount sums in float64, exactly while every partial sum is a whole number below 2**53:
    so it is given at most EXACT_ROWS (2**20) rows at a time, one pass per 2**20-row slice.
    """
    out = np.zeros(size, np.int64)
    for start in range(0, len(bins), EXACT_ROWS):
        part = slice(start, start + EXACT_ROWS)
        out += np.bincount(bins[part], weights=values[part], minlength=size).astype(np.int64)
    return out


def estimate(state: EstimateState, baseline_performance: dict[str, Any] | None) -> dict[str, Any]:
    """Expected ROC AUC and accuracy of a binary model's run, with the method and assumption."""
    n = state.rows
    p_sum = state.sums.astype(np.float64) / float(1 << SCALE_BITS)
    pos, neg = p_sum, state.counts - p_sum
    above = (np.arange(state.bins) + 0.5) / state.bins > 0.5  # bins lie wholly on one side
    correct = float(np.where(above, pos, neg).sum())
    total_pos, total_neg = float(pos.sum()), float(neg.sum())
    auc = error = None
    if total_pos > 0 and total_neg > 0:
        neg_below = np.cumsum(neg) - neg
        pairs = total_pos * total_neg
        auc = float(np.sum(pos * (neg_below + 0.5 * neg)) / pairs)
        error = float(np.sum(pos * neg) / (2 * pairs))
    base = baseline_performance or {}
    ece = base.get("ece")
    held_out = f"held-out ECE {ece:.4f}" if isinstance(ece, int | float) else "no held-out ECE"
    return {
        "auc": auc,
        "accuracy": correct / n if n else None,
        "method": METHOD,
        "assumption": "the model's probabilities are calibrated on tonight's data as on the "
        f"held-out split ({held_out})",
        "calibrated": bool(base.get("calibrated", False)),
        "rows": n,
        "bins": state.bins,
        "binning_error": error,
    }


def estimate_for(
    kind: str, state: EstimateState | None, baseline_performance: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, str | None]:
    """(estimate, None) for a binary run with a state; (None, why not) otherwise."""
    if kind != "binary":
        return None, MULTICLASS_REASON
    if state is None or not state.rows:
        return None, "no rows were scored"
    return estimate(state, baseline_performance), None


def performance_flags(
    estimated: dict[str, Any] | None,
    realized: dict[str, Any] | None,
    baseline_auc: float | None,
    max_drop: float,
) -> dict[str, Any]:
    """Which of estimated / realized AUC fell more than `max_drop` below the baseline's.

    `estimated` is an `estimate` result (`auc`), `realized` an evaluation (`metrics.roc_auc`)
    or its metrics; missing values are not flagged.
    """
    values = {
        "estimated": (estimated or {}).get("auc"),
        "realized": ((realized or {}).get("metrics") or realized or {}).get("roc_auc"),
    }
    out: dict[str, Any] = {"baseline_auc": baseline_auc, "max_drop": max_drop}
    for name, auc in values.items():
        drop = None if auc is None or baseline_auc is None else baseline_auc - auc
        out[name] = {"auc": auc, "drop": drop, "flagged": drop is not None and drop > max_drop}
    out["flagged"] = out["estimated"]["flagged"] or out["realized"]["flagged"]
    out["reasons"] = [
        f"{name} AUC {out[name]['auc']:.4f} is {out[name]['drop']:.4f} below the baseline's "
        f"{baseline_auc:.4f} (max drop {max_drop})"
        for name in ("estimated", "realized")
        if out[name]["flagged"]
    ]
    return out
