"""Calibrated alarms on demo-like data: few false alarms, real shifts flagged and named first."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from pipelines.data.demo import CATEGORIES, LABEL_COLUMN
from pipelines.monitoring.baseline import Baseline
from pipelines.monitoring.build import build_baseline
from pipelines.monitoring.evaluate import evaluate
from pipelines.monitoring.profile import DriftState
from pipelines.monitoring.settings import MonitoringSettings
from tests.monitoring.draws import FEATURES, SHARES, draw, fit

RUNS, ROWS = 100, 10_000
SHIFTED = ["age", "account_balance", "credit_score", "utilization", "avg_txn_amount"]
SETTINGS = MonitoringSettings()


@pytest.fixture(scope="module")
def reference() -> tuple[Baseline, object]:
    """One baseline for all runs: 60k training rows, the score on a 12k held-out split."""
    train, held_out = draw(60_000, seed=1), draw(12_000, seed=2)
    model = fit(train)
    score = model.predict_proba(held_out[FEATURES])[:, 1]
    baseline = build_baseline(
        train[FEATURES],
        score=score,
        labels=held_out[LABEL_COLUMN].to_numpy(),
        positive=score > 0.5,
    )
    return baseline, model


def _runs(reference: tuple[Baseline, object], make: Callable[[int], pd.DataFrame]) -> list[dict]:
    baseline, model = reference
    results = []
    for run in range(RUNS):
        frame = make(1_000 + run)
        score = model.predict_proba(frame[FEATURES])[:, 1]  # type: ignore[attr-defined]
        state = DriftState.from_baseline(baseline, SETTINGS)
        state.update(frame[FEATURES], score, score > 0.5)
        results.append(evaluate(baseline, state, SETTINGS))
    return results


def test_no_drift_alarms_in_at_most_5_of_100_runs(reference: tuple[Baseline, object]) -> None:
    results = _runs(reference, lambda seed: draw(ROWS, seed))
    alarms = [r["decision"]["flagged"] for r in results if r["status"] != "ok"]
    assert len(alarms) <= 5, alarms


def test_a_half_std_shift_in_5_features_is_flagged_and_named_first(
    reference: tuple[Baseline, object],
) -> None:
    baseline = reference[0]

    def shifted(seed: int) -> pd.DataFrame:
        frame = draw(ROWS, seed)
        for col in SHIFTED:
            frame[col] = frame[col] + 0.5 * baseline.features[col].std  # type: ignore[union-attr]
        return frame

    results = _runs(reference, shifted)
    hits = [
        r
        for r in results
        if r["status"] != "ok" and {f["name"] for f in r["features"][:5]} == set(SHIFTED)
    ]
    assert len(hits) >= 95, [r["decision"]["flagged"] for r in results if r not in hits][:5]
    assert all(set(r["decision"]["flagged"]) - {"score"} == set(SHIFTED) for r in hits[:50])


def test_one_category_moved_10_points_is_flagged_and_named_first(
    reference: tuple[Baseline, object],
) -> None:
    regions = len(CATEGORIES["region"])
    moved = np.full(regions, (1 - 0.3) / (regions - 1))
    moved[0] = 0.3  # "north": 20% -> 30%, the others share the rest evenly
    assert np.allclose(SHARES["region"], 0.2)
    results = _runs(reference, lambda seed: draw(ROWS, seed, {"region": moved}))
    hits = [r for r in results if r["status"] != "ok" and r["features"][0]["name"] == "region"]
    assert len(hits) >= 95, [r["decision"]["flagged"] for r in results if r not in hits][:5]
    assert all(r["features"][0]["linf"] == pytest.approx(0.1, abs=0.03) for r in hits)
