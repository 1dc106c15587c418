"""Monitoring in the scoring pass: drift against the model's baseline, and performance estimated
from its own probabilities, kept per shard as exact mergeable state and judged once per run.

No reference rows are read at scoring time: a shard counts its rows against the baseline's bins
(pipelines/monitoring) and a histogram of P(positive) (pipelines/outcomes/estimate); the run
merges the shards' integer counts, so N shards give what one pass would, bit for bit.
A run without a baseline says so once and scores as before.
"""

from __future__ import annotations

import logging
from functools import reduce
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.config import Settings
from pipelines.errors import ConfigError
from pipelines.model.artifact import LoadedModel
from pipelines.run.pinned import ModelSpec
from pipelines.run.records import RunPlan, ShardResult
from pipelines.run.scoring import ScoreTarget

log = logging.getLogger(__name__)
_baselines: dict[tuple[str, str], Any] = {}


def plan_monitoring(
    cfg: Settings, spec: ModelSpec, model: LoadedModel, columns: dict[str, str]
) -> dict[str, Any] | None:
    """Which baseline the run is judged against (path, sha256, segments), checked against the
    model and the input now; `{"status": "no_baseline"}` without one; None when drift is off."""
    if not cfg.monitoring.drift.enabled:
        return None
    from pipelines.monitoring.baseline import baseline_path_for, check_baseline, load_baseline

    if cfg.monitoring.baseline:
        path = cfg.monitoring.baseline
    else:
        path = Path(spec.baseline) if spec.baseline else baseline_path_for(Path(spec.path))
    if not path.is_file():
        where = "monitoring.baseline" if cfg.monitoring.baseline else "beside the model"
        message = (
            f"no drift baseline ({where}: {path}): the run scores as before, without drift "
            f"monitoring. Make one from the training data: batchscore baseline --data "
            f"TRAIN.parquet --model {spec.source}"
        )
        log.warning(message)
        return {"status": "no_baseline", "message": message}
    baseline = load_baseline(path)
    check_baseline(baseline, {f.name: f.kind for f in model.features}, model.name)
    absent = [c for c in cfg.monitoring.segments if c not in columns]
    if absent:
        raise ConfigError(
            f"monitoring.segments names {absent}, which the input does not have "
            f"(its columns: {', '.join(columns)})",
            where="monitoring.segments",
            fix="name columns of the input, or remove them from monitoring.segments",
        )
    return {"path": str(path), "sha256": baseline.sha256, "segments": list(cfg.monitoring.segments)}


class ShardMonitor:
    """One shard's drift and estimate state, updated with every scored chunk."""

    def __init__(self, cfg: Settings, plan: RunPlan, target: ScoreTarget) -> None:
        from pipelines.outcomes.estimate import EstimateState

        self.drift: Any = None
        watched = plan.monitoring or {}
        if watched.get("sha256"):
            from pipelines.monitoring.profile import DriftState

            baseline = _baseline(watched["path"], watched["sha256"])
            self.drift = DriftState.from_baseline(baseline, cfg.monitoring)
        self.positive = target.positive_class
        self.estimate = EstimateState() if target.kind == "binary" else None

    def update(self, frame: pd.DataFrame, table: pa.Table) -> None:
        """Count the rows of one scored chunk (`frame`: as the model took them)."""
        score = table.column("score").to_numpy()
        if self.drift is not None:
            positive = None
            if self.positive is not None:  # vectorized in Arrow: a Python list costs 8% here
                positive = positive_mask(table.column("predicted_class"), self.positive)
            self.drift.update(frame, score, positive)  # reads only its columns: no copy
        if self.estimate is not None:
            self.estimate.update(score)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.drift is not None:
            out["drift"] = self.drift.to_json()
        if self.estimate is not None:
            out["estimate"] = self.estimate.to_json()
        return out


def positive_mask(predicted: pa.ChunkedArray | pa.Array, positive: str) -> Any:
    """Whether each row's predicted class, as text, is `positive` (a numpy bool array).

    Integer classes are compared as integers when `positive` is one written canonically (as
    Arrow would write it): the same answer as comparing text, without formatting every row.
    """
    if pa.types.is_integer(predicted.type):
        try:
            value = pa.scalar(int(positive), predicted.type)
        except (ValueError, OverflowError, pa.ArrowInvalid):
            value = None
        if value is not None and str(value.as_py()) == positive:
            return pc.equal(predicted, value).to_numpy(zero_copy_only=False)
    if not (pa.types.is_string(predicted.type) or pa.types.is_large_string(predicted.type)):
        predicted = pc.cast(predicted, pa.string())
    return pc.equal(predicted, positive).to_numpy(zero_copy_only=False)


def judge(
    cfg: Settings, plan: RunPlan, results: list[ShardResult]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The run's drift result and estimated performance, from its shards' merged states."""
    watched = plan.monitoring
    if watched is None:
        return None, _estimated(cfg, plan, results, None)
    if not watched.get("sha256"):
        return dict(watched), _estimated(cfg, plan, results, None)
    from pipelines.monitoring.evaluate import evaluate
    from pipelines.monitoring.profile import DriftState

    baseline = _baseline(watched["path"], watched["sha256"])
    states = [DriftState.from_json(r.monitoring["drift"]) for r in results if r.monitoring]
    drift = evaluate(baseline, reduce(DriftState.merge, states), cfg.monitoring)
    drift["baseline"]["path"] = watched["path"]
    return drift, _estimated(cfg, plan, results, baseline.performance)


def _estimated(
    cfg: Settings,
    plan: RunPlan,
    results: list[ShardResult],
    performance: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """Expected AUC and accuracy without labels, and whether the AUC fell past max_drop."""
    from pipelines.outcomes.estimate import EstimateState, estimate_for, performance_flags

    states = [EstimateState.from_json(r.monitoring["estimate"]) for r in results if r.monitoring]
    state = reduce(EstimateState.merge, states) if states else None
    estimated, why_not = estimate_for(plan.score_target.get("kind", ""), state, performance)
    if estimated is None:
        return {"status": "not_estimated", "reason": why_not}
    baseline_auc = (performance or {}).get("auc")
    flags = performance_flags(estimated, None, baseline_auc, cfg.monitoring.performance.max_drop)
    estimated["baseline_auc"] = baseline_auc
    estimated["status"] = "fail" if flags["flagged"] else "ok" if baseline_auc else "no_baseline"
    estimated["reasons"] = flags["reasons"]
    return estimated


def _baseline(path: str, sha256: str) -> Any:
    """The plan's baseline, loaded once per process and refused if it is not the planned one."""
    key = (path, sha256)
    if key not in _baselines:
        from pipelines.monitoring.baseline import load_baseline

        baseline = load_baseline(Path(path))
        if baseline.sha256 != sha256:
            raise ConfigError(
                f"the drift baseline {path} changed since the run was planned (sha256 "
                f"{baseline.sha256[:12]}, planned {sha256[:12]})",
                fix="rerun: the plan pins the baseline it will judge the run against",
            )
        _baselines.clear()
        _baselines[key] = baseline
    return _baselines[key]
