"""What a run's steps hand each other: the plan (fixed before any row is read) and shard results.

Both are pydantic models that round-trip through JSON, so the Airflow DAG passes them between
tasks over XCom, and a finished shard's result is what its resume record keeps (run/resume).
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel

from pipelines.publish.manifest import InputRef, ModelRef, PartInfo


class RunPlan(BaseModel):
    """Everything the shard workers and the commit need, fixed before any row is read."""

    run_key: str
    attempt_id: str
    model: ModelRef
    model_spec: dict[str, Any] = {}  # run/pinned.ModelSpec: exactly what every shard loads
    challenger: dict[str, Any] | None = None  # spec, ref, contract, target of the shadow model
    monitoring: dict[str, Any] | None = None  # the drift baseline (run/monitors.plan_monitoring)
    input: InputRef
    input_columns: dict[str, str]
    row_group_rows: list[int]
    row_group_spans: list[list[int]] = []
    input_proof: dict[str, Any] = {}
    shards: list[dict[str, Any]]
    contract: dict[str, Any]
    score_target: dict[str, Any] = {}
    fingerprint: str
    staging_prefix: str
    already_published: bool = False
    # what a shard's result depends on beyond the output (see run/resume); equal = reusable
    resume_identity: str = ""
    resumed_from: str | None = None  # the interrupted attempt this plan continues, if any
    started_at: float  # time.time() when the plan began: the run's wall clock starts here
    plan_seconds: float = 0.0

    def wall_seconds(self) -> float:
        """Seconds since the plan began: the run's wall time so far."""
        return max(time.time() - self.started_at, 0.0)


class ShardResult(BaseModel):
    """What one shard produced: its parts, counts, quality state and timings."""

    shard: int
    rows_in: int
    rows_scored: int
    rows_quarantined: int
    chunks: int
    parts: list[PartInfo]
    histogram: list[int]
    quarantine_reasons: dict[str, int]
    gates: dict[str, dict[str, Any]] = {}  # gate name -> its GateState as JSON
    ids_keys: dict[str, str] = {}  # gate name -> staged .npy of sorted ID hashes
    audit_keys: dict[str, str] = {}  # gate name -> staged Parquet of its audit sample
    timings: dict[str, float]
    monitoring: dict[str, Any] = {}  # drift and estimate states (run/monitors.ShardMonitor)
    score_sum: float = 0.0  # sum of `score` over the scored rows, for the run's exact mean
    challenger_unscored: int = 0  # scored rows the shadow model could not take (null there)
    reused: bool = False  # taken from an interrupted attempt's verified record (run/resume)
