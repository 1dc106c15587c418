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
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.publish.manifest import PartInfo
from pipelines.run.challenger import PART_KIND
from pipelines.run.compare import psi
from pipelines.run.scoring import histogram
from pipelines.storage.base import ObjectStore


def read_scores(
    store: ObjectStore, parts: list[PartInfo], kind: str
) -> tuple[np.ndarray, pa.ChunkedArray]:
    """`score` (NaN for null) and `predicted_class` of every part of `kind`, in shard order
    (the classes stay in Arrow: turning millions of them into Python objects cost seconds)."""
    scores, classes = [], []
    for part in sorted((p for p in parts if p.kind == kind), key=lambda p: p.shard or 0):
        body = store.get_bytes(part.key)
        if body is None:
            raise FileNotFoundError(f"staged part {part.key} is gone")
        table = pq.read_table(pa.BufferReader(body), columns=["score", "predicted_class"])
        scores.append(table.column("score").to_numpy(zero_copy_only=False))
        classes.extend(table.column("predicted_class").chunks)
    if not scores:
        return np.zeros(0), pa.chunked_array([], pa.string())
    return np.concatenate(scores).astype("float64"), pa.chunked_array(classes)


def descending_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranks from the largest (ties get their average rank, as Spearman's rho needs) and the
    order of one stable sort: its first k are the top k, ties going to the earlier row."""
    order = np.argsort(-values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    ends = np.append(starts[1:], len(values))
    average = (starts + ends + 1) / 2.0  # ranks 1..n: a tie group shares its mean position
    ranks = np.empty(len(values), dtype="float64")
    ranks[order] = np.repeat(average, ends - starts)
    return ranks, order


def agreement(champion: Any, challenger: Any, both: np.ndarray) -> float:
    """Share of rows where the two models predict the same class (counted in Arrow)."""
    a, b = (_arrow(x).filter(pa.array(both)) for x in (champion, challenger))
    if a.type != b.type:  # e.g. 1 and "1": the same class label, written two ways
        a, b = pc.cast(a, pa.string()), pc.cast(b, pa.string())
    same = pc.sum(pc.fill_null(pc.equal(a, b), False)).as_py() or 0
    return same / len(a) if len(a) else 0.0


def _arrow(values: Any) -> pa.ChunkedArray:
    if isinstance(values, pa.ChunkedArray):
        return values
    if isinstance(values, pa.Array):
        return pa.chunked_array([values])
    return pa.chunked_array([pa.array(np.asarray(values).tolist())])


def compare_scores(
    champion: np.ndarray,
    challenger: np.ndarray,
    champion_class: Any,
    challenger_class: Any,
    top_k: int,
) -> dict[str, Any]:
    """Agreement at the decision threshold (each model's predicted class), Pearson and Spearman
    correlation, top-k overlap, PSI between the two score distributions (plain JSON types)."""
    if len(champion) != len(challenger):
        raise ValueError(f"{len(champion)} champion scores but {len(challenger)} challenger scores")
    both = ~np.isnan(challenger)
    a, b = champion[both], challenger[both]
    out: dict[str, Any] = {"rows": int(both.sum()), "challenger_unscored": int((~both).sum())}
    if len(a) < 2:
        return out
    k = min(top_k, len(a))
    # one stable sort per model gives both its ranks (Spearman) and its top k
    rank_a, order_a = descending_ranks(a)
    rank_b, order_b = descending_ranks(b)
    constant = a.std() == 0 or b.std() == 0
    out |= {
        "agreement": agreement(champion_class, challenger_class, both),
        "pearson": None if constant else float(np.corrcoef(a, b)[0, 1]),
        "spearman": None if constant else float(np.corrcoef(rank_a, rank_b)[0, 1]),
        "top_k": k,
        "top_k_overlap": len(np.intersect1d(order_a[:k], order_b[:k])) / k,
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
