"""The README's first command on a fresh clone: `./quickstart`, as a newcomer runs it.

It must leave `git status` clean (dvc.lock is what a fresh clone produces), give a readable
`dvc metrics show`, and publish again when the output store lost the run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.paths import ROOT

BIN = Path(sys.executable).parent


def _sh(cwd: Path, *cmd: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, f"{cmd}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def test_quickstart_on_a_fresh_clone_leaves_git_clean_and_republishes_a_lost_run(
    tmp_path: Path,
) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    (clone / ".venv").symlink_to(ROOT / ".venv")  # the set-up step, already done here

    out = _sh(clone, "./quickstart")
    for stage in ("generate", "train", "score"):  # validate: the lock already holds its inputs
        assert f"Running stage '{stage}'" in out
    assert _sh(clone, "git", "status", "--porcelain") == "", _sh(clone, "git", "diff")

    metrics = json.loads((clone / "reports" / "metrics.json").read_text())
    assert metrics["rows_in"] == metrics["rows_scored"] + metrics["rows_quarantined"] > 0
    assert metrics["gate"] == {"input": "passed", "output": "passed"}
    shown = _sh(clone, "dvc", "metrics", "show")
    assert "reports/metrics.json" in shown and "rows_in" in shown
    assert len(shown.strip().splitlines()) <= 4, shown  # one short table
    distribution = (clone / "reports" / "score_distribution.csv").read_text().splitlines()
    assert distribution[0] == "score_from,score_to,rows"
    assert sum(int(line.split(",")[2]) for line in distribution[1:]) == metrics["rows_scored"]

    # The output store lost the run: the next quickstart publishes it again.
    (manifest,) = (clone / "out" / "bucket").glob("*/*/manifest.json")
    shutil.rmtree(clone / "out")
    again = _sh(clone, "./quickstart")
    assert "committed" in again, again[-2000:]
    assert manifest.is_file()
    assert _sh(clone, "git", "status", "--porcelain") == "", _sh(clone, "git", "diff")
