"""`batchscore train` writes the demo model's baseline beside it, reproducibly."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipelines.monitoring.baseline import baseline_path_for, check_baseline, load_baseline


def test_training_writes_a_baseline_beside_the_model(model_dir: Path) -> None:
    path = baseline_path_for(model_dir / "model.skops")
    assert path == model_dir / "model.baseline.json"
    baseline = load_baseline(path)
    card = json.loads((model_dir / "model.card.json").read_text())
    check_baseline(baseline, {f["name"]: f["kind"] for f in card["features"]}, card["name"])
    assert baseline.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert baseline.rows == card["training_data"]["rows"]
    assert baseline.score is not None and baseline.score.rows == card["metrics"]["n_test"]
    perf = baseline.performance
    assert perf is not None and abs(perf["auc"] - card["metrics"]["roc_auc"]) < 1e-4
