"""`batchscore baseline` on a model and data made here, then drift against it; bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipelines.cli.main import main
from pipelines.errors import ConfigError, SchemaMismatchError
from pipelines.model.artifact import Feature, save_model
from pipelines.monitoring.baseline import check_baseline, load_baseline
from pipelines.monitoring.evaluate import evaluate
from pipelines.monitoring.profile import DriftState
from pipelines.monitoring.settings import MonitoringSettings

FEATURES = {"dose": "numeric", "weight": "numeric", "ward": "categorical"}


def _patients(rows: int, seed: int, dose_mean: float = 5.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "dose": rng.normal(dose_mean, 1.5, rows),
            "weight": rng.gamma(9, 8, rows),
            "ward": rng.choice(np.array(["A", "B", "C"], dtype=object), rows, p=[0.5, 0.3, 0.2]),
        }
    )
    logit = 0.8 * (frame["dose"] - 5) + np.where(frame["ward"] == "C", 1.0, 0.0)
    frame["outcome"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return frame


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with `own.skops` (+ card) and `train.parquet`, not the demo's."""
    folder = tmp_path_factory.mktemp("own")
    train = _patients(5_000, seed=1)
    pre = ColumnTransformer(
        [("num", StandardScaler(), ["dose", "weight"]), ("cat", OneHotEncoder(), ["ward"])]
    )
    model = make_pipeline(pre, LogisticRegression()).fit(train[list(FEATURES)], train["outcome"])
    save_model(
        model,
        folder / "own.skops",
        name="own",
        features=[Feature(n, k) for n, k in FEATURES.items()],
        training={"rows": len(train)},
        metrics={},
        params={},
    )
    train.to_parquet(folder / "train.parquet", index=False)
    return folder


def _cli(folder: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.chdir(folder)  # no params.yaml here: built-in defaults
    monkeypatch.delenv("BATCHSCORE_PARAMS", raising=False)
    return main(["baseline", "--data", "train.parquet", "--model", "own.skops", *args])


@pytest.fixture
def own_baseline(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The own model's baseline, made here if no earlier test of the module made it (the tests
    do not depend on their order)."""
    path = project / "own.baseline.json"
    if not path.is_file():
        assert _cli(project, monkeypatch, "--label-column", "outcome", "--segment", "ward") == 0
    return path


def test_baseline_command_then_drift_on_an_own_model(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _cli(project, monkeypatch, "--label-column", "outcome", "--segment", "ward")
    printed = capsys.readouterr()
    assert code == 0, printed.err
    summary = json.loads(printed.out)
    path = project / "own.baseline.json"
    baseline = load_baseline(path)
    assert summary["baseline"] == str(path) and summary["sha256"] == baseline.sha256
    assert {n: p.kind for n, p in baseline.features.items()} == FEATURES
    perf = baseline.performance
    assert perf is not None and 0.6 < perf["auc"] < 1 and perf["rows"] == 5_000
    assert len(perf["reliability"]["counts"]) == 10 and isinstance(perf["calibrated"], bool)
    assert set(baseline.segments["ward"].values) == {"A", "B", "C"}
    check_baseline(baseline, FEATURES, "own")

    settings = MonitoringSettings(segments=["ward"])
    tonight = _patients(4_000, seed=2, dose_mean=6.0)
    tonight.loc[:99, "ward"] = "D"  # a ward the model never saw
    state = DriftState.from_baseline(baseline, settings)
    score = np.random.default_rng(3).random(len(tonight))
    state.update(tonight[list(FEATURES)], score, score > 0.5)
    result = evaluate(baseline, state, settings)
    assert result["status"] != "ok"
    assert [f["name"] for f in result["features"][:2]] == ["dose", "ward"]
    ward = result["features"][1]
    assert ward["unseen"] == {"D": 100} and ward["unseen_share"] == pytest.approx(0.025)
    assert result["baseline"] == {"sha256": baseline.sha256, "rows": 5_000, "path": str(path)}
    assert result["segments"][0]["column"] == "ward"


def test_bad_command_lines_say_what_is_wrong(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _patients(50, seed=9)
    bad.loc[3, "outcome"] = "maybe"
    bad.to_parquet(project / "bad.parquet", index=False)
    assert _cli(project, monkeypatch, "--label-column", "outcome", "--data", "bad.parquet") == 2
    assert "'maybe'" in capsys.readouterr().err
    assert _cli(project, monkeypatch, "--label-column", "nope") == 2
    assert "lacks the label column ['nope']" in capsys.readouterr().err
    bad.drop(columns=["weight"]).to_parquet(project / "short.parquet", index=False)
    assert _cli(project, monkeypatch, "--data", "short.parquet") == 2
    assert "['weight']" in capsys.readouterr().err
    (project / "junk.parquet").write_bytes(b"not parquet")
    assert _cli(project, monkeypatch, "--data", "junk.parquet") == 2
    assert "cannot read junk.parquet" in capsys.readouterr().err
    assert _cli(project, monkeypatch, "--model-sha256", "ab" * 32) == 2
    assert "refusing to load" in capsys.readouterr().err


def test_unreadable_or_foreign_baselines_are_refused(tmp_path: Path, own_baseline: Path) -> None:
    (tmp_path / "garbage.json").write_bytes(b"\x00\xff{")
    (tmp_path / "card.json").write_text(json.dumps({"name": "a model card"}))
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_baseline(tmp_path / "garbage.json")
    with pytest.raises(ConfigError, match="not a batchscore baseline"):
        load_baseline(tmp_path / "card.json")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_baseline(tmp_path / "absent.json")
    doc = json.loads(own_baseline.read_text())
    doc["features"][0]["counts"] = doc["features"][0]["counts"][:-1]
    (tmp_path / "cut.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=r"malformed: features\[0\] \(dose\)"):
        load_baseline(tmp_path / "cut.json")


def test_a_baseline_for_other_features_or_another_run_is_refused(own_baseline: Path) -> None:
    baseline = load_baseline(own_baseline)
    with pytest.raises(SchemaMismatchError, match=r"lacks \['age'\] and has \['ward'\] too"):
        check_baseline(baseline, ["dose", "weight", "age"], "other")
    with pytest.raises(SchemaMismatchError, match="ward \\(categorical in the baseline"):
        check_baseline(baseline, {**FEATURES, "ward": "numeric"})
    state = DriftState.from_baseline(baseline)
    with pytest.raises(SchemaMismatchError, match=r"lacks column\(s\) \['ward'\]"):
        state.update(pd.DataFrame({"dose": [1.0], "weight": [2.0]}), None)
    other = DriftState.from_json({**state.to_json(), "baseline_sha256": "f" * 64})
    with pytest.raises(ConfigError, match="cannot be merged"):
        state.merge(other)
    with pytest.raises(ConfigError, match="counted against baseline f"):
        evaluate(baseline, other, MonitoringSettings())
