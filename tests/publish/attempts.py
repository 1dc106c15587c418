"""Helpers for the publish tests (tests/publish, and tests/faults/test_reliability_s3.py):
attempts of one run staged up to the commit, and the inputs for two attempts of one run key.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from pipelines.run.plan import plan_run
from pipelines.run.shard import score_shard

NO_GX = {"validation.enabled": False}


def staged_attempts(cfgs):  # type: ignore[no-untyped-def]
    """Plan and score each config as its own attempt of the run, stopping short of the commit."""
    plans = [plan_run(c) for c in cfgs]
    results = [
        [score_shard(c, p, i) for i in range(len(p.shards))]
        for c, p in zip(cfgs, plans, strict=True)
    ]
    return plans, results


def inputs(score_file: Path, tmp_path: Path, same_output: bool) -> list[Path]:
    """Two inputs for two attempts: the same file twice, or the file and its first 3,000 rows."""
    if same_output:
        return [score_file, score_file]
    other = tmp_path / "other.parquet"
    pq.write_table(pq.read_table(score_file).slice(0, 3000), other)
    return [score_file, other]
