"""With a pool and the fast engine, GX is imported (and checks the suites) in the parent while the
workers score, not before they fork; a suite GX rejects still fails the run with nothing left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.config import load_config
from pipelines.run.gx_overlap import overlaps_gx_check
from tests.cli.tiny import sharded_run

ROWS, SHARDS = 3_000, 3
SPY = """
import json, os, sys
import pipelines.run.pool as pool
real = pool.score_shard
def spy(cfg, plan, index, on_rows=None):
    with open(os.environ["SPY_FILE"], "a") as fh:
        fh.write(json.dumps({"shard": index, "gx": "great_expectations" in sys.modules}) + "\\n")
    return real(cfg, plan, index, on_rows)
pool.score_shard = spy
from pipelines.cli.main import main
sys.exit(main())
"""


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, list[str]]:
    args = [*sharded_run(tmp_path, ROWS, SHARDS), "--set", "score.progress=off"]
    return tmp_path, args


def _run(folder: Path, spy_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHSCORE")}
    env["SPY_FILE"] = str(spy_file)
    return subprocess.run([sys.executable, "-c", SPY, *args], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip


def test_pool_workers_fork_before_gx_is_imported_and_the_run_still_audits(folder) -> None:
    path, args = folder
    spy = path / "spy.jsonl"
    done = _run(path, spy, *args, "--workers", "2")
    assert done.returncode == 0, done.stderr
    seen = [json.loads(line) for line in spy.read_text().splitlines()]
    assert sorted(s["shard"] for s in seen) == list(range(SHARDS))
    assert not any(s["gx"] for s in seen)  # the parent had not imported GX when they forked
    manifest = json.loads(next((path / "out").rglob("manifest.json")).read_text())
    audit = manifest["quality"]["output"]["audit"]
    assert audit["shards_audited"] == SHARDS and audit["agreed"] == audit["comparisons"] > 0


@pytest.mark.parametrize("workers", [1, 2])
def test_a_suite_gx_rejects_fails_the_run_and_leaves_nothing(folder, workers: int) -> None:
    path, args = folder
    suite = path / "my_suite.json"
    bad = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "age"},
           "meta": "not a dict"}  # fmt: skip
    suite.write_text(json.dumps({"name": "mine", "expectations": [bad]}))
    done = _run(path, path / "spy.jsonl", *args, "--workers", str(workers),
                "--set", f"validation.input_suite={suite}")  # fmt: skip
    assert done.returncode != 0
    assert "GX rejects this expectation" in done.stderr and str(suite) in done.stderr
    assert "Traceback" not in done.stderr
    out = path / "out"
    assert not list(out.rglob("manifest.json"))
    assert not [p for p in out.rglob("*") if p.is_file()]  # the staging is discarded
    if workers == 1:  # one process checks before it scores: no shard started
        assert not (path / "spy.jsonl").exists()


def test_only_a_forked_pool_with_the_fast_engine_and_its_audit_overlaps_the_check() -> None:
    root = Path(__file__).resolve().parents[2]

    def cfg(**sets: object):
        return load_config(root / "params.yaml", {k.replace("__", "."): v for k, v in sets.items()},
                           env={})  # fmt: skip

    assert overlaps_gx_check(cfg(score__workers=2, validation__engine="fast"))
    assert not overlaps_gx_check(cfg(score__workers=1, validation__engine="fast"))
    assert not overlaps_gx_check(cfg(score__workers=2, validation__engine="gx"))
    assert not overlaps_gx_check(cfg(score__workers=2, validation__audit_rows=0))
    assert not overlaps_gx_check(cfg(score__workers=2, validation__enabled=False))
