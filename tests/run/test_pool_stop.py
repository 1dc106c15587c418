"""A pool stopped mid-run (a failed shard, SIGTERM) exits promptly, even when a worker was killed
in the middle of sending progress and left the progress queue's shared write lock held."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.tiny import sharded_run

ROWS, SHARDS = 2_000, 4
# HOLD: shard 1 takes the progress queue's write lock and keeps it (as a worker SIGKILLed inside
# a put would), then shard 0 fails, so the parent kills the workers and must still get out.
# SLOW: shard 0 takes ten minutes and shard 1 fails at once: the run must not wait for shard 0.
SHARDS_THAT_FAIL = """
import os, sys, time
import pipelines.run.pool as pool
def shard(cfg, plan, index, on_rows=None):
    if os.environ["MODE"] == "SLOW":
        if index == 0:
            time.sleep(600)
        raise RuntimeError("shard failed on purpose")
    if index == 1:
        pool._progress_queue._wlock.acquire()
        open(os.environ["HELD"], "w").close()
        time.sleep(600)
    while not os.path.exists(os.environ["HELD"]):
        time.sleep(0.01)
    raise RuntimeError("shard failed on purpose")
pool.score_shard = shard
from pipelines.cli.main import exit_now, main
exit_now(main())
"""


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, list[str]]:
    args = [*sharded_run(tmp_path, ROWS, SHARDS), "--set", "score.progress=log",
            "--set", "validation.enabled=false", "--workers", "2"]  # fmt: skip
    return tmp_path, args


def _fail(path: Path, args: list[str], mode: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHSCORE")}
    env.update(HELD=str(path / "held"), MODE=mode)
    try:
        done = subprocess.run([sys.executable, "-c", SHARDS_THAT_FAIL, *args], cwd=path, env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the run did not exit after a shard failed: {exc.stderr!r}")
    assert done.returncode != 0
    assert "shard failed on purpose" in done.stderr, done.stderr
    assert not list((path / "out").rglob("manifest.json"))
    return done


def test_a_worker_killed_holding_the_progress_lock_does_not_hang_the_exit(folder) -> None:
    _fail(*folder, "HOLD")


def test_a_failed_shard_stops_the_run_without_waiting_for_the_shards_before_it(folder) -> None:
    _fail(*folder, "SLOW")
