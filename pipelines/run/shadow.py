"""Champion vs challenger, row by row: how far a shadow model's scores are from the run's.

Computed once per run from the two staged score sets, which line up row for row (the challenger
scores exactly the champion's rows, in order). Rows the challenger could not score are counted
and left out of every number. Reading the two `score` columns back costs 16 bytes per row; the
rank statistics (Spearman, top-k) need all of them at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.publish.manifest import PartInfo
from pipelines.run.challenger import PART_KIND
from pipelines.run.compare import psi
from pipelines.run.scoring import histogram
from pipelines.storage.base import ObjectStore


def read_scores(
    store: ObjectStore, parts: list[PartInfo], kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """`score` (NaN for null) and `predicted_class` of every part of `kind`, in shard order."""
    scores, classes = [], []
    for part in sorted((p for p in parts if p.kind == kind), key=lambda p: p.shard or 0):
        body = store.get_bytes(part.key)
        if body is None:
            raise FileNotFoundError(f"staged part {part.key} is gone")
        table = pq.read_table(pa.BufferReader(body), columns=["score", "predicted_class"])
        scores.append(table.column("score").to_numpy(zero_copy_only=False))
        classes.append(np.asarray(table.column("predicted_class").to_pylist(), dtype=object))
    if not scores:
        return np.zeros(0), np.zeros(0, dtype=object)
    return np.concatenate(scores).astype("float64"), np.concatenate(classes)


def compare_scores(
    champion: np.ndarray,
    challenger: np.ndarray,
    champion_class: np.ndarray,
    challenger_class: np.ndarray,
    top_k: int,
) -> dict[str, Any]:
    """Agreement at the decision threshold (each model's predicted class), Pearson and Spearman
    correlation, top-k overlap, PSI between the two score distributions (plain JSON types)."""
    from scipy.stats import spearmanr

    if len(champion) != len(challenger):
        raise ValueError(f"{len(champion)} champion scores but {len(challenger)} challenger scores")
    both = ~np.isnan(challenger)
    a, b = champion[both], challenger[both]
    out: dict[str, Any] = {"rows": int(both.sum()), "challenger_unscored": int((~both).sum())}
    if len(a) < 2:
        return out
    k = min(top_k, len(a))
    top_a = np.argsort(-a, kind="stable")[:k]
    top_b = np.argsort(-b, kind="stable")[:k]
    constant = a.std() == 0 or b.std() == 0
    out |= {
        "agreement": float(np.mean(champion_class[both] == challenger_class[both])),
        "pearson": None if constant else float(np.corrcoef(a, b)[0, 1]),
        "spearman": None if constant else float(spearmanr(a, b).statistic),
        "top_k": k,
        "top_k_overlap": len(np.intersect1d(top_a, top_b)) / k,
        "psi": psi(histogram(a), histogram(b)),
        "champion_mean": float(a.mean()),
        "challenger_mean": float(b.mean()),
    }
    return out


def shadow_comparison(store: ObjectStore, parts: list[PartInfo], top_k: int) -> dict[str, Any]:
    """The comparison of a run's staged champion and challenger parts."""
    a, ca = read_scores(store, parts, "scores")
    b, cb = read_scores(store, parts, PART_KIND)
    return compare_scores(a, b, ca, cb, top_k)
