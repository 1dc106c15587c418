"""`labels.*` in params.yaml: how delayed label deliveries are read, joined and evaluated.

Pure pydantic (no other batchscore import) so `pipelines.config` can nest it without a cycle.
Peak memory of `batchscore labels add` is set by `batch_rows` and `bucket_rows`, never by the
number of rows scored or delivered (docs/outcomes.md).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LabelsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id_column: str | None = Field(
        None, description="the ID column of a label file (default: the run's published ID column)"
    )
    label_column: str = Field("label", description="the true label column of a label file")
    batch_rows: int = Field(65_536, ge=1_000, description="rows read from a file at a time")
    bucket_rows: int = Field(
        1_000_000,
        ge=1_000,
        description="rows per join bucket: rows are hash-partitioned by ID into buckets this "
        "size, joined one at a time (peak memory grows with it, not with the row count)",
    )
    max_buckets: int = Field(
        256, ge=1, le=1_024, description="cap on buckets (each is an open temp file while joining)"
    )
    calibration_bins: int = Field(
        10, ge=2, le=100, description="equal-width bins of the reliability curve and the ECE"
    )
