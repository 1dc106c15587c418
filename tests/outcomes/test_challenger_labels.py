"""Labels on a run with a challenger: both models' realized metrics, side by side.

Runs published by the real CLI (`batchscore score` as a process, with and without
`--set model.challenger=PATH`); labels made here from a known rule and added with `labels add`
through the CLI's entry point. The champion (gradient boosting) takes missing values, the
challenger (a logistic regression without an imputer) refuses them, so the rows with a missing
`bmi` are scored by the champion only: the challenger's metrics leave them out and count them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipelines.cli.main import main
from pipelines.errors import InputDataError
from pipelines.model.artifact import Feature, load_model, save_model
from pipelines.outcomes.challenger import AlignedPart
from tests.cli.tiny import FEATURES, batchscore, tiny_data

ROWS, MISSING, RUN = 4_000, 150, "2026-11-23"


def _save(model: object, path: Path, name: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    card = save_model(model, path, name=name, features=[Feature(f, "numeric") for f in FEATURES],
                      training={"rows": 2000}, metrics={}, params={})  # fmt: skip
    return str(card["sha256"])


def _models(folder: Path) -> tuple[str, Path]:
    """Champion (takes NaN) as model.skops; challenger (refuses NaN) in challenger/."""
    rng = np.random.default_rng(5)
    x = pd.DataFrame({"age": rng.normal(50, 10, 2000), "bmi": rng.normal(25, 4, 2000)})
    y = ((x["age"] - 50) / 10 + (x["bmi"] - 25) / 4 + rng.normal(0, 1, 2000) > 0).astype("int64")
    champion = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(x, y)
    sha = _save(champion, folder / "model.skops", "champ")
    challenger = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    path = folder / "challenger" / "challenger.skops"
    _save(challenger, path, "chall")
    return sha, path


def _labels(frame: pd.DataFrame) -> pd.DataFrame:
    """True labels from a known rule of the features (with noise), by ID."""
    rng = np.random.default_rng(11)
    bmi = frame["bmi"].fillna(25)
    z = (frame["age"] - 50) / 8 + (bmi - 25) / 4 + rng.normal(0, 1, len(frame))
    return pd.DataFrame({"patient_id": frame["patient_id"], "label": (z > 0).astype("int64")})


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with both models, an input with missing values, and the same run published to
    `alone/` (no challenger) and `shadow/` (with one); the true labels in labels.parquet."""
    folder = tmp_path_factory.mktemp("challenger-labels")
    sha, challenger = _models(folder)
    tiny_data(folder / "data.parquet", ROWS, 50, seed=3)
    frame = pd.read_parquet(folder / "data.parquet")
    every = ROWS // MISSING
    frame.loc[frame.index[::every][:MISSING], "bmi"] = np.nan
    frame.to_parquet(folder / "data.parquet", index=False, row_group_size=1500)
    _labels(frame).to_parquet(folder / "labels.parquet", index=False)
    base = ("score", "--input", "data.parquet", "--model", "model.skops", "--model-sha256", sha,
            "--id-column", "patient_id", "--run-key", RUN,
            "--set", "score.shard_rows=1500")  # fmt: skip
    for name, extra in {"alone": (), "shadow": ("--set", f"model.challenger={challenger}")}.items():
        done = batchscore(folder, *base, "--output", f"file://{name}", *extra)
        assert done.returncode == 0, done.stderr
    return folder


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _add(capsys: pytest.CaptureFixture[str], out: Path, labels: Path) -> dict:
    args = ("labels", "add", "--labels", str(labels), "--output", f"file://{out}", "--run-key", RUN)
    return json.loads(_cli(capsys, *args, "--json"))


def _evaluation(out: Path) -> dict:
    (path,) = out.glob(f"*/{RUN}/labels/evaluation.json")
    return json.loads(path.read_text())


def _copy(project: Path, name: str, dest: Path) -> Path:
    shutil.copytree(project / name, dest)
    return dest


def test_challenger_metrics_equal_scikit_learns_and_the_champions_are_unchanged(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alone = _copy(project, "alone", tmp_path / "a")
    shadow = _copy(project, "shadow", tmp_path / "s")
    labels = project / "labels.parquet"
    summary = _add(capsys, shadow, labels)["runs"][0]["evaluation"]
    _add(capsys, alone, labels)
    ev, plain = _evaluation(shadow), _evaluation(alone)
    assert "challenger" not in plain
    assert ev["metrics"] == plain["metrics"]  # the champion's numbers do not move
    assert ev["labelled"] == ROWS and ev["conflicting_ids"] == 0
    ch = ev["challenger"]
    assert ch["model"]["name"] == "chall" and ch["deliveries_without_challenger"] == []
    assert ch["unscored"] == MISSING and ch["rows"] == ROWS - MISSING
    assert summary["challenger"]["rows"] == ROWS - MISSING
    frame = pd.read_parquet(project / "data.parquet").merge(pd.read_parquet(labels))
    frame = frame.loc[frame["bmi"].notna()]
    ch_meta = json.loads(next(shadow.glob(f"*/{RUN}/manifest.json")).read_text())["challenger"]
    model = load_model(project / "challenger" / "challenger.skops",
                       pinned_sha256=ch_meta["model"]["sha256"]).estimator  # fmt: skip
    p, y = model.predict_proba(frame[FEATURES])[:, 1], frame["label"].to_numpy()
    pred = model.predict(frame[FEATURES])
    m = ch["metrics"]
    assert m["rows"] == len(y) and m["positives"] == int(y.sum())
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert m["log_loss"] == pytest.approx(log_loss(y, p), abs=1e-12)
    assert m["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    assert m["precision"] == pytest.approx(precision_score(y, pred), abs=1e-12)
    assert m["recall"] == pytest.approx(recall_score(y, pred), abs=1e-12)
    assert m["roc_auc"] != ev["metrics"]["roc_auc"]  # two models, two sets of numbers


def test_the_page_and_runs_show_give_both_models_side_by_side(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shadow = _copy(project, "shadow", tmp_path / "s")
    args = ("labels", "add", "--labels", str(project / "labels.parquet"))
    stdout = _cli(capsys, *args, "--output", f"file://{shadow}", "--run-key", RUN)
    assert "  challenger roc_auc=" in stdout and f"{MISSING:,} unscored" in stdout
    ev = _evaluation(shadow)
    a, b = ev["metrics"]["roc_auc"], ev["challenger"]["metrics"]["roc_auc"]
    (page,) = shadow.glob(f"*/{RUN}/labels/evaluation.html")
    html = page.read_text()
    assert "<th>champion</th><th>challenger</th><th>difference (challenger - champion)</th>" in html
    assert f"<td class=n>{a:.4f}</td><td class=n>{b:.4f}</td><td class=n>{b - a:+.4f}</td>" in html
    assert "Challenger chall" in html and f"{MISSING:,} it could not score" in html
    stdout = _cli(capsys, "runs", "show", RUN, "--output", f"file://{shadow}")
    line = next(x for x in stdout.splitlines() if x.startswith("  challenger   realized "))
    assert f"roc_auc={b:.4f} ({b - a:+.4f})" in line and f"{MISSING:,} unscored" in line
    shown = json.loads(_cli(capsys, "runs", "show", RUN, "--output", f"file://{shadow}", "--json"))
    assert shown["realized"]["challenger"] == ev["challenger"]


def test_partial_deliveries_in_either_order_give_the_same_challenger_numbers(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = pd.read_parquet(project / "labels.parquet")
    first, second = tmp_path / "first.parquet", tmp_path / "second.parquet"
    labels.iloc[:2_500].to_parquet(first)  # overlapping: rows 2,000-2,499 come twice
    labels.iloc[2_000:].to_parquet(second)
    results = []
    for name, order in {"ab": (first, second), "ba": (second, first)}.items():
        out = _copy(project, "shadow", tmp_path / name)
        for delivery in order:
            _add(capsys, out, delivery)
        _add(capsys, out, order[0])  # the same file again changes nothing
        results.append(_evaluation(out))
    whole = _copy(project, "shadow", tmp_path / "whole")
    _add(capsys, whole, project / "labels.parquet")
    once = _evaluation(whole)
    for ev in results:
        assert len(ev["deliveries"]) == 2
        assert ev["challenger"] == once["challenger"]
        assert ev["metrics"] == once["metrics"]


def test_a_challenger_part_is_read_in_step_whatever_its_row_groups(tmp_path: Path) -> None:
    path = tmp_path / "challenger.parquet"
    table = pa.table({"id": pa.array(range(53), pa.int64()), "score": [k / 53 for k in range(53)]})
    pq.write_table(table, path, row_group_size=7)
    part = AlignedPart(path, ["id", "score"], 5, "here")
    taken = [part.take(n) for n in (10, 1, 13, 29)]
    part.finish()
    assert pa.concat_tables(taken).equals(table)
    short = AlignedPart(path, ["id", "score"], 5, "here")
    with pytest.raises(InputDataError, match="fewer rows"):
        short.take(54)
    extra = AlignedPart(path, ["id", "score"], 5, "here")
    extra.take(50)
    with pytest.raises(InputDataError, match="more rows"):
        extra.finish()
    with pytest.raises(InputDataError, match="no column"):
        AlignedPart(path, ["patient_id"], 5, "here")
