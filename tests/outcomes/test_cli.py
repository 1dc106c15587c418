"""`batchscore labels add`, `runs show` and `generate --labels` through the CLI's entry point, on
runs the real CLI published (`batchscore score` as a process): to a local folder, and to S3
(the session's moto_server)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines.cli.main import main
from tests.cli.tiny import tiny_data, tiny_model
from tests.outcomes.conftest import model_of, published_scores, true_labels
from tests.s3_fixtures import TEST_BUCKET, raw_client

RUN = "2026-11-23"


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_labels_add_and_runs_show_on_a_local_run(
    published: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(published)
    labels = true_labels(published_scores(published / "out"))
    labels.iloc[:1_500].to_csv("first.csv", index=False)
    labels.iloc[1_500:].to_parquet("rest.parquet")
    out = ("--output", "file://out")
    first = ("labels", "add", "--labels", "first.csv", *out)
    code, stdout, err = _cli(capsys, *first, "--run-key", RUN)
    assert code == 0, err
    model = model_of(published / "out")
    assert f"run {model}/{RUN}: stored (1,500 rows joined" in stdout
    assert "labelled 1,500 of 3,000 (50.00%)" in stdout and "roc_auc=" in stdout
    code, stdout, err = _cli(
        capsys, "labels", "add", "--labels", "rest.parquet", *out,
        "--from", "2026-11-01", "--to", "2026-11-30", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["runs"][0]["evaluation"]["coverage"] == 1.0
    code, stdout, err = _cli(capsys, "runs", "show", RUN, *out)
    assert code == 0, err
    assert "realized     roc_auc=" in stdout and "labelled 3,000 of 3,000" in stdout
    code, stdout, _ = _cli(capsys, "runs", "show", RUN, *out, "--json")
    assert json.loads(stdout)["realized"]["labelled"] == 3_000
    code, _, err = _cli(capsys, *first, "--run-key", "x")
    assert code == 2 and f"published runs there: {model}/{RUN}" in err
    code, _, err = _cli(capsys, *first, "--run-key", RUN, "--from", "2026-11-01")
    assert code == 2 and "either --run-key or --from/--to" in err


def test_labels_add_on_a_run_published_to_s3(
    tmp_path: Path,
    s3_endpoint: str,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sha = tiny_model(tmp_path)
    ids = tiny_data(tmp_path / "data.parquet", 500, 50, seed=4)
    env = {"BATCHSCORE__S3__ENDPOINT_URL": s3_endpoint, "BATCHSCORE__S3__REGION": "us-east-1"}
    uri = f"s3://{TEST_BUCKET}/runs"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BATCHSCORE__SCORE__PROGRESS", "off")
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(
        capsys, "score", "--input", "data.parquet", "--model", "model.skops",
        "--model-sha256", sha, "--id-column", "patient_id", "--output", uri, "--run-key", RUN,
    )  # fmt: skip
    assert code == 0, err
    rows = "".join(f"{i},{k % 2}\n" for k, i in enumerate(ids[:300]))
    (tmp_path / "labels.csv").write_text("patient_id,label\n" + rows)
    args = ("labels", "add", "--labels", "labels.csv", "--output", uri, "--run-key", RUN, "--json")
    code, stdout, err = _cli(capsys, *args)
    assert code == 0, err
    run = json.loads(stdout)["runs"][0]
    assert run["status"] == "stored" and run["rows_joined"] == 300
    assert run["evaluation"]["labelled"] == 300 and run["evaluation"]["coverage"] == 0.6
    client = raw_client(s3_endpoint)

    def keys() -> list[str]:
        listing = client.list_objects_v2(Bucket=s3_bucket, Prefix="runs/")
        return sorted(o["Key"] for o in listing.get("Contents", []))

    labels_keys = [k for k in keys() if "/labels/" in k]
    assert len(labels_keys) == 4, labels_keys  # delivery parquet + json, evaluation json + html
    before = keys()
    code, stdout, err = _cli(capsys, *args)
    assert code == 0, err
    assert json.loads(stdout)["runs"][0]["status"] == "already delivered"
    assert keys() == before
    code, stdout, err = _cli(capsys, "runs", "show", RUN, "--output", uri)
    assert code == 0 and "labelled 300 of 500" in stdout, stdout + err


def test_generate_writes_the_score_sets_labels_and_leaves_the_score_set_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ("generate", "--rows", "2000", "--out")
    assert _cli(capsys, *args, "score.parquet", "--labels", "late.parquet")[0] == 0
    score, late = pd.read_parquet("score.parquet"), pd.read_parquet("late.parquet")
    assert "label" not in score.columns and list(late.columns) == ["customer_id", "label"]
    assert late["customer_id"].tolist() == score["customer_id"].tolist()
    assert set(late["label"]) == {0, 1}
    assert _cli(capsys, *args, "plain.parquet")[0] == 0
    assert Path("plain.parquet").read_bytes() == Path("score.parquet").read_bytes()
