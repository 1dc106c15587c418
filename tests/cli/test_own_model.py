"""Your own model, by flags alone, from any folder: no params.yaml, no project checkout.

Before, `batchscore score` outside the project failed with "params file ... params.yaml not
found"; now built-in defaults fill in what the flags do not say, and relative paths on the
command line are relative to the folder the command runs in.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.tiny import batchscore, published_ids, tiny_data, tiny_model


def test_flags_alone_score_your_model_from_an_empty_folder(tmp_path: Path) -> None:
    sha = tiny_model(tmp_path)
    ids = tiny_data(tmp_path / "data.parquet", 40, 50, seed=1)
    assert not (tmp_path / "params.yaml").exists()
    done = batchscore(
        tmp_path,
        "score", "--input", "data.parquet", "--model", "model.skops", "--model-sha256", sha,
        "--id-column", "patient_id", "--output", "file://out", "--run-key", "r1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "40 rows in, 40 scored, 0 quarantined" in done.stdout
    assert published_ids(tmp_path / "out", "tiny", "r1") == ids  # exact beyond 2**53
    manifest = json.loads((tmp_path / "out" / "tiny" / "r1" / "manifest.json").read_text())
    assert manifest["input"]["path"] == str(tmp_path / "data.parquet")
    assert manifest["quality"]["output"]["success"]  # the built-in output suite ran
    assert "suite init --from" in done.stderr  # no input suite: the run says how to make one


def test_cli_paths_are_relative_to_the_current_folder_not_the_params_file(
    tmp_path: Path,
) -> None:
    """A params file elsewhere keeps its own paths relative to itself; flags are cwd's."""
    project, here = tmp_path / "project", tmp_path / "here"
    project.mkdir()
    here.mkdir()
    sha = tiny_model(here)
    ids = tiny_data(here / "data.parquet", 25, 50, seed=2)
    (project / "params.yaml").write_text("output:\n  uri: file://bucket\nrun:\n  key: r1\n")
    done = batchscore(
        here,
        "score", "--params", "../project/params.yaml", "--input", "data.parquet",
        "--model", "model.skops", "--model-sha256", sha, "--id-column", "patient_id",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert published_ids(project / "bucket", "tiny", "r1") == ids  # the file's path: its folder
    done = batchscore(
        here, "score", "--params", "../project/params.yaml", "--input", "data.parquet",
        "--model", "model.skops", "--model-sha256", sha, "--id-column", "patient_id",
        "--output", "file://mine",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert published_ids(here / "mine", "tiny", "r1") == ids  # the flag's path: the cwd


def test_a_params_file_that_was_named_must_exist(tmp_path: Path) -> None:
    for args, env in (
        (["--params", "nope.yaml"], {}),
        ([], {"BATCHSCORE_PARAMS": str(tmp_path / "nope.yaml")}),
    ):
        done = batchscore(tmp_path, "score", *args, env=env)
        assert done.returncode == 2, done.stderr
        assert f"params file {tmp_path / 'nope.yaml'} not found" in done.stderr


def test_a_model_without_card_or_pin_is_refused_clearly(tmp_path: Path) -> None:
    tiny_model(tmp_path)
    (tmp_path / "model.card.json").unlink()
    tiny_data(tmp_path / "data.parquet", 10, 50, seed=3)
    done = batchscore(
        tmp_path, "score", "--input", "data.parquet", "--model", "model.skops",
        "--id-column", "patient_id",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "no sha256 pin for model.skops" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
