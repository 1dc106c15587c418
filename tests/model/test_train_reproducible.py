"""Training reproduces the model to the byte whatever the machine's core count.

dvc.lock pins the demo model's md5 and the card its sha256: a fresh clone on a machine with
another number of cores must train the very same bytes, or its first `dvc repro` rewrites both.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from pipelines.data.demo import write_dataset
from tests.paths import ROOT


def _train(tmp: Path, threads: str) -> str:
    model = tmp / threads / "model.skops"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": threads,
        "BATCHSCORE__GENERATE__TRAIN_PATH": str(tmp / "train.parquet"),
        "BATCHSCORE__MODEL__PATH": str(model),
        "BATCHSCORE__TRAIN__MAX_ITER": "30",
    }
    cmd = [sys.executable, "-m", "pipelines.cli", "train", "--params", str(ROOT / "params.yaml")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return hashlib.sha256(model.read_bytes()).hexdigest()


def test_the_same_data_trains_the_same_bytes_on_one_or_two_threads(tmp_path: Path) -> None:
    write_dataset(tmp_path / "train.parquet", 60_000, seed=5, row_group_rows=20_000)
    assert _train(tmp_path, "1") == _train(tmp_path, "2")
