"""`monitoring.*` in params.yaml: where the baseline is, drift thresholds, segments, performance.

Pure pydantic (no other batchscore import) so `pipelines.config` can nest it without a cycle.
Every threshold the drift decision uses lives here with its default; docs/monitoring.md explains
the rule they feed (a Holm-corrected G-test per feature AND an effect-size floor).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _ordered(warn: float, fail: float, name: str) -> None:
    if fail < warn:
        raise ValueError(f"{name}_fail ({fail}) must be >= {name}_warn ({warn})")


class DriftSettings(_Section):
    """Drift thresholds (documented in docs/monitoring.md) and what a `fail` does.

    A feature is flagged only when its binned counts differ significantly from the baseline's
    (G-test, Holm-corrected across all features and the score at `alpha`) AND one effect size
    reaches its `*_warn` floor; it fails when one reaches its `*_fail` floor.
    """

    enabled: bool = True
    block_on_fail: bool = Field(False, description="true: a `fail` publishes nothing")
    alpha: float = Field(
        0.01, gt=0, lt=1, description="family-wise false-alarm rate of the per-feature G-tests"
    )
    psi_warn: float = Field(0.1, ge=0, description="PSI (coarse bins) that warns")
    psi_fail: float = Field(0.25, ge=0, description="PSI (coarse bins) that fails")
    wasserstein_warn: float = Field(
        0.1, ge=0, description="numeric: Wasserstein-1 / baseline std that warns"
    )
    wasserstein_fail: float = Field(
        0.25, ge=0, description="numeric: Wasserstein-1 / baseline std that fails"
    )
    ks_warn: float = Field(0.1, ge=0, le=1, description="numeric: KS statistic that warns")
    ks_fail: float = Field(0.2, ge=0, le=1, description="numeric: KS statistic that fails")
    linf_warn: float = Field(
        0.05, ge=0, le=1, description="categorical: largest change of a category's share, warns"
    )
    linf_fail: float = Field(
        0.15, ge=0, le=1, description="categorical: largest change of a category's share, fails"
    )
    unseen_warn: float = Field(
        0.01, ge=0, le=1, description="categorical: share of values the baseline never saw, warns"
    )
    unseen_fail: float = Field(
        0.05, ge=0, le=1, description="categorical: share of values the baseline never saw, fails"
    )
    missing_warn: float = Field(
        0.02, ge=0, le=1, description="absolute change of the missing rate that warns"
    )
    missing_fail: float = Field(
        0.1, ge=0, le=1, description="absolute change of the missing rate that fails"
    )
    psi_epsilon: float = Field(
        1e-4, gt=0, lt=0.01, description="share given to an empty bin in PSI (avoids log 0)"
    )
    fine_bins: int = Field(
        1000, ge=100, le=10_000, description="baseline quantile bins per numeric (KS/Wasserstein)"
    )
    width_bins: int = Field(
        200, ge=0, le=10_000, description="equal-width bins added over [min, max] (heavy tails)"
    )
    coarse_bins: int = Field(
        10, ge=2, le=100, description="numeric bins (equal baseline mass) for PSI, JS and the test"
    )
    coarse_categories: int = Field(
        20, ge=1, le=1000, description="largest categories kept apart for PSI, JS and the test"
    )
    max_categories: int = Field(
        1000, ge=1, description="categories a baseline keeps per feature; the rest are 'other'"
    )
    max_unseen: int = Field(
        100, ge=0, description="distinct unseen values counted by name per feature and segment"
    )

    @model_validator(mode="after")
    def _warn_below_fail(self) -> DriftSettings:
        for name in ("psi", "wasserstein", "ks", "linf", "unseen", "missing"):
            _ordered(getattr(self, f"{name}_warn"), getattr(self, f"{name}_fail"), name)
        return self


class PerformanceSettings(_Section):
    max_drop: float = Field(
        0.05, ge=0, le=1, description="AUC drop below the baseline's that flags"
    )
    calibrated_max_ece: float = Field(
        0.05,
        ge=0,
        le=1,
        description="held-out ECE at or below which the model counts as calibrated "
        "(label-free estimates are trusted)",
    )
    reliability_bins: int = Field(
        10, ge=2, le=100, description="equal-width score bins of the reliability diagram and ECE"
    )


class MonitoringSettings(_Section):
    baseline: Path | None = Field(None, description="default: <model>.baseline.json beside it")
    drift: DriftSettings = DriftSettings()
    segments: list[str] = Field(
        default_factory=list, description="columns whose values are monitored as segments"
    )
    segment_ratio_max: float = Field(
        1.25,
        ge=1,
        description="highest / lowest positive rate across a column's segments that warns "
        "(1.25 = the four-fifths rule)",
    )
    segment_min_rows: int = Field(
        30, ge=1, description="segment values with fewer rows are left out of the ratio"
    )
    performance: PerformanceSettings = PerformanceSettings()
