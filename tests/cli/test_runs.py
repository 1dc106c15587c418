"""`batchscore runs list|show|diff` on runs published by real `batchscore score` processes.

Two runs of one model on different inputs (the second older on average, so its scores shift),
and a failed attempt (a suite that refuses the input): what a person asks the morning after.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pipelines.run.compare import psi, psi_band
from tests.cli.tiny import batchscore, tiny_data, tiny_model


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    here = tmp_path_factory.mktemp("runs")
    sha = tiny_model(here)
    tiny_data(here / "monday.parquet", 300, 45, seed=1)
    tiny_data(here / "tuesday.parquet", 400, 60, seed=2)
    strict = here / "strict.json"
    strict.write_text(
        json.dumps(
            {
                "name": "strict",
                "expectations": [
                    {"type": "expect_table_row_count_to_be_between", "kwargs": {"max_value": 10}}
                ],
            }
        )
    )
    common = ["--model", "model.skops", "--model-sha256", sha, "--id-column", "patient_id"]
    for key, data, extra in (
        ("mon", "monday.parquet", []),
        ("tue", "tuesday.parquet", []),
        ("wed", "monday.parquet", ["--input-suite", "strict.json"]),
    ):
        done = batchscore(here, "score", "--input", data, "--run-key", key, *common, *extra)
        assert done.returncode == (2 if key == "wed" else 0), done.stderr
    return here


def test_list_has_a_header_and_the_gate_verdict(folder: Path) -> None:
    done = batchscore(folder, "runs", "list")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["RUN", "CREATED", "ROWS", "IN", "SCORED", "QUARANTINED", "GATE"] + [
        "MODEL",
        "VERSION",
    ]
    assert [r.split()[0] for r in rows] == ["tiny/tue", "tiny/mon"]  # newest first
    assert all(r.split()[-2] == "passed" for r in rows)
    gate_at = header.index("GATE")
    assert all(r[gate_at : gate_at + 6] == "passed" for r in rows)  # aligned
    listed = json.loads(batchscore(folder, "runs", "list", "--json").stdout)
    assert {(r["run_key"], r["rows_in"], r["gate"]) for r in listed} == {
        ("mon", 300, "passed"),
        ("tue", 400, "passed"),
    }


def test_list_failed_names_the_attempt_why_and_its_report(folder: Path) -> None:
    done = batchscore(folder, "runs", "list", "--failed")
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()
    assert header.split()[:3] == ["RUN", "ATTEMPT", "FAILED"]
    assert row.startswith("tiny/wed") and "expect_table_row_count_to_be_between" in row
    (failed,) = json.loads(batchscore(folder, "runs", "list", "--failed", "--json").stdout)
    assert failed["run"] == "tiny/wed" and not failed["published_since"]
    report = Path(failed["report"].removeprefix("file://"))
    assert report.is_file() and report.parent.parent.name == "failed"
    assert failed["report"] in row


def test_show_gives_the_verdict_per_suite(folder: Path) -> None:
    done = batchscore(folder, "runs", "show", "tue")
    assert done.returncode == 0, done.stderr
    assert "gate         passed" in done.stdout
    assert "output     passed: suite" in done.stdout and "quarantined 0.00%" in done.stdout
    shown = json.loads(batchscore(folder, "runs", "show", "tiny/tue", "--json").stdout)
    assert shown["gate"] == "passed" and shown["suites"]["output"]["verdict"] == "passed"
    assert shown["manifest"]["counts"]["rows_in"] == 400
    missing = batchscore(folder, "runs", "show", "fri")
    assert missing.returncode == 2 and "run 'fri' is not published" in missing.stderr


def test_diff_gives_counts_psi_and_what_changed(folder: Path) -> None:
    done = batchscore(folder, "runs", "diff", "mon", "tue")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "A = tiny/mon   B = tiny/tue" in text
    assert any(line.split()[:4] == ["rows", "in", "300", "400"] for line in text.splitlines())
    assert "score distribution: PSI " in text
    assert f"input.path: {folder / 'monday.parquet'} -> {folder / 'tuesday.parquet'}" in text
    assert "input.sha256: " in text
    unchanged = next(line for line in text.splitlines() if line.startswith("unchanged:"))
    assert "model.sha256" in unchanged and "suites.output.source" in unchanged
    d = json.loads(batchscore(folder, "runs", "diff", "mon", "tue", "--json").stdout)
    assert d["counts"]["rows_in"] == {"a": 300, "b": 400, "delta": 100}
    assert {c["what"] for c in d["changed"]} >= {"input.path", "input.sha256"}
    scores = d["scores"]
    shares_a = [b["a"] for b in scores["bins"]]
    shares_b = [b["b"] for b in scores["bins"]]
    assert scores["psi"] == pytest.approx(psi(shares_a, shares_b), abs=1e-4)
    assert scores["psi"] > 0.25 and scores["band"] == "major shift"  # ages moved by 15 years
    assert scores["mean_b"] > scores["mean_a"]
    same = json.loads(batchscore(folder, "runs", "diff", "mon", "mon", "--json").stdout)
    assert same["scores"]["psi"] == 0 and same["scores"]["band"] == "stable"
    assert same["changed"] == []


def test_psi_by_hand() -> None:
    """sum((p-q) ln(p/q)); an empty bin counts as 1e-4; bands at 0.1 and 0.25."""
    assert psi([50, 50], [50, 50]) == 0
    assert psi([60, 40], [40, 60]) == pytest.approx(2 * 0.2 * math.log(1.5))
    assert psi([100, 0], [50, 50]) == pytest.approx(
        (1 - 0.5) * math.log(1 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    )
    assert [psi_band(v) for v in (0.0, 0.099, 0.1, 0.25, 0.26)] == [
        "stable",
        "stable",
        "moderate shift",
        "moderate shift",
        "major shift",
    ]
    with pytest.raises(ValueError):
        psi([1, 2], [1, 2, 3])
