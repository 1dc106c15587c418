"""Segments (bias monitoring): per value of a column, row share, score mean and positive rate.

The baseline keeps them for the held-out rows; the scoring pass keeps whole-number sums per
value (rows, score in fixed point, positives) so shards merge exactly; the result compares the
two and flags a column whose highest / lowest positive rate passes `segment_ratio_max`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.monitoring.baseline import SegmentProfile
from pipelines.monitoring.bins import encode_text, keep_first_names
from pipelines.monitoring.settings import DriftSettings, MonitoringSettings

SCORE_SCALE = 1 << 24  # scores are summed as integers of 2**-24: exact, any merge order
MISSING, OTHER = "(missing)", "(other)"
_ROWS, _SCORE, _POS, _LABELLED = range(4)


def fixed_point(score: np.ndarray) -> np.ndarray:
    """Scores in [0, 1] as integers of 2**-24 (what segment score sums are kept in)."""
    return np.rint(np.clip(score, 0.0, 1.0) * SCORE_SCALE).astype(np.int64)


def _sums(
    column: pd.Series, score_fp: np.ndarray, positive: np.ndarray | None
) -> dict[str, list[int]]:
    """Per value: [rows, score sum (fixed point), positives, rows with a known positive]."""
    values, codes = encode_text(column)
    names = [*values, MISSING]
    size = len(names)
    rows = np.bincount(codes, minlength=size)
    # float weights are exact here: each is an integer <= 2**24 and a batch is < 2**29 rows
    scores = np.rint(np.bincount(codes, weights=score_fp, minlength=size)).astype(np.int64)
    if positive is None:
        pos, labelled = np.zeros(size, np.int64), np.zeros(size, np.int64)
    else:
        weights = np.asarray(positive, dtype="float64")
        pos, labelled = np.rint(np.bincount(codes, weights=weights, minlength=size)), rows
    return {
        names[i]: [int(rows[i]), int(scores[i]), int(pos[i]), int(labelled[i])]
        for i in np.flatnonzero(rows)
    }


def segment_profile(
    column: pd.Series, score: np.ndarray, positive: np.ndarray | None, drift: DriftSettings
) -> SegmentProfile:
    """The baseline's view of one segment column (the `max_categories` largest values)."""
    sums = _sums(column, fixed_point(score), positive)
    ranked = sorted(sums.items(), key=lambda kv: (-kv[1][_ROWS], kv[0]))[: drift.max_categories]
    values = {
        name: {
            "rows": s[_ROWS],
            "score_mean": s[_SCORE] / SCORE_SCALE / s[_ROWS],
            "positive_rate": s[_POS] / s[_LABELLED] if s[_LABELLED] else None,
        }
        for name, s in ranked
    }
    return SegmentProfile(str(column.name), len(column), values)


@dataclass
class SegmentCounts:
    """Mergeable per-value sums of one segment column; values the baseline lacks are capped."""

    column: str
    known: frozenset[str]
    limit: int
    sums: dict[str, list[int]] = field(default_factory=dict)
    rest: list[int] = field(default_factory=lambda: [0, 0, 0, 0])

    def add(self, sums: Mapping[str, list[int]]) -> None:
        for name, s in sums.items():
            mine = self.sums.setdefault(name, [0, 0, 0, 0])
            for k in range(4):
                mine[k] += s[k]
        new = {n: v for n, v in self.sums.items() if n not in self.known}
        _, dropped = keep_first_names(new, self.limit)
        for name, sums_dropped in dropped.items():
            del self.sums[name]
            self.rest = [a + b for a, b in zip(self.rest, sums_dropped, strict=True)]

    def update(self, column: pd.Series, score_fp: np.ndarray, positive: np.ndarray | None) -> None:
        self.add(_sums(column, score_fp, positive))

    def merged(self, other: SegmentCounts) -> SegmentCounts:
        out = SegmentCounts(self.column, self.known, self.limit, {}, [0, 0, 0, 0])
        for part in (self, other):
            out.add(part.sums)
            out.rest = [a + b for a, b in zip(out.rest, part.rest, strict=True)]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "known": sorted(self.known),
            "limit": self.limit,
            "sums": {n: self.sums[n] for n in sorted(self.sums)},
            "rest": self.rest,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SegmentCounts:
        sums = {str(n): [int(x) for x in v] for n, v in d["sums"].items()}
        rest = [int(x) for x in d["rest"]]
        return cls(str(d["column"]), frozenset(d["known"]), int(d["limit"]), sums, rest)


def _rate(s: list[int]) -> float | None:
    return s[_POS] / s[_LABELLED] if s[_LABELLED] else None


def _ratio(rates: list[float], threshold: float) -> tuple[float | None, str]:
    """Highest / lowest rate and the status it gives (a zero lowest rate is infinitely apart)."""
    if len(rates) < 2:
        return None, "ok"
    high, low = max(rates), min(rates)
    if low == 0:
        return None, "warn" if high > 0 else "ok"
    ratio = high / low
    return float(ratio), "warn" if ratio > threshold else "ok"


def segment_result(
    counts: SegmentCounts, base: SegmentProfile | None, settings: MonitoringSettings
) -> dict[str, Any]:
    """One entry of the result's `segments`: values by rows (largest first), ratio, status."""
    total = sum(s[_ROWS] for s in counts.sums.values()) + counts.rest[_ROWS]
    entries = sorted(counts.sums.items(), key=lambda kv: (-kv[1][_ROWS], kv[0]))
    if counts.rest[_ROWS]:
        entries.append((OTHER, counts.rest))
    values, rates = [], []
    for name, s in entries:
        ref = base.values.get(name) if base is not None and name != OTHER else None
        rate = _rate(s)
        if rate is not None and name != OTHER and s[_ROWS] >= settings.segment_min_rows:
            rates.append(rate)
        values.append(
            {
                "value": name,
                "rows": s[_ROWS],
                "share": s[_ROWS] / total,
                "baseline_share": ref["rows"] / base.rows if ref and base and base.rows else None,
                "score_mean": s[_SCORE] / SCORE_SCALE / s[_ROWS],
                "baseline_score_mean": ref["score_mean"] if ref else None,
                "positive_rate": rate,
                "baseline_positive_rate": ref["positive_rate"] if ref else None,
            }
        )
    ratio, status = _ratio(rates, settings.segment_ratio_max)
    return {
        "column": counts.column,
        "status": status,
        "ratio": ratio,
        "threshold": settings.segment_ratio_max,
        "values": values,
    }
