"""A challenger (shadow) model: scored in the same pass, published as its own part kind, compared
row by row; the champion's scores are byte-identical to a run without it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy.stats import spearmanr
from sklearn.ensemble import HistGradientBoostingClassifier

from pipelines.model.artifact import Feature, load_model, save_model
from pipelines.run.compare import psi
from pipelines.run.scoring import histogram
from tests.cli.tiny import BATCHSCORE, FEATURES, tiny_data, tiny_model

ROWS = 6_000


def _challenger(folder: Path) -> Path:
    """A different model of the same features and classes: gradient boosting on other data."""
    rng = np.random.default_rng(5)
    x = pd.DataFrame({"age": rng.normal(50, 10, 2000), "bmi": rng.normal(25, 4, 2000)})
    y = ((x["age"] - 50) / 10 + (x["bmi"] - 25) / 4 + rng.normal(0, 1, 2000) > 0).astype("int64")
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x, y)
    path = folder / "challenger" / "challenger.skops"
    path.parent.mkdir()
    save_model(model, path, name="tiny-hgb", features=[Feature(f, "numeric") for f in FEATURES],
               training={"rows": 2000}, metrics={}, params={})  # fmt: skip
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("challenger")
    sha = tiny_model(folder)
    challenger = _challenger(folder)
    tiny_data(folder / "data.parquet", ROWS, 50, seed=3)
    pq.write_table(
        pq.read_table(folder / "data.parquet"), folder / "data.parquet", row_group_size=2000
    )
    base = [BATCHSCORE, "score", "--input", "data.parquet", "--model", "model.skops",
            "--model-sha256", sha, "--id-column", "patient_id", "--run-key", "r1",
            "--set", "score.shard_rows=2500", "--set", "score.progress=off"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHSCORE")}
    out = {}
    for name, extra in {"alone": [], "shadow": ["--set", f"model.challenger={challenger}"]}.items():
        done = subprocess.run([*base, "--output", f"file://{name}", *extra], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr
        (path,) = (folder / name).glob("*/r1/manifest.json")
        out[name] = json.loads(path.read_text())
        out[f"{name}_stderr"] = done.stderr
    out["folder"], out["challenger"] = folder, challenger
    return out


def test_the_champion_scores_are_byte_identical_with_a_challenger(runs) -> None:
    def scores(m: dict) -> list[tuple[int, str]]:
        return [(p["shard"], p["sha256"]) for p in m["parts"] if p["kind"] == "scores"]

    assert scores(runs["shadow"]) == scores(runs["alone"])
    assert runs["shadow"]["counts"] == runs["alone"]["counts"]
    kinds = [p["kind"] for p in runs["shadow"]["parts"] if p["kind"] == "challenger"]
    assert len(kinds) == runs["shadow"]["shards"] == 3
    assert not [p for p in runs["alone"]["parts"] if p["kind"] == "challenger"]
    assert all(
        "/challenger/part-" in p["key"]
        for p in runs["shadow"]["parts"]
        if p["kind"] == "challenger"
    )


def test_the_comparison_equals_one_computed_from_both_models_predict_proba(runs) -> None:
    folder = runs["folder"]
    frame = pd.read_parquet(folder / "data.parquet")
    champion = load_model(folder / "model.skops", pinned_sha256=runs["shadow"]["model"]["sha256"])
    ch = runs["shadow"]["challenger"]["model"]
    challenger = load_model(runs["challenger"], pinned_sha256=ch["sha256"]).estimator
    champion = champion.estimator
    a = champion.predict_proba(frame[FEATURES])[:, 1]
    b = challenger.predict_proba(frame[FEATURES])[:, 1]
    got = runs["shadow"]["challenger"]
    c = got["comparison"]
    assert got["model"]["name"] == "tiny-hgb"
    assert c["rows"] == ROWS and c["challenger_unscored"] == 0
    assert c["agreement"] == pytest.approx(np.mean((a >= 0.5) == (b >= 0.5)), abs=1e-12)
    assert c["pearson"] == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-12)
    assert c["spearman"] == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    k = c["top_k"]
    assert k == 1000
    overlap = len(set(np.argsort(-a)[:k]) & set(np.argsort(-b)[:k])) / k
    assert c["top_k_overlap"] == pytest.approx(overlap)
    assert c["psi"] == pytest.approx(psi(histogram(a), histogram(b)))
    assert "challenger tiny-hgb" in runs["shadow_stderr"]


def test_challenger_parts_line_up_with_the_scores_row_by_row(runs) -> None:
    folder = runs["folder"]
    parts = {(p["kind"], p["shard"]): p["key"] for p in runs["shadow"]["parts"]}
    (root,) = (folder / "shadow").glob("*")
    for shard in range(3):
        ids = pq.read_table(root.parent / parts[("scores", shard)]).column("patient_id")
        shadow = pq.read_table(root.parent / parts[("challenger", shard)])
        assert shadow.column("patient_id").equals(ids)
        assert shadow.column("score").null_count == 0


def test_the_report_shows_the_comparison_and_the_estimate(runs) -> None:
    folder = runs["folder"]
    (html,) = (folder / "shadow").glob("*/r1/attempts/*/reports/quality.html")
    page = html.read_text()
    assert "Challenger: tiny-hgb" in page and "Spearman correlation" in page
    assert f"{runs['shadow']['challenger']['comparison']['spearman']:.4f}" in page
    assert "Estimated performance" in page and "expected ROC AUC" in page
