"""Baseline + merged drift state + settings -> the drift result (plain JSON) of a run.

The result is what the report, the manifest and the history read; docs/monitoring.md shows its
shape. Every number is a plain Python float or int, never NaN or inf (None instead).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pipelines.errors import ConfigError
from pipelines.monitoring.baseline import Baseline, CategoricalProfile, NumericProfile
from pipelines.monitoring.decide import STATUSES, rule_text, statuses, worst
from pipelines.monitoring.distances import (
    coarse_edges,
    coarse_groups,
    g_test,
    grouped,
    jensen_shannon,
    ks_binned,
    linf,
    psi,
    shares,
    wasserstein_binned,
)
from pipelines.monitoring.profile import CategoryCounts, DriftState
from pipelines.monitoring.segments import segment_result
from pipelines.monitoring.settings import DriftSettings, MonitoringSettings

UNSEEN, OTHER, MORE_UNSEEN = "(unseen)", "(other)", "(other unseen values)"


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _common(
    ref: np.ndarray, cur: np.ndarray, ref_missing: int, cur_missing: int, drift: DriftSettings
) -> dict[str, Any]:
    """PSI, JS and the G-test on coarse counts with missing as one more bin; missing rates."""
    ref_all, cur_all = np.append(ref, ref_missing), np.append(cur, cur_missing)
    rows, ref_rows = int(cur_all.sum()), int(ref_all.sum())
    base_missing = _rate(ref_missing, ref_rows)
    missing = _rate(cur_missing, rows)
    delta = None if missing is None or base_missing is None else missing - base_missing
    if not rows:
        return {"psi": None, "js": None, "p_value": None, "missing_rate": None,
                "baseline_missing_rate": base_missing, "missing_delta": None}  # fmt: skip
    return {
        "psi": psi(ref_all, cur_all, drift.psi_epsilon),
        "js": jensen_shannon(ref_all, cur_all),
        "p_value": g_test(ref_all, cur_all),
        "missing_rate": missing,
        "baseline_missing_rate": base_missing,
        "missing_delta": delta,
    }


def numeric_metrics(
    name: str, p: NumericProfile, counts: np.ndarray, missing: int, drift: DriftSettings
) -> dict[str, Any]:
    """One numeric feature (or the score) against its baseline profile."""
    groups = coarse_groups(p.counts, drift.coarse_bins)
    ref_c, cur_c = grouped(p.counts, groups), grouped(counts, groups)
    both = bool(p.counts.sum()) and bool(counts.sum())
    std = p.std or 0.0
    wasserstein = wasserstein_binned(p.counts, counts, p.edges) / std if both and std else None
    edges = coarse_edges(p.edges, groups, p.min, p.max) if p.min is not None else None
    return {
        "name": name,
        "kind": "numeric",
        **_common(ref_c, cur_c, p.missing, missing, drift),
        "wasserstein": wasserstein,
        "ks": ks_binned(p.counts, counts) if both else None,
        "linf": None,
        "unseen_share": None,
        "unseen": {},
        "histogram": {
            "edges": edges,
            "categories": None,
            "baseline": shares(ref_c).tolist(),
            "current": shares(cur_c).tolist(),
        },
    }


def categorical_metrics(
    name: str, p: CategoricalProfile, cat: CategoryCounts, drift: DriftSettings
) -> dict[str, Any]:
    """One categorical feature: the kept categories, then 'not among them' (unseen) last."""
    n, top = len(p.categories), min(drift.coarse_categories, len(p.categories))
    ref = np.append(p.counts, p.other)
    groups = np.minimum(np.arange(n + 1), top)
    groups[n] = top + (1 if n > top else 0)
    names = [*p.categories[:top], *([OTHER] if n > top else []), UNSEEN]
    ref_c, cur_c = grouped(ref, groups), grouped(cat.counts, groups)
    seen = int(cat.counts.sum())
    unseen_share = _rate(int(cat.counts[n]), seen)
    base_other = _rate(p.other, int(ref.sum())) or 0.0
    unseen = dict(sorted(cat.unseen.items(), key=lambda kv: (-kv[1], kv[0])))
    if cat.unseen_rest:
        unseen[MORE_UNSEEN] = cat.unseen_rest
    return {
        "name": name,
        "kind": "categorical",
        **_common(ref_c, cur_c, p.missing, cat.missing, drift),
        "wasserstein": None,
        "ks": None,
        "linf": linf(ref, cat.counts) if seen and ref.sum() else None,
        "unseen_share": unseen_share,
        "unseen_excess": None if unseen_share is None else max(unseen_share - base_other, 0.0),
        "unseen": unseen,
        "histogram": {
            "edges": None,
            "categories": names,
            "baseline": shares(ref_c).tolist(),
            "current": shares(cur_c).tolist(),
        },
    }


KEYS = ("name", "kind", "status", "psi", "js", "wasserstein", "ks", "linf", "unseen_share")
KEYS += ("unseen", "missing_rate", "baseline_missing_rate", "missing_delta", "p_value")
KEYS += ("drift", "histogram")


def _finish(m: dict[str, Any], status: str, magnitude: float) -> dict[str, Any]:
    m = {**m, "status": status, "drift": magnitude}
    return {k: m[k] for k in KEYS}


def json_safe(value: Any) -> Any:
    """NaN and inf become None; numpy scalars become Python ones, recursively."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _metrics(baseline: Baseline, state: DriftState, drift: DriftSettings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, p in baseline.features.items():
        if isinstance(p, NumericProfile):
            counts, missing = state.numeric[name]
            out[name] = numeric_metrics(name, p, counts, missing, drift)
        else:
            out[name] = categorical_metrics(name, p, state.categorical[name], drift)
    return out


def evaluate(baseline: Baseline, state: DriftState, settings: MonitoringSettings) -> dict[str, Any]:
    """The drift result of a run (shape in docs/monitoring.md); `state` is the merged state."""
    if state.baseline_sha256 != baseline.sha256:
        raise ConfigError(
            f"the drift state was counted against baseline {state.baseline_sha256}, "
            f"not {baseline.sha256}",
            fix="evaluate with the baseline the run's shards counted against",
        )
    drift = settings.drift
    metrics = _metrics(baseline, state, drift)
    score_key = "\0score"  # the score joins the Holm family under a name no feature has
    if baseline.score is not None and state.score is not None:
        counts, missing = state.score
        metrics[score_key] = numeric_metrics("score", baseline.score, counts, missing, drift)
    status, magnitude = statuses(metrics, drift)
    done = {n: _finish(m, status[n], magnitude[n]) for n, m in metrics.items()}
    score = done.pop(score_key, None)
    features = sorted(
        done.values(), key=lambda f: (-STATUSES.index(f["status"]), -f["drift"], f["name"])
    )
    segments = [
        segment_result(seg, baseline.segments.get(column), settings)
        for column, seg in state.segments.items()
    ]
    flagged = [f["name"] for f in features if f["status"] != "ok"]
    if score is not None and score["status"] != "ok":
        flagged.append("score")
    every = [f["status"] for f in features] + [s["status"] for s in segments]
    every += [score["status"]] if score is not None else []
    result = {
        "status": worst(every),
        "baseline": {
            "sha256": baseline.sha256,
            "rows": baseline.rows,
            "path": None if baseline.path is None else str(baseline.path),
        },
        "rows": state.rows,
        "decision": {
            "rule": rule_text(drift, len(metrics)),
            "flagged": flagged,
            "alpha": drift.alpha,
            "tests": len(metrics),
            "counts": {s: every.count(s) for s in STATUSES},
            "segments_flagged": [s["column"] for s in segments if s["status"] != "ok"],
        },
        "features": features,
        "score": score,
        "segments": segments,
    }
    return json_safe(result)
