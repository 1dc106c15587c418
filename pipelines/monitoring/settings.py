"""`monitoring.*` in params.yaml: where the baseline is, drift thresholds, segments, performance.

Pure pydantic (no other batchscore import) so `pipelines.config` can nest it without a cycle.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DriftSettings(_Section):
    """Drift thresholds (documented in docs/monitoring.md) and what a `fail` does."""

    enabled: bool = True
    block_on_fail: bool = Field(False, description="true: a `fail` publishes nothing")


class PerformanceSettings(_Section):
    max_drop: float = Field(0.05, ge=0, le=1, description="AUC drop below the baseline's that flags")


class MonitoringSettings(_Section):
    baseline: Path | None = Field(None, description="default: <model>.baseline.json beside it")
    drift: DriftSettings = DriftSettings()
    segments: list[str] = Field(default_factory=list)
    performance: PerformanceSettings = PerformanceSettings()
