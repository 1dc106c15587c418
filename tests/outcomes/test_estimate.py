"""Estimated performance: exact merges, and on the demo data (calibrated probabilities) within
0.02 of the realized AUC; under concept drift the realized AUC drops and the run is flagged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipelines.data.demo import CATEGORIES, ID_COLUMN, LABEL_COLUMN, NUMERIC, write_dataset
from pipelines.outcomes.estimate import (
    MULTICLASS_REASON,
    EstimateState,
    estimate,
    estimate_for,
    performance_flags,
)

BASELINE = {"auc": 0.80, "accuracy": 0.75, "ece": 0.012, "calibrated": True, "rows": 1}


def test_shards_merged_equal_one_pass_bit_for_bit() -> None:
    p = np.random.default_rng(0).beta(2, 5, 50_001)
    one = EstimateState()
    one.update(p)
    shards = [EstimateState() for _ in range(4)]
    for shard, chunk in zip(shards, np.array_split(p, 4), strict=True):
        for part in np.array_split(chunk, 3):
            shard.update(part)
    merged = shards[3].merge(shards[1]).merge(shards[0].merge(shards[2]))
    assert merged.to_json() == one.to_json()
    assert EstimateState.from_json(one.to_json()).to_json() == one.to_json()
    assert estimate(merged, BASELINE) == estimate(one, BASELINE)


def test_estimate_says_its_method_and_assumption_and_refuses_non_probabilities() -> None:
    state = EstimateState()
    state.update(np.array([0.1, 0.9, 0.8, 0.3]))
    got = estimate(state, BASELINE)
    assert got["method"] == "CBPE-style expected metrics from calibrated probabilities"
    assert "held-out ECE 0.0120" in got["assumption"] and got["calibrated"] is True
    assert got["rows"] == 4 and got["accuracy"] == pytest.approx((0.9 + 0.9 + 0.8 + 0.7) / 4)
    assert estimate(state, None)["calibrated"] is False
    assert estimate_for("multiclass", state, BASELINE) == (None, MULTICLASS_REASON)
    with pytest.raises(Exception, match="outside"):
        state.update(np.array([1.5]))


def test_performance_flags() -> None:
    flags = performance_flags({"auc": 0.79}, {"metrics": {"roc_auc": 0.70}}, 0.80, 0.05)
    assert flags["flagged"] and not flags["estimated"]["flagged"] and flags["realized"]["flagged"]
    assert flags["realized"]["drop"] == pytest.approx(0.10)
    assert "realized AUC 0.7000 is 0.1000 below" in flags["reasons"][0]
    quiet = performance_flags({"auc": 0.79}, None, 0.80, 0.05)
    assert not quiet["flagged"] and quiet["realized"]["auc"] is None
    assert not performance_flags(None, None, None, 0.05)["flagged"]


def _demo_model(folder: Path) -> object:
    train = pd.read_parquet(write_dataset(folder / "train.parquet", 20_000, 5, 5_000))
    cats = list(CATEGORIES)
    prep = make_column_transformer(
        (make_pipeline(SimpleImputer(), StandardScaler()), NUMERIC),
        (OneHotEncoder(handle_unknown="ignore"), cats),
    )
    model = make_pipeline(prep, LogisticRegression(max_iter=500))
    return model.fit(train[NUMERIC + cats], train[LABEL_COLUMN])


def test_on_demo_data_the_estimate_is_within_002_of_realized_and_drift_is_flagged(
    tmp_path: Path,
) -> None:
    model = _demo_model(tmp_path)
    score = write_dataset(
        tmp_path / "score.parquet", 20_000, 6, 5_000, False, labels_path=tmp_path / "labels.parquet"
    )
    frame = pd.read_parquet(score)
    labels = pd.read_parquet(tmp_path / "labels.parquet")
    assert LABEL_COLUMN not in frame.columns and (labels[ID_COLUMN] == frame[ID_COLUMN]).all()
    p = model.predict_proba(frame[NUMERIC + list(CATEGORIES)])[:, 1]
    state = EstimateState()
    for chunk in np.array_split(p, 5):
        state.update(chunk)
    est = estimate(state, BASELINE)
    realized = roc_auc_score(labels[LABEL_COLUMN], p)
    assert abs(est["auc"] - realized) < 0.02, (est["auc"], realized)
    assert abs(est["accuracy"] - np.mean(labels[LABEL_COLUMN] == (p > 0.5))) < 0.02
    # Concept drift: the same features, but the outcome no longer follows them.
    drifted = labels[LABEL_COLUMN].sample(frac=1.0, random_state=0).to_numpy()
    drifted_auc = roc_auc_score(drifted, p)
    assert drifted_auc < realized - 0.1
    flags = performance_flags(est, {"roc_auc": drifted_auc}, realized, 0.05)
    assert flags["realized"]["flagged"] and not flags["estimated"]["flagged"]
