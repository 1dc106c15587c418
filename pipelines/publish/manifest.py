"""The run manifest: the one object whose existence means "this run is published".

It lists every part with its size, sha256 and row count, so a reader can verify what it reads,
and carries the provenance a person needs the morning after: which data (git rev + DVC hash),
which model (sha256, version), which code, how many rows went where, and how long it took.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, Field


class PartInfo(BaseModel):
    """One file of a run: scores, quarantined rows or a report."""

    key: str
    kind: str  # scores | quarantine | badlines | report
    shard: int | None = None
    rows: int | None = None
    bytes: int
    sha256: str


class InputRef(BaseModel):
    path: str
    format: str
    sha256: str
    bytes: int | None = None
    rows: int | None
    git_rev: str | None = None
    dvc_md5: str | None = None


class ModelRef(BaseModel):
    name: str
    version: str
    sha256: str
    path: str
    sklearn_version: str | None = None
    # a registry model: name, version, alias (as resolved at plan time), registry and source URI
    registry: dict[str, Any] | None = None


class RowCounts(BaseModel):
    rows_in: int
    rows_scored: int
    rows_quarantined: int

    @property
    def reconciles(self) -> bool:
        return self.rows_in == self.rows_scored + self.rows_quarantined


class RunManifest(BaseModel):
    """Written last, once, with a create-if-absent write: the commit marker of a run."""

    schema_version: int = 1
    run_key: str
    model: ModelRef
    input: InputRef
    code_version: str
    attempt_id: str
    fingerprint: str = Field(description="hash of everything that determines the output")
    content_sha256: str = Field(description="hash of the data parts; equal runs have equal hashes")
    counts: RowCounts
    chunks: int
    shards: int
    shards_reused: int = Field(0, description="shards taken from an interrupted attempt")
    resumed_from: str | None = Field(
        None, description="the interrupted attempt whose verified shards this one copied"
    )
    parts: list[PartInfo]
    quality: dict[str, Any] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    rows_per_s: float
    created_at: str
    dry_run: bool = False
    scores: dict[str, Any] = Field(
        default_factory=dict, description="what `score` means: its class, the model's classes"
    )
    challenger: dict[str, Any] | None = Field(
        None, description="the shadow model and its comparison with the run's scores"
    )
    monitoring: dict[str, Any] | None = Field(
        None, description="drift against the model's baseline (pipelines/monitoring)"
    )
    estimated_performance: dict[str, Any] | None = Field(
        None, description="expected AUC/accuracy from the model's own probabilities, no labels"
    )


def content_hash(parts: list[PartInfo]) -> str:
    """Hash of the data parts only (not reports, which carry timings)."""
    data = sorted(
        (p.kind, p.shard if p.shard is not None else -1, p.sha256, p.rows or 0)
        for p in parts
        if p.kind != "report"
    )
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()


def fingerprint(**identity: Any) -> str:
    """Stable hash of the inputs of a run; equal fingerprints produce equal output."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
