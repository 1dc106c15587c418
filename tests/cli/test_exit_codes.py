"""A stopped run: Ctrl-C exits 130 and SIGTERM 143, each with one line, nothing published.

click turns a KeyboardInterrupt into its own `Abort`; `main` must still answer with 130.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.tiny import BATCHSCORE, tiny_data, tiny_model


@pytest.mark.parametrize(
    ("sig", "code", "line"),
    [
        (signal.SIGINT, 130, "batchscore: interrupted; nothing was published"),
        (signal.SIGTERM, 143, "batchscore: stopped by SIGTERM; nothing was published"),
    ],
)
def test_a_stopped_run_exits_with_its_code_and_publishes_nothing(
    tmp_path: Path, sig: signal.Signals, code: int, line: str
) -> None:
    sha = tiny_model(tmp_path)
    tiny_data(tmp_path / "data.parquet", 400_000, 50, seed=1)
    proc = subprocess.Popen(
        [BATCHSCORE, "score", "--input", "data.parquet", "--model", "model.skops",
         "--model-sha256", sha, "--id-column", "patient_id", "--chunk-size", "50",
         "--set", "score.progress=log"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if list((tmp_path / "out").glob("*/*/attempts/*")):  # scoring has started
            break
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert line in err and "Traceback" not in err
    assert not list((tmp_path / "out").rglob("manifest.json"))
