"""What a shard's gate keeps between batches: small, mergeable, picklable and JSON-serialisable.

Shards run in separate workers (and Airflow tasks), so their partial results travel as JSON and are
merged exactly by `pipelines.quality.verdict.merge_verdict`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.quality.jsonsafe import json_safe

MAX_EXAMPLES = 20  # failing values kept per expectation, per shard and in the verdict


@dataclass
class ExpectationState:
    """One expectation's partial result in one shard (JSON-serialisable)."""

    index: int
    batches_evaluated: int = 0
    batches_failed: int = 0
    element_count: int = 0
    unexpected_count: int = 0
    missing_count: int = 0
    gx_unexpected_count: int = 0
    rows_quarantined: int = 0
    examples: list[Any] = field(default_factory=list)
    example_ids: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    observed: Any = None
    # column statistics over rows that will be scored (aggregate kind)
    rows: int = 0
    non_null: int = 0
    total: float | int = 0
    minimum: float | int | None = None
    maximum: float | int | None = None

    def add_error(self, message: str) -> None:
        if message not in self.errors and len(self.errors) < 5:
            self.errors.append(message)


@dataclass
class GateState:
    """One shard's gate result: picklable and JSON-serialisable (`to_json` / `from_json`).

    The sorted ID hashes are not in here (8 bytes a row): take them from `gate.id_hashes()`.
    """

    suite_name: str
    suite_digest: str
    id_column: str | None
    id_kind: str = "none"  # "int" (exact, invertible hashes), "hash", or "none"
    rows: int = 0
    rows_quarantined: int = 0  # flagged by this gate or already quarantined by the caller
    rows_flagged: int = 0  # flagged by this gate's critical row-level expectations
    batches: int = 0
    columns: list[str] | None = None
    dtypes: dict[str, str] = field(default_factory=dict)
    expectations: list[ExpectationState] = field(default_factory=list)
    reason_counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(
        default_factory=lambda: {
            "gx_seconds": 0.0,
            "fast_seconds": 0.0,
            "mask_seconds": 0.0,
            "hash_seconds": 0.0,
        }
    )
    engine: str = "gx"  # which engine gave the schema and row-level results: "fast" or "gx"
    # the GX audit of a fast shard: rows_limit, rows, shard_rows, stride, expectations, agreed
    audit: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return json_safe(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GateState:
        data = dict(data)
        exps = []
        for e in data.get("expectations", []):
            e = dict(e)
            for key in ("total", "minimum", "maximum"):  # non-finite floats travel as text
                if isinstance(e.get(key), str):
                    e[key] = float(e[key])
            exps.append(ExpectationState(**e))
        data["expectations"] = exps
        return cls(**data)


@dataclass
class BatchOutcome:
    """Which rows of a batch failed a critical row-level expectation, and why."""

    bad_mask: np.ndarray  # bool, len(df)
    reasons: np.ndarray  # object array of str, aligned with df[bad_mask]
    rows: int
    gx_seconds: float
    mask_seconds: float

    @property
    def bad_count(self) -> int:
        return int(self.bad_mask.sum())
