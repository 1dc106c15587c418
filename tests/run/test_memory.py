"""Peak memory depends on the chunk size, not on the input size.

Each run is a fresh subprocess; its peak RSS comes from the kernel (`wait4` rusage), measured
from outside. A pipeline that read the whole input would add ~100 MB for the large input.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.data.demo import write_dataset


def peak_rss_mb(cmd: list[str]) -> float:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read().decode()[-2000:]
    return usage.ru_maxrss / 1024


@pytest.mark.parametrize("validation", [False, True], ids=["scoring", "with-gx-gate"])
def test_peak_memory_is_flat_in_input_size(
    tmp_path: Path, model_dir: Path, validation: bool
) -> None:
    chunk = 5_000
    small = write_dataset(tmp_path / "small.parquet", 25_000, 1, 5_000, with_label=False)
    large = write_dataset(tmp_path / "large.parquet", 500_000, 1, 5_000, with_label=False)
    peaks = {}
    for name, path in (("small", small), ("large", large)):
        cmd = [
            sys.executable, "-m", "pipelines.cli", "score",
            "--input", str(path),
            "--model", str(model_dir / "model.skops"),
            "--output", f"file://{tmp_path / name}",
            "--run-key", name,
            "--chunk-size", str(chunk),
            "--set", "validation.batch_rows=25000",
            "--set", f"validation.enabled={str(validation).lower()}",
            "--set", "score.progress=off",
        ]  # fmt: skip
        peaks[name] = peak_rss_mb(cmd)
    # 20x the rows (100x the chunk size): peak RSS may not grow by more than a few MB of noise
    assert peaks["large"] < peaks["small"] * 1.15 + 15, peaks
