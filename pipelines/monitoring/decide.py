"""The alarm decision: per-feature status ok | warn | fail, and the run's status.

Two conditions, both needed, keep false alarms rare however many features there are and however
large the input: (1) the feature's coarse counts differ significantly from the baseline's (a
G-test per feature, Holm's step-down correction across every feature and the score at family-
wise level `alpha`), and (2) an effect size reaches its floor (`*_warn`: warn, `*_fail`: fail),
so a huge input does not alarm on a trivial move. The run takes the worst status of its
features, the score and the segments (segments only ever warn).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.monitoring.settings import DriftSettings

STATUSES = ("ok", "warn", "fail")
# effect-size metric -> the DriftSettings prefix of its floors
EFFECTS = {
    "psi": "psi",
    "wasserstein": "wasserstein",
    "ks": "ks",
    "linf": "linf",
    "unseen_excess": "unseen",
    "missing_change": "missing",
}


def effects(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The effect sizes of one feature's metrics that are defined (None ones are left out)."""
    out = {
        "psi": metrics.get("psi"),
        "wasserstein": metrics.get("wasserstein"),
        "ks": metrics.get("ks"),
        "linf": metrics.get("linf"),
        "unseen_excess": metrics.get("unseen_excess"),
        "missing_change": None
        if metrics.get("missing_delta") is None
        else abs(metrics["missing_delta"]),
    }
    return {k: float(v) for k, v in out.items() if v is not None}


def effect_level(sizes: Mapping[str, float], drift: DriftSettings) -> tuple[int, float]:
    """0 / 1 / 2 for below warn / warn / fail floors, and the largest size / warn floor ratio
    (the drift magnitude features are sorted by)."""
    level, ratio = 0, 0.0
    for name, value in sizes.items():
        prefix = EFFECTS[name]
        warn, fail = getattr(drift, f"{prefix}_warn"), getattr(drift, f"{prefix}_fail")
        if value >= fail:
            level = max(level, 2)
        elif value >= warn:
            level = max(level, 1)
        if warn > 0:
            ratio = max(ratio, value / warn)
    return level, ratio


def holm(p_values: Mapping[str, float | None], alpha: float) -> set[str]:
    """Names whose hypothesis 'same distribution' Holm's step-down procedure rejects."""
    tested = sorted((p, name) for name, p in p_values.items() if p is not None)
    m = len(tested)
    rejected: set[str] = set()
    for i, (p, name) in enumerate(tested):
        if p > alpha / (m - i):
            break
        rejected.add(name)
    return rejected


def statuses(
    metrics: Mapping[str, Mapping[str, Any]], drift: DriftSettings
) -> tuple[dict[str, str], dict[str, float]]:
    """Status and drift magnitude of every tested name (features and the score)."""
    significant = holm({n: m.get("p_value") for n, m in metrics.items()}, drift.alpha)
    status, magnitude = {}, {}
    for name, m in metrics.items():
        level, ratio = effect_level(effects(m), drift)
        status[name] = STATUSES[level] if name in significant else "ok"
        magnitude[name] = ratio
    return status, magnitude


def worst(values: Sequence[str]) -> str:
    """The worst of some statuses ('ok' when there are none)."""
    return STATUSES[max((STATUSES.index(v) for v in values), default=0)]


def rule_text(drift: DriftSettings, tests: int) -> str:
    """The decision rule in one sentence, with the numbers in force (for the report)."""
    floors = ", ".join(
        f"{name} >= {getattr(drift, f'{p}_warn')} (fail {getattr(drift, f'{p}_fail')})"
        for name, p in EFFECTS.items()
    )
    return (
        f"a feature is flagged when its G-test on coarse bins is significant after Holm's "
        f"correction across {tests} tests at alpha={drift.alpha} AND an effect size reaches its "
        f"floor: {floors}; the run takes the worst status of features, score and segments"
    )
