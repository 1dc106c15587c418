"""`batchscore model ...` end to end through the installed entry point, on a SQLite registry.

The moves run as real `batchscore` processes (each pays MLflow's import, so they are few); the
listings are read in-process through click's runner, the same command objects.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.cli.main import cli
from pipelines.registry.settings import RegistrySettings
from pipelines.registry.versions import register
from tests.cli.tiny import batchscore
from tests.registry.models import tiny_skops


def test_register_promote_rollback_history_through_the_cli(
    tmp_path: Path, registry_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "registry" / "mlflow.db"
    db.parent.mkdir()
    shutil.copyfile(registry_template, db)
    uri = f"sqlite:///{db}"
    env = {"MLFLOW_TRACKING_URI": uri, "BATCHSCORE_USER": "ci-bot"}
    for seed in (1, 2):
        (tmp_path / f"v{seed}").mkdir()
        tiny_skops(tmp_path / f"v{seed}", seed)
    register(tmp_path / "v1" / "model.skops", "churn", RegistrySettings(uri=uri), tmp_path)

    def ok(*args: str) -> str:
        done = batchscore(tmp_path, "model", *args, env=env)
        assert done.returncode == 0, done.stderr
        assert f"registry: {uri}" in done.stderr  # users see which registry they talk to
        return done.stdout

    assert "churn version 2" in ok("register", "v2/model.skops", "--name", "churn")
    ok("promote", "churn", "1", "--reason", "first")
    assert "v1 -> v2" in ok("promote", "churn", "2")
    assert "v2 -> v1" in ok("rollback", "churn", "--reason", "v2 drifted")
    assert (db.parent / "mlartifacts").is_dir()  # artifacts beside the database
    wrong = batchscore(tmp_path, "model", "promote", "chrun", "1", env=env)
    assert wrong.returncode == 2
    assert "no model named 'chrun'" in wrong.stderr and "known: churn" in wrong.stderr
    assert "Traceback" not in wrong.stderr

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # --registry-uri sets it in-process: undone
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)  # after the test by monkeypatch
    runner, at = CliRunner(), ["--registry-uri", uri]
    shown = runner.invoke(cli, ["model", "history", "churn", "--json", *at])
    assert shown.exit_code == 0, shown.output
    assert [
        (m["action"], m["from"], m["to"], m["who"], m["why"]) for m in json.loads(shown.stdout)
    ] == [
        ("promote", None, 1, "ci-bot", "first"),
        ("promote", 1, 2, "ci-bot", None),
        ("rollback", 2, 1, "ci-bot", "v2 drifted"),
    ]
    rows = [
        line.split()
        for line in runner.invoke(cli, ["model", "list", "churn", *at]).stdout.splitlines()
    ]
    assert rows[0][:3] == ["VERSION", "ALIASES", "CREATED"]
    assert rows[1][:2] == ["1", "champion"] and rows[2][0] == "2"
    table = runner.invoke(cli, ["model", "history", "churn", *at]).stdout.splitlines()
    assert table[0].split() == ["SEQ", "AT", "WHO", "ALIAS", "ACTION", "FROM", "TO", "WHY"]
    assert table[-1].endswith("v2 drifted")
