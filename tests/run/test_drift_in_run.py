"""Drift in the run itself, with a model, baseline and data made here (not the demo): the real
CLI publishes and flags a drifted night, `block_on_fail` publishes nothing and files the report
under failed/, N shards judge exactly as one, and a model without a baseline says so once."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipelines.model.artifact import Feature, save_model
from tests.cli.tiny import BATCHSCORE

FEATURES = {"dose": "numeric", "weight": "numeric", "ward": "categorical"}


def _patients(rows: int, seed: int, dose_mean: float = 5.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "patient": [f"P{seed}-{k:07d}" for k in range(rows)],
            "dose": rng.normal(dose_mean, 1.5, rows),
            "weight": rng.gamma(9, 8, rows),
            "ward": rng.choice(np.array(["A", "B", "C"], dtype=object), rows, p=[0.5, 0.3, 0.2]),
        }
    )
    logit = 0.8 * (frame["dose"] - 5) + np.where(frame["ward"] == "C", 1.0, 0.0)
    frame["outcome"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return frame


def _cli(folder: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHSCORE")}
    done = subprocess.run([BATCHSCORE, *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert (done.returncode == 0) == ok, done.stderr
    return done


def _write(frame: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(frame.drop(columns="outcome"), preserve_index=False)
    pq.write_table(table, path, row_group_size=2_000)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ward")
    train = _patients(6_000, seed=1)
    pre = ColumnTransformer(
        [("num", StandardScaler(), ["dose", "weight"]), ("cat", OneHotEncoder(), ["ward"])]
    )
    model = make_pipeline(pre, LogisticRegression()).fit(train[list(FEATURES)], train["outcome"])
    save_model(model, folder / "own.skops", name="ward-model",
               features=[Feature(n, k) for n, k in FEATURES.items()],
               training={"rows": len(train)}, metrics={}, params={})  # fmt: skip
    train.to_parquet(folder / "train.parquet", index=False)
    _cli(folder, "baseline", "--data", "train.parquet", "--model", "own.skops",
         "--label-column", "outcome", "--segment", "ward")  # fmt: skip
    _write(_patients(6_000, seed=2), folder / "calm.parquet")
    _write(_patients(6_000, seed=3, dose_mean=6.5), folder / "shifted.parquet")  # +1 std
    return folder


def _score(folder: Path, data: str, key: str, *extra: str, ok: bool = True):
    args = ["score", "--input", data, "--model", "own.skops", "--id-column", "patient",
            "--run-key", key, "--set", "monitoring.segments=[ward]", *extra]  # fmt: skip
    return _cli(folder, *args, ok=ok)


def _manifest(folder: Path, key: str, out: str = "out") -> dict:
    (path,) = (folder / out).glob(f"*/{key}/manifest.json")
    return json.loads(path.read_text())


def test_a_drifted_night_is_published_and_flagged_and_a_calm_one_is_not(project: Path) -> None:
    _score(project, "calm.parquet", "calm")
    _score(project, "shifted.parquet", "shifted")
    calm, shifted = _manifest(project, "calm"), _manifest(project, "shifted")
    # no feature drifted; ward C's positive rate is 1.6x ward A's (as in training, a real effect
    # of the model), past segment_ratio_max 1.25: the bias check warns on its own
    assert calm["monitoring"]["decision"]["flagged"] == []
    assert calm["monitoring"]["decision"]["segments_flagged"] == ["ward"]
    assert calm["monitoring"]["status"] == "warn"
    drift = shifted["monitoring"]
    assert drift["status"] == "fail"
    assert drift["features"][0]["name"] == "dose" and drift["features"][0]["status"] == "fail"
    assert drift["decision"]["flagged"][0] == "dose"
    assert drift["baseline"]["sha256"] == calm["monitoring"]["baseline"]["sha256"]
    assert {s["column"] for s in drift["segments"]} == {"ward"}
    assert shifted["estimated_performance"]["auc"] > 0.5
    (html,) = (project / "out").glob("*/shifted/attempts/*/reports/quality.html")
    assert "dose" in html.read_text() and '<svg class="drift-chart"' in html.read_text()


def test_block_on_fail_publishes_nothing_and_files_the_report(project: Path) -> None:
    done = _score(project, "shifted.parquet", "blocked", "--output", "file://blocked",
                  "--set", "monitoring.drift.block_on_fail=true", ok=False)  # fmt: skip
    assert done.returncode == 2
    assert "block_on_fail" in done.stderr and "dose" in done.stderr
    assert not list((project / "blocked").rglob("manifest.json"))
    assert list((project / "blocked").glob("*/blocked/failed/*/quality.html"))


def test_n_shards_judge_exactly_as_one(project: Path) -> None:
    _score(project, "shifted.parquet", "one", "--output", "file://one",
           "--set", "score.shard_rows=1000000")  # fmt: skip
    _score(project, "shifted.parquet", "one", "--output", "file://three",
           "--set", "score.shard_rows=2000", "--workers", "2")  # fmt: skip
    one, three = _manifest(project, "one", "one"), _manifest(project, "one", "three")
    assert (one["shards"], three["shards"]) == (1, 3)
    assert one["monitoring"] == three["monitoring"]
    assert one["estimated_performance"] == three["estimated_performance"]


def test_a_model_without_a_baseline_says_so_once_and_scores(project: Path, tmp_path: Path) -> None:
    for name in ("own.skops", "own.card.json", "calm.parquet"):
        (tmp_path / name).write_bytes((project / name).read_bytes())
    done = _score(tmp_path, "calm.parquet", "bare")
    assert done.stderr.count("no drift baseline") == 1
    assert "batchscore baseline --data" in done.stderr
    assert _manifest(tmp_path, "bare")["monitoring"]["status"] == "no_baseline"


@pytest.mark.parametrize(
    "classes",
    [
        pa.array([1, 0, None, 2, -1, 1], pa.int64()),
        pa.array([1, 0, 7, 1], pa.int8()),
        pa.array([1, 0, 2], pa.uint8()),
        pa.array(["yes", "no", None, "1"]),
        pa.array([1.0, 0.0, -0.0]),
        pa.array([True, False]),
    ],
)
def test_the_positive_mask_equals_comparing_the_classes_as_text(classes: pa.Array) -> None:
    import pyarrow.compute as pc

    from pipelines.run.monitors import positive_mask

    column = pa.chunked_array([classes])
    for positive in ("1", "0", "-1", "01", "+1", " 1", "1000", "1.0", "-0", "yes", "true", "True"):
        text = pc.cast(column, pa.string())
        want = pc.equal(text, positive).to_numpy(zero_copy_only=False)
        got = positive_mask(column, positive)
        assert got.dtype == want.dtype and got.tolist() == want.tolist(), positive
