"""Shard states merge exactly: 7 uneven shards, in any grouping, equal one pass bit for bit."""

from __future__ import annotations

import json
from functools import reduce

import numpy as np
import pandas as pd

from pipelines.monitoring.baseline import write_baseline
from pipelines.monitoring.build import build_baseline
from pipelines.monitoring.evaluate import evaluate
from pipelines.monitoring.profile import DriftState
from pipelines.monitoring.settings import DriftSettings, MonitoringSettings
from tests.monitoring.draws import FEATURES, draw

SETTINGS = MonitoringSettings(segments=["region", "plan"], drift=DriftSettings(max_unseen=3))


def _tonight(rows: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Demo rows with some unseen categories (more than max_unseen) and missing values."""
    frame = draw(rows, seed=5)
    rng = np.random.default_rng(5)
    picks = rng.random(rows)
    frame.loc[picks < 0.02, "plan"] = [f"promo-{k % 9}" for k in range(int((picks < 0.02).sum()))]
    frame.loc[picks > 0.99, "region"] = None
    frame.loc[(picks > 0.5) & (picks < 0.51), "region"] = "atlantis"
    score = rng.random(rows)
    return frame, score, score > 0.5


def test_seven_uneven_shards_merge_to_one_pass_exactly(tmp_path) -> None:
    train = draw(20_000, seed=4)
    score = np.random.default_rng(4).random(20_000)
    built = build_baseline(
        train[FEATURES], score=score, positive=score > 0.5, segments=train[["region"]]
    )
    baseline = write_baseline(built, tmp_path / "m.baseline.json")
    frame, score, positive = _tonight(30_011)
    one = DriftState.from_baseline(baseline, SETTINGS)
    one.update(frame, score, positive)
    cuts = [0, 17, 4_000, 4_001, 11_500, 19_999, 29_000, len(frame)]
    shards = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        shard = DriftState.from_baseline(baseline, SETTINGS)
        for start in range(a, b, 3_001):  # and in batches within each shard
            end = min(b, start + 3_001)
            shard.update(frame.iloc[start:end], score[start:end], positive[start:end])
        # through JSON, as a shard hands its state over
        shards.append(DriftState.from_json(json.loads(json.dumps(shard.to_json()))))
    assert len(shards) == 7
    in_order = reduce(lambda x, y: x.merge(y), shards)
    tree = (
        (shards[6].merge(shards[0]))
        .merge(shards[3].merge(shards[1]))
        .merge(shards[5].merge(shards[2].merge(shards[4])))
    )
    assert in_order.to_json() == one.to_json() == tree.to_json()
    result = evaluate(baseline, one, SETTINGS)
    assert json.dumps(evaluate(baseline, tree, SETTINGS)) == json.dumps(result)
    plan = next(f for f in result["features"] if f["name"] == "plan")
    assert list(plan["unseen"]) == ["promo-0", "promo-1", "promo-2", "(other unseen values)"]
    assert sum(plan["unseen"].values()) == int(frame["plan"].str.startswith("promo").sum())
    assert plan["status"] != "ok"
    region = next(s for s in result["segments"] if s["column"] == "region")
    assert {v["value"] for v in region["values"]} >= {"atlantis", "(missing)", "north"}
    assert sum(v["rows"] for v in region["values"]) == len(frame)
    json.dumps(result, allow_nan=False)  # plain JSON, no NaN
