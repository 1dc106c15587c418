"""The baseline's `performance` block: how good and how calibrated the model was on held-out rows.

Another part estimates AUC and accuracy without labels from the score distribution; it may only
trust that estimate when the model is calibrated, i.e. when the held-out expected calibration
error (ECE, equal-width bins) is at most `performance.calibrated_max_ece`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from pipelines.monitoring.settings import PerformanceSettings

DECISION_THRESHOLD = 0.5  # binary: the predicted class is the positive one when score >= 0.5


def reliability(score: np.ndarray, truth: np.ndarray, bins: int) -> dict[str, list[Any]]:
    """Per equal-width score bin: mean score, fraction of positives and rows (None when empty)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.searchsorted(edges, score, side="right") - 1, 0, bins - 1)
    counts = np.bincount(idx, minlength=bins)
    sums = np.bincount(idx, weights=score, minlength=bins)
    hits = np.bincount(idx, weights=truth.astype("float64"), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean, frac = sums / counts, hits / counts
    return {
        "bins": edges.tolist(),
        "mean_predicted": [float(v) if c else None for v, c in zip(mean, counts, strict=True)],
        "fraction_positive": [float(v) if c else None for v, c in zip(frac, counts, strict=True)],
        "counts": counts.astype(int).tolist(),
    }


def expected_calibration_error(diagram: dict[str, list[Any]]) -> float:
    """Σ rows_b / rows × |mean score_b − fraction positive_b| over non-empty bins."""
    total = sum(diagram["counts"])
    gaps = [
        c * abs(m - f)
        for m, f, c in zip(
            diagram["mean_predicted"], diagram["fraction_positive"], diagram["counts"], strict=True
        )
        if c
    ]
    return float(sum(gaps) / total) if total else 0.0


def performance_block(
    score: np.ndarray,
    truth: np.ndarray,
    positive: np.ndarray | None,
    settings: PerformanceSettings,
) -> dict[str, Any]:
    """AUC, accuracy, ECE, `calibrated` and the reliability diagram of a binary model.

    `truth`: the label is the positive class; `positive`: the predicted class is (None: score >=
    0.5). `threshold` is the ECE at or below which `calibrated` is true. AUC is None when the
    held-out rows hold one class only.
    """
    truth = np.asarray(truth, dtype=bool)
    predicted = score >= DECISION_THRESHOLD if positive is None else np.asarray(positive, bool)
    diagram = reliability(score, truth, settings.reliability_bins)
    ece = expected_calibration_error(diagram)
    both = 0 < truth.sum() < truth.size
    return {
        "auc": float(roc_auc_score(truth, score)) if both else None,
        "accuracy": float(np.mean(predicted == truth)) if truth.size else None,
        "ece": ece,
        "calibrated": bool(ece <= settings.calibrated_max_ece),
        "rows": int(truth.size),
        "threshold": settings.calibrated_max_ece,
        "decision_threshold": DECISION_THRESHOLD,
        "positive_rate": float(truth.mean()) if truth.size else None,
        "reliability": diagram,
    }
