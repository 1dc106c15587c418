"""`batchscore suite init` and `batchscore init` end to end: the installed command writes the
files, and the real pipeline (`batchscore validate` / `score`) runs the gate with them."""

from __future__ import annotations

import json
import shlex
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipelines.cli.main import main
from pipelines.config import load_config
from pipelines.quality.suite import load_suite
from pipelines.storage.hashing import sha256_file
from tests.project.conftest import batchscore

ID = "account_id"


def _variants(workspace: Path, out: Path) -> dict[str, Path]:
    """The clean data, and copies with (a) a new category, (b) an out-of-range value, (c) a
    duplicated ID."""
    frame = pd.read_parquet(workspace / "data.parquet")
    variants = {name: frame.copy() for name in ("clean", "new_category", "out_of_range", "dup")}
    variants["new_category"].loc[[3, 700, 2_001], "plan"] = "platinum"
    variants["out_of_range"].loc[[10, 1_500], "age"] = 500
    variants["dup"].loc[42, ID] = variants["dup"].loc[43, ID]
    paths = {}
    for name, data in variants.items():
        data.to_parquet(path := out / f"{name}.parquet", index=False)
        paths[name] = path
    return paths


def _quarantined_by(summary: dict, etype: str, column: str) -> int:
    found = [
        e
        for e in summary["quality"]["input"]["expectations"]
        if e["type"] == etype and e["column"] == column
    ]
    assert len(found) == 1
    return int(found[0]["rows_quarantined"])


def test_suite_init_writes_a_suite_the_real_gate_passes_and_that_catches_bad_copies(
    workspace: Path, tmp_path: Path
) -> None:
    made = batchscore(
        tmp_path, "suite", "init", "--from", str(workspace / "data.parquet"),
        "--id-column", ID, "--out", "suite.json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "wrote suite.json" in made.stdout
    suite = load_suite(tmp_path / "suite.json")
    assert suite.unique_column == ID and len(suite) > 15
    project = batchscore(
        tmp_path, "init", "proj", "--model", str(workspace / "models" / "churn.skops"),
        "--data", str(workspace / "data.parquet"),
    )  # fmt: skip
    assert project.returncode == 0, project.stderr
    data = _variants(workspace, tmp_path)

    def validate(name: str) -> tuple[int, str, dict | None]:
        summary = tmp_path / f"{name}.summary.json"
        done = batchscore(
            tmp_path, "validate", "--params", "proj/params.yaml", "--input-suite", "suite.json",
            "--input", str(data[name]), "--summary", str(summary),
        )  # fmt: skip
        report = json.loads(summary.read_text()) if summary.exists() else None
        return done.returncode, done.stderr, report

    with ThreadPoolExecutor(4) as pool:  # four real runs, each its own process
        runs = dict(zip(data, pool.map(validate, data), strict=True))

    code, err, clean = runs["clean"]
    assert code == 0, err
    assert clean and clean["counts"]["rows_quarantined"] == 0
    assert clean["quality"]["input"]["success"]
    assert clean["quality"]["input"]["suite_source"] == str(tmp_path / "suite.json")

    code, err, new = runs["new_category"]  # row-level: the rows are quarantined
    assert code == 0, err
    assert new and new["counts"]["rows_quarantined"] == 3
    assert _quarantined_by(new, "expect_column_values_to_be_in_set", "plan") == 3

    code, err, wide = runs["out_of_range"]
    assert code == 0, err
    assert wide and wide["counts"]["rows_quarantined"] == 2
    assert _quarantined_by(wide, "expect_column_values_to_be_between", "age") == 2

    code, err, dup = runs["dup"]  # aggregate, exact over the input: the run fails
    assert code == 2 and dup is None
    assert "quality gate failed" in err
    assert f"expect_column_values_to_be_unique({ID})" in err and "1 duplicated value" in err


def test_init_in_an_empty_folder_then_the_printed_command_publishes(
    workspace: Path, tmp_path: Path
) -> None:
    """CSV data: the ID is guessed (the one unique id-named column the model does not use)."""
    shutil.copy(workspace / "data.csv", tmp_path / "customers.csv")
    model = workspace / "models" / "churn.skops"
    made = batchscore(tmp_path, "init", "proj", "--model", str(model), "--data", "customers.csv")
    assert made.returncode == 0, made.stderr
    assert f"ID column {ID!r}: guessed" in made.stdout
    params = yaml.safe_load((tmp_path / "proj" / "params.yaml").read_text())
    assert params["data"] == {
        "path": "../customers.csv",
        "format": "csv",
        "id_column": ID,
        "csv_null_values": [""],
    }
    assert params["model"]["sha256"] == sha256_file(model)
    assert set(params) == {"data", "model", "score", "validation", "output", "run"}
    cfg = load_config(tmp_path / "proj" / "params.yaml", env={})
    assert cfg.data.path == tmp_path / "customers.csv"
    assert cfg.validation.input_suite == tmp_path / "proj" / "validation" / "input_suite.json"
    assert load_suite(cfg.validation.input_suite).unique_column == ID

    line = made.stdout.strip().splitlines()[-1]
    assert line == "next: batchscore score --params proj/params.yaml"
    command = shlex.split(line.removeprefix("next: "))
    ran = batchscore(tmp_path, *command[1:])
    assert ran.returncode == 0, ran.stderr
    assert "3,000 rows in, 3,000 scored, 0 quarantined" in ran.stdout
    manifests = list((tmp_path / "proj" / "out" / "churn").glob("*/manifest.json"))
    assert len(manifests) == 1, "published inside the project folder"
    manifest = json.loads(manifests[0].read_text())
    assert manifest["quality"]["input"]["success"] and manifest["counts"]["rows_scored"] == 3_000

    again = batchscore(tmp_path, "init", "proj", "--model", str(model), "--data", "customers.csv")
    assert again.returncode == 2
    assert "already exist" in again.stderr and "--force" in again.stderr
    forced = batchscore(
        tmp_path, "init", "proj", "--model", str(model), "--data", "customers.csv", "--force"
    )
    assert forced.returncode == 0, forced.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["suite", "init", "--from", "missing.parquet"], "data file missing.parquet not found"),
        (
            ["suite", "init", "--from", "{data}", "--id-column", "acount_id"],
            "did you mean 'account_id'?",
        ),
        (["suite", "init", "--from", "{data}", "--out", "taken.json"], "taken.json already exists"),
        (["init", "p", "--model", "nope.skops", "--data", "{data}"], "model file nope.skops"),
        (["init", "p", "--model", "{model}", "--data", "{plain}"], "cannot tell which column"),
        (["init", "p", "--model", "{model}", "--data", "{data}", "--output", "ftp://x"], "file://"),
    ],
    ids=["missing-file", "unknown-id", "existing-out", "missing-model", "no-id-guess", "output"],
)
def test_refusals_exit_2_with_where_and_fix(
    workspace: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken.json").write_text("{}")
    plain = pd.read_parquet(workspace / "data.parquet").drop(columns=[ID])
    plain.to_parquet(tmp_path / "plain.parquet")
    paths = {
        "data": str(workspace / "data.parquet"),
        "model": str(workspace / "models" / "churn.skops"),
        "plain": "plain.parquet",
    }
    assert main([a.format(**paths) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("batchscore: error: ") and message in err
    assert "(in " in err and "Fix: " in err  # where, and what to do
    assert (tmp_path / "taken.json").read_text() == "{}"  # nothing overwritten
    assert not (tmp_path / "p").exists()  # init wrote nothing
