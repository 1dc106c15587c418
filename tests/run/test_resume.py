"""Resume: a rerun after a killed run scores only the shards that were not staged, and publishes
output byte-identical to an uninterrupted run; nothing is reused across other inputs or from
staged objects that no longer match their record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.cli.tiny import BATCHSCORE, FIRST_ID, tiny_model

SHARD_ROWS = 4_000
SHARDS = 4


def _data(path: Path, seed: int) -> None:
    """A Parquet input of SHARDS row groups, one shard each."""
    rng = np.random.default_rng(seed)
    n = SHARD_ROWS * SHARDS
    frame = pd.DataFrame(
        {
            "patient_id": np.arange(n, dtype="int64") + FIRST_ID,
            "age": rng.normal(50, 8, n),
            "bmi": rng.normal(25, 4, n),
        }
    )
    pq.write_table(
        pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=SHARD_ROWS
    )


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, list[str]]:
    sha = tiny_model(tmp_path)
    _data(tmp_path / "data.parquet", seed=1)
    cmd = [BATCHSCORE, "score", "--input", "data.parquet", "--model", "model.skops",
           "--model-sha256", sha, "--id-column", "patient_id", "--run-key", "r1",
           "--set", f"score.shard_rows={SHARD_ROWS}", "--set", "score.progress=off"]  # fmt: skip
    return tmp_path, cmd


def _run(
    folder: Path, cmd: list[str], out: str, fault: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHSCORE")}
    if fault:
        env["BATCHSCORE_FAULT_AT"] = fault
    return subprocess.run([*cmd, "--output", f"file://{out}"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def _manifest(folder: Path, out: str) -> dict:
    (path,) = (folder / out).glob("*/r1/manifest.json")
    return json.loads(path.read_text())


def _killed_after_two_shards(folder: Path, cmd: list[str], out: str) -> list[Path]:
    killed = _run(folder, cmd, out, fault="after_shard_1")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not list((folder / out).rglob("manifest.json"))
    records = sorted((folder / out).glob("*/r1/attempts/*/shards/shard-*.json"))
    assert [p.name for p in records] == ["shard-00000.json", "shard-00001.json"]
    return records


def test_a_rerun_scores_only_the_unstaged_shards_and_publishes_the_same_bytes(project) -> None:
    folder, cmd = project
    clean = _run(folder, cmd, "ref")
    assert clean.returncode == 0, clean.stderr
    ref = _manifest(folder, "ref")
    assert ref["shards"] == SHARDS and ref["shards_reused"] == 0

    records = _killed_after_two_shards(folder, cmd, "out")
    attempt = records[0].parents[1].name
    done = _run(folder, cmd, "out")
    assert done.returncode == 0, done.stderr
    assert "2 of 4 shard(s) reused" in done.stdout
    assert "shard 0: reused" in done.stderr and "shard 2: reused" not in done.stderr
    got = _manifest(folder, "out")
    assert got["shards_reused"] == 2
    # the interrupted attempt is continued in a new one, which copied its shards; once the new
    # one is published the interrupted one is gone
    assert got["resumed_from"] == attempt != got["attempt_id"]
    assert not records[0].parents[1].exists()
    assert got["content_sha256"] == ref["content_sha256"]
    assert got["counts"] == ref["counts"]
    assert not list((folder / "out").rglob("shards/shard-*.json"))  # records gone once published
    staged = sorted(p.name for p in (folder / "out").glob("*/r1/attempts/*/scores/*"))
    assert staged == [f"part-{i:05d}.parquet" for i in range(SHARDS)]


def test_a_staged_part_that_changed_is_scored_again(project) -> None:
    folder, cmd = project
    assert _run(folder, cmd, "ref").returncode == 0
    records = _killed_after_two_shards(folder, cmd, "out")
    part = records[0].parents[1] / "scores" / "part-00000.parquet"
    body = bytearray(part.read_bytes())
    body[len(body) // 2] ^= 0xFF
    part.write_bytes(bytes(body))
    done = _run(folder, cmd, "out")
    assert done.returncode == 0, done.stderr
    assert "shard 0: staged part" in done.stderr and "differs from its record" in done.stderr
    got = _manifest(folder, "out")
    assert got["shards_reused"] == 1
    assert got["content_sha256"] == _manifest(folder, "ref")["content_sha256"]


def test_nothing_is_reused_across_other_inputs(project) -> None:
    folder, cmd = project
    records = _killed_after_two_shards(folder, cmd, "out")
    _data(folder / "data.parquet", seed=2)  # tonight's file was re-exported with other values
    done = _run(folder, cmd, "out")
    assert done.returncode == 0, done.stderr
    got = _manifest(folder, "out")
    assert got["shards_reused"] == 0
    assert got["attempt_id"] != records[0].parents[1].name
    assert not records[0].parents[1].exists()  # the stale attempt is cleaned up by the commit


def test_a_worker_lost_on_two_workers_keeps_the_finished_shards_for_the_rerun(project) -> None:
    folder, cmd = project
    cmd = [*cmd, "--workers", "2", "--set", "score.pin_workers=false"]
    assert _run(folder, cmd, "ref").returncode == 0
    lost = _run(folder, cmd, "out", fault="after_shard_1")  # the worker scoring shard 1 dies
    assert lost.returncode == 2 and not list((folder / "out").rglob("manifest.json"))
    assert "a worker process died" in lost.stderr and "Traceback" not in lost.stderr
    recorded = len(list((folder / "out").rglob("shards/shard-*.json")))
    assert recorded >= 1
    done = _run(folder, cmd, "out")
    assert done.returncode == 0, done.stderr
    got = _manifest(folder, "out")
    assert got["shards_reused"] == recorded
    assert got["content_sha256"] == _manifest(folder, "ref")["content_sha256"]
