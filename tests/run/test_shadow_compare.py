"""The champion/challenger comparison against plain references: scipy's Spearman (ties
averaged), a stable argsort's top k, numpy's class agreement; unscored rows left out."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import spearmanr

from pipelines.run.shadow import compare_scores, descending_ranks


def _reference(a, b, ca, cb, k):
    both = ~np.isnan(b)
    a, b, ca, cb = a[both], b[both], ca[both], cb[both]
    top = len(np.intersect1d(np.argsort(-a, kind="stable")[:k], np.argsort(-b, kind="stable")[:k]))
    return {
        "agreement": float(np.mean(ca == cb)),
        "spearman": float(spearmanr(a, b).statistic),
        "pearson": float(np.corrcoef(a, b)[0, 1]),
        "top_k_overlap": top / k,
    }


@pytest.mark.parametrize("levels", [None, 7, 2])  # continuous scores, many ties, two values
def test_matches_the_references(levels: int | None) -> None:
    rng = np.random.default_rng(levels or 0)
    n = 20_000
    a = rng.random(n)
    b = np.clip(a + rng.normal(0, 0.2, n), 0, 1)
    if levels:
        a, b = np.round(a * (levels - 1)) / (levels - 1), np.round(b * (levels - 1)) / (levels - 1)
    b[rng.random(n) < 0.05] = np.nan  # rows the challenger could not score
    ca = np.where(a >= 0.5, "yes", "no").astype(object)
    cb = np.where(np.nan_to_num(b) >= 0.5, "yes", "no").astype(object)
    got = compare_scores(a, b, ca, cb, top_k=500)
    ref = _reference(a, b, ca, cb, 500)
    for key, value in ref.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    assert got["challenger_unscored"] == int(np.isnan(b).sum())


def test_classes_from_arrow_and_written_two_ways() -> None:
    a = np.array([0.1, 0.9, 0.8, 0.2])
    b = np.array([0.2, 0.7, 0.3, np.nan])
    champion = pa.chunked_array([pa.array(["0", "1"]), pa.array(["1", "0"])])
    challenger = pa.chunked_array([pa.array([0, 1, 0, 0])])  # ints: the same labels
    got = compare_scores(a, b, champion, challenger, top_k=2)
    assert got["agreement"] == pytest.approx(2 / 3)  # rows 0, 1 agree, row 2 does not


def test_descending_ranks_average_ties_and_keep_earlier_rows_first() -> None:
    ranks, order = descending_ranks(np.array([0.5, 0.9, 0.5, 0.1, 0.5]))
    assert ranks.tolist() == [3.0, 1.0, 3.0, 5.0, 3.0]
    assert order.tolist() == [1, 0, 2, 4, 3]
