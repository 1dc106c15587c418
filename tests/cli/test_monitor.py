"""`batchscore monitor` over runs published by real `batchscore score` processes, locally and on
S3 (the session moto_server), and its CSV read by a real `dvc plots show`.

`monitor` runs in this process through `main`, the function the `batchscore` script calls (a
process start costs seconds on a busy CI machine); the runs it reads are real processes'."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipelines.cli.main import main
from tests.cli.tiny import batchscore, tiny_data, tiny_model
from tests.s3_fixtures import TEST_BUCKET, raw_client

KEYS = ["2026-12-01", "2026-12-02", "2026-12-03"]
DVC = str(Path(sys.executable).parent / "dvc")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three nights of one tiny model, published to ./out (the built-in output.uri);
    the patients grow older each night, so the score mean rises. No GX gates: the history reads
    none of them, and GX's start-up would double the time the three runs take."""
    here = tmp_path_factory.mktemp("monitor")
    sha = tiny_model(here)
    common = ["--model", "model.skops", "--model-sha256", sha, "--id-column", "patient_id"]
    common.append("--no-validation")
    for n, key in enumerate(KEYS):
        tiny_data(here / f"{key}.parquet", 300 + 100 * n, 45 + 5 * n, seed=n)
        done = batchscore(here, "score", "--input", f"{key}.parquet", "--run-key", key, *common)
        assert done.returncode == 0, done.stderr
    return here


Monitor = Callable[..., tuple[int, str, str]]


@pytest.fixture
def monitor(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Monitor:
    """`batchscore monitor ARGS` run in a folder: exit code, stdout, stderr."""

    def run(cwd: Path, *args: str) -> tuple[int, str, str]:
        with monkeypatch.context() as m:
            m.chdir(cwd)
            for name in [n for n in os.environ if n.startswith("BATCHSCORE")]:
                m.delenv(name)
            code = main(["monitor", *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def _model(folder: Path) -> str:
    """The model's name as the runs published it (its folder under the output)."""
    (name,) = [p.name for p in (folder / "out").iterdir() if p.is_dir()]
    return name


def _history(out: Path) -> dict[str, Any]:
    return json.loads((out / "history.json").read_text())


def _page_images(page: str) -> list[ET.Element]:
    """The page's history charts, each parsed as the SVG element it is."""
    found = re.findall(r'<svg class="history-chart".*?</svg>', page, flags=re.S)
    return [ET.fromstring(svg) for svg in found]


def test_monitor_writes_a_page_json_and_csv_with_one_row_per_run(
    folder: Path, monitor: Monitor
) -> None:
    code, stdout, stderr = monitor(folder)
    assert code == 0, stderr
    out = folder / "reports" / "monitor"
    assert f"history of 3 run(s) under file://{folder / 'out'}:" in stdout
    for name in ("history.html", "history.json", "history.csv"):
        assert f"reports/monitor/{name}" in stdout and (out / name).is_file()
    runs = _history(out)["runs"]
    assert [r["run_key"] for r in runs] == KEYS and [r["run"] for r in runs] == [1, 2, 3]
    assert [r["rows_in"] for r in runs] == [300, 400, 500]
    assert all(r["quarantine_share"] == 0 and r["model"] == _model(folder) for r in runs)
    assert all(r["drift_status"] in ("off", "no_baseline") for r in runs)  # no baseline yet
    means = [r["score_mean"] for r in runs]
    assert all(0 < m < 1 for m in means) and means == sorted(means)  # older, higher scores
    header, *lines = (out / "history.csv").read_text().splitlines()
    assert header.startswith("run,run_key,model,") and len(lines) == 3
    images = _page_images((out / "history.html").read_text())
    # rows, quarantined share, score mean, estimated performance (no PSI: these have no baseline)
    assert len(images) == 4
    for svg in images:
        series = svg.findall(".//{*}g[@class='series']")
        assert series and all(len(g.findall("{*}circle")) == 3 for g in series)  # one per run
        assert svg.get("aria-label") and svg.get("viewBox")


def test_help_says_what_it_does_with_examples(tmp_path: Path, monitor: Monitor) -> None:
    code, stdout, _ = monitor(tmp_path, "--help")
    assert code == 0 and "Usage: batchscore monitor" in stdout
    assert "batchscore monitor --output s3://" in stdout.split("Examples:")[1]
    assert "--last N" in stdout and "reports/monitor" in stdout


def test_last_keeps_the_latest_runs_and_model_filters(folder: Path, monitor: Monitor) -> None:
    code, _, stderr = monitor(folder, "--last", "2", "--out", "last2")
    assert code == 0, stderr
    assert [r["run_key"] for r in _history(folder / "last2")["runs"]] == KEYS[1:]
    code, stdout, _ = monitor(folder, "--model", "nobody", "--out", "none")
    assert code == 0 and "history of no published runs" in stdout
    assert _history(folder / "none")["runs"] == []
    assert "No published run was found" in (folder / "none" / "history.html").read_text()
    code, _, stderr = monitor(folder, "--last", "0")
    assert code == 2 and "Invalid value for '--last'" in stderr


def test_dvc_plots_show_draws_the_csv(folder: Path, tmp_path: Path, monitor: Monitor) -> None:
    code, _, stderr = monitor(folder, "--out", str(tmp_path / "reports"))
    assert code == 0, stderr
    (tmp_path / "dvc.yaml").write_text(
        "plots:\n"
        "  - reports/history.csv:\n"
        "      x: run\n"
        "      y: [rows_in, quarantine_share, score_mean]\n"
    )
    subprocess.run([DVC, "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    shown = subprocess.run(
        [DVC, "plots", "show", "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    (plot,) = json.loads(shown.stdout)["data"]["reports/history.csv"]
    values = plot["content"]["data"]["values"]
    assert {v["field"] for v in values} == {"rows_in", "quarantine_share", "score_mean"}
    rows = sorted(
        (v["run"], v["run_key"], v["dvc_inferred_y_value"])
        for v in values
        if v["field"] == "rows_in"
    )
    assert rows == [("1", KEYS[0], "300"), ("2", KEYS[1], "400"), ("3", KEYS[2], "500")]
    assert plot["content"]["encoding"]["x"] == {
        "field": "run",
        "type": "quantitative",
        "title": "run",
    }


def _with_drift(manifest: dict[str, Any], n: int) -> dict[str, Any]:
    """The manifest as it will be once the scoring pass writes its drift block."""
    status = ["ok", "warn", "fail"][n]
    features = [
        {"name": "age", "kind": "numeric", "status": status, "psi": 0.02 + 0.15 * n},
        {"name": "bmi", "kind": "numeric", "status": "ok", "psi": 0.01},
    ]
    flagged = ["age"] if n else []
    return manifest | {
        "monitoring": {
            "status": status,
            "baseline": {"sha256": "ef" * 32, "rows": 300, "path": None},
            "rows": manifest["counts"]["rows_in"],
            "decision": {"rule": "holm", "flagged": flagged, "alpha": 0.01},
            "features": features,
            "score": {"name": "score", "kind": "numeric", "status": "ok", "psi": 0.03 * n},
            "segments": [],
        },
        "estimated_performance": {"auc": 0.8 - 0.05 * n, "method": "cbpe"},
    }


def test_monitor_reads_the_runs_from_s3(
    folder: Path, s3_endpoint: str, s3_bucket: str, tmp_path: Path, monitor: Monitor
) -> None:
    """The published objects under s3://bucket/runs, manifests carrying their drift blocks."""
    client = raw_client(s3_endpoint)
    bucket = folder / "out"
    for path in sorted(p for p in bucket.rglob("*") if p.is_file()):
        key = path.relative_to(bucket).as_posix()
        body = path.read_bytes()
        if path.name == "manifest.json":
            n = KEYS.index(path.parent.name)
            body = json.dumps(_with_drift(json.loads(body), n)).encode()
        client.put_object(Bucket=s3_bucket, Key=f"runs/{key}", Body=body)
    uri = f"s3://{TEST_BUCKET}/runs"
    s3 = ["--set", f"s3.endpoint_url={s3_endpoint}", "--set", "s3.max_attempts=2"]
    code, stdout, stderr = monitor(tmp_path, "--output", uri, *s3, "--last", "2")
    assert code == 0, stderr
    assert f"history of 2 run(s) under {uri}" in stdout
    doc = _history(tmp_path / "reports" / "monitor")
    runs = doc["runs"]
    assert [r["run_key"] for r in runs] == KEYS[1:] and doc["source"] == uri
    assert [r["drift_status"] for r in runs] == ["warn", "fail"]
    assert [r["psi_age"] for r in runs] == pytest.approx([0.17, 0.32]) and doc["features"] == [
        "age",
        "bmi",
    ]
    assert [r["flagged_features"] for r in runs] == ["age", "age"]
    assert [r["estimated_auc"] for r in runs] == pytest.approx([0.75, 0.7])
    assert all(0 < r["score_mean"] < 1 for r in runs)  # from the reports on S3
    page = (tmp_path / "reports" / "monitor" / "history.html").read_text()
    assert 'data-chart="PSI of the most drifted features"' in page
    assert 'data-chart="Estimated and realized performance"' in page
    assert len(_page_images(page)) == 5


def test_a_manifest_that_is_not_json_is_named(
    folder: Path, tmp_path: Path, monitor: Monitor
) -> None:
    shutil.copytree(folder / "out", tmp_path / "out")
    model = _model(folder)
    broken = tmp_path / "out" / model / KEYS[0] / "manifest.json"
    broken.write_text("{not json")
    code, _, stderr = monitor(tmp_path)
    assert code == 2
    assert f"the manifest of run {model}/{KEYS[0]} is not JSON" in stderr
    assert f"{model}/{KEYS[0]}/manifest.json" in stderr and "Fix: re-publish" in stderr
