"""Realized metrics, exact and in bounded memory, accumulated bucket by bucket.

Sums (log loss, Brier, confusion counts, calibration bins) add up across buckets. ROC AUC and
average precision need the scores in order: each bucket leaves a sorted run of its distinct
scores with their positive and negative counts on disk, and the runs are merged block by block
(every run contributes at most `block_rows` rows at a time), so the merge holds about
`buckets x block_rows` rows whatever the row count. From the merged counts AUC is the exact
Mann-Whitney statistic (ties count one half) and AP is scikit-learn's step-wise sum; both equal
scikit-learn's on the same rows to rounding (1e-12).

Calibration: `bins` equal-width bins of the predicted probability over [0, 1], a value on an
inner edge in the lower bin (as `sklearn.calibration.calibration_curve`); ECE =
sum over bins of (rows in bin / rows) x |fraction positive - mean predicted|.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

EPS = float(np.finfo(np.float64).eps)  # scikit-learn's log-loss clip for float64


class RankRuns:
    """Sorted runs of (distinct score, positives, negatives) on disk, merged in order."""

    def __init__(self, folder: Path, name: str, block_rows: int) -> None:
        self.folder, self.name, self.block_rows = folder, name, max(256, block_rows)
        self.files: list[Path] = []

    def add(self, score: np.ndarray, positive: np.ndarray) -> None:
        """One bucket's rows: their distinct scores, sorted, with counts, as one run."""
        if len(score) == 0:
            return
        values, inverse = np.unique(score, return_inverse=True)
        pos = np.bincount(inverse, weights=positive, minlength=len(values)).astype(np.int64)
        total = np.bincount(inverse, minlength=len(values)).astype(np.int64)
        table = pa.table({"s": values, "pos": pos, "neg": total - pos})
        path = self.folder / f"{self.name}-{len(self.files):05d}.arrow"
        with pa.ipc.new_stream(str(path), table.schema) as writer:
            for batch in table.to_batches(max_chunksize=self.block_rows):
                writer.write_batch(batch)
        self.files.append(path)

    def merged(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(scores ascending, positives, negatives) in chunks; each distinct score once."""
        readers = [pa.ipc.open_stream(pa.OSFile(str(p), "rb")) for p in self.files]
        current: list[list[np.ndarray] | None] = [None] * len(readers)
        while True:
            for i, reader in enumerate(readers):
                if current[i] is None or len(current[i][0]) == 0:  # type: ignore[index]
                    current[i] = _next_block(reader)
            live = [c for c in current if c is not None]
            if not live:
                return
            limit = min(c[0][-1] for c in live)
            taken = []
            for i, c in enumerate(current):
                if c is None:
                    continue
                k = int(np.searchsorted(c[0], limit, side="right"))
                taken.append([a[:k] for a in c])
                current[i] = [a[k:] for a in c]
            s, pos, neg = (np.concatenate([t[j] for t in taken]) for j in range(3))
            values, inverse = np.unique(s, return_inverse=True)
            yield (
                values,
                np.bincount(inverse, weights=pos, minlength=len(values)).astype(np.int64),
                np.bincount(inverse, weights=neg, minlength=len(values)).astype(np.int64),
            )


def _next_block(reader: pa.ipc.RecordBatchStreamReader) -> list[np.ndarray] | None:
    try:
        batch = reader.read_next_batch()
    except StopIteration:
        return None
    return [batch.column(j).to_numpy() for j in range(3)]


class BinaryMetrics:
    """Realized metrics of a binary model, accumulated from buckets of joined rows."""

    def __init__(self, folder: Path, name: str, bins: int, block_rows: int) -> None:
        self.bins = bins
        self.edges = np.linspace(0.0, 1.0, bins + 1)
        self.ranks = RankRuns(folder, name, block_rows)
        self.n = self.pos = self.tp = self.fp = 0
        self.log_terms: list[float] = []
        self.brier_terms: list[float] = []
        self.bin_n = np.zeros(bins, np.int64)
        self.bin_pos = np.zeros(bins, np.int64)
        self.bin_p: list[list[float]] = [[] for _ in range(bins)]

    def add(self, positive: np.ndarray, score: np.ndarray, predicted_positive: np.ndarray) -> None:
        """Rows of one bucket: label is the positive class, P(positive), predicted positive."""
        y = positive.astype(np.int64)
        self.n += len(y)
        self.pos += int(y.sum())
        self.tp += int((predicted_positive & (y == 1)).sum())
        self.fp += int((predicted_positive & (y == 0)).sum())
        p1 = np.clip(score, EPS, 1 - EPS)
        p0 = np.clip(1 - score, EPS, 1 - EPS)
        self.log_terms.append(math.fsum(-np.log(np.where(y == 1, p1, p0))))
        self.brier_terms.append(math.fsum((score - y) ** 2))
        ids = np.searchsorted(self.edges[1:-1], score)
        self.bin_n += np.bincount(ids, minlength=self.bins)
        self.bin_pos += np.bincount(ids, weights=y, minlength=self.bins).astype(np.int64)
        for b in np.flatnonzero(np.bincount(ids, minlength=self.bins)):
            self.bin_p[b].append(math.fsum(score[ids == b]))
        self.ranks.add(score, y)

    def result(self) -> dict[str, Any]:
        """The metrics as plain JSON types (None where a metric needs both classes)."""
        n, pos = self.n, self.pos
        neg = n - pos
        auc, ap = self._ranking() if pos and neg else (None, None)
        pred_pos = self.tp + self.fp
        return {
            "rows": n,
            "positives": pos,
            "negatives": neg,
            "roc_auc": auc,
            "pr_auc": ap,
            "log_loss": math.fsum(self.log_terms) / n if n else None,
            "brier": math.fsum(self.brier_terms) / n if n else None,
            "accuracy": (self.tp + (neg - self.fp)) / n if n else None,
            "precision": self.tp / pred_pos if pred_pos else 0.0,
            "recall": self.tp / pos if pos else 0.0,
            "predicted_positive": pred_pos,
            **self._calibration(),
        }

    def _ranking(self) -> tuple[float, float]:
        """Exact AUC (pairs ordered right, ties one half) and AP, over the merged runs."""
        total_pos, total_neg = self.pos, self.n - self.pos
        pos_below = neg_below = 0
        auc2 = 0  # twice the number of correctly ordered (positive, negative) pairs
        ap_terms: list[float] = []
        for _, pos, neg in self.ranks.merged():
            neg_before = neg_below + np.cumsum(neg) - neg
            pos_before = pos_below + np.cumsum(pos) - pos
            auc2 += int(np.sum(pos * (2 * neg_before + neg)))
            tp = (total_pos - pos_before).astype(np.float64)
            fp = (total_neg - neg_before).astype(np.float64)
            has = pos > 0
            ap_terms.append(math.fsum(pos[has] / total_pos * (tp[has] / (tp[has] + fp[has]))))
            pos_below += int(pos.sum())
            neg_below += int(neg.sum())
        return auc2 / (2 * total_pos * total_neg), math.fsum(ap_terms)

    def _calibration(self) -> dict[str, Any]:
        counts = [int(c) for c in self.bin_n]
        mean_p = [math.fsum(t) / c if c else None for t, c in zip(self.bin_p, counts, strict=True)]
        frac = [int(p) / c if c else None for p, c in zip(self.bin_pos, counts, strict=True)]
        ece = None
        if self.n:
            ece = math.fsum(
                int(c) / self.n * abs(f - m)
                for c, f, m in zip(self.bin_n, frac, mean_p, strict=True)
                if c
            )
        return {
            "ece": ece,
            "reliability": {
                "bins": self.bins,
                "edges": [float(e) for e in self.edges],
                "rows": [int(c) for c in self.bin_n],
                "mean_predicted": mean_p,
                "fraction_positive": frac,
            },
        }


class MulticlassMetrics:
    """Accuracy and log loss of a multiclass model (AUC, PR AUC and calibration: binary only)."""

    def __init__(self, classes: int) -> None:
        self.classes = classes
        self.n = self.correct = 0
        self.log_terms: list[float] = []
        self.per_class = np.zeros(classes, np.int64)

    def add(self, label: np.ndarray, predicted: np.ndarray, proba: np.ndarray) -> None:
        """Rows of one bucket: label and predicted class indices, probabilities (n x classes)."""
        self.n += len(label)
        self.correct += int((label == predicted).sum())
        p = np.clip(proba[np.arange(len(label)), label], EPS, 1 - EPS)
        self.log_terms.append(math.fsum(-np.log(p)))
        self.per_class += np.bincount(label, minlength=self.classes)

    def result(self) -> dict[str, Any]:
        n = self.n
        return {
            "rows": n,
            "accuracy": self.correct / n if n else None,
            "log_loss": math.fsum(self.log_terms) / n if n else None,
            "rows_per_class": [int(c) for c in self.per_class],
            "note": "multiclass: accuracy and log loss only (ROC AUC, PR AUC, Brier and "
            "calibration are computed for binary models)",
        }
