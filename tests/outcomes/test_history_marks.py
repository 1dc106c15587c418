"""Concept drift end to end on the demo: the model's estimated AUC stays where the baseline put
it, the labels that arrive say otherwise, and `batchscore monitor` marks the run."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from tests.cli.tiny import BATCHSCORE


def _cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHSCORE")}
    done = subprocess.run([BATCHSCORE, *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def test_labels_that_no_longer_follow_the_features_mark_the_run(tmp_path: Path) -> None:
    sizes = ["--set", "generate.train_rows=20000", "--set", "generate.score_rows=8000"]
    _cli(tmp_path, "generate", *sizes)
    _cli(tmp_path, "train", "--set", "train.max_iter=30")
    data = ["--input", "data/score.parquet", "--model", "models/model.skops",
            "--id-column", "customer_id", "--set", "score.progress=off"]  # fmt: skip
    for key in ("calm", "shifted"):
        _cli(tmp_path, "score", *data, "--run-key", key)
    labels = pd.read_parquet(tmp_path / "data" / "score_labels.parquet")
    _cli(tmp_path, "labels", "add", "--labels", "data/score_labels.parquet", "--run-key", "calm")
    shuffled = labels.assign(label=np.random.default_rng(0).permutation(labels["label"].to_numpy()))
    shuffled.to_parquet(tmp_path / "shuffled.parquet", index=False)  # the relation is gone
    _cli(tmp_path, "labels", "add", "--labels", "shuffled.parquet", "--run-key", "shifted")
    _cli(tmp_path, "monitor", "--out", "history")

    rows = {r["run_key"]: r for r in csv.DictReader((tmp_path / "history" / "history.csv").open())}
    calm, shifted = rows["calm"], rows["shifted"]
    assert abs(float(calm["estimated_auc"]) - float(calm["realized_auc"])) < 0.02
    assert float(shifted["realized_auc"]) < 0.55 < float(shifted["estimated_auc"])
    assert not calm["realized_performance_flag"]
    assert "realized AUC" in shifted["realized_performance_flag"]
    assert float(shifted["realized_coverage"]) == 1.0
