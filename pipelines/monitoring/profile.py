"""`DriftState`: what a shard accumulates while it scores, merged exactly across shards.

Only whole numbers are kept: bin counts against the baseline's edges, category counts, unseen
values by name (the first `max_unseen` names in sorted order; the rest counted together),
missing counts, the score histogram, per-segment rows / score sums in fixed point / positives.
Adding integers is associative, so N shards merged in any order equal one pass, bit for bit;
memory is the baseline's bin count, whatever the input size. No training row is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.errors import ConfigError, SchemaMismatchError
from pipelines.monitoring.baseline import Baseline, CategoricalProfile, NumericProfile
from pipelines.monitoring.bins import as_numbers, keep_first_names
from pipelines.monitoring.numcount import NumericCounter
from pipelines.monitoring.segments import SegmentCounts, fixed_point
from pipelines.monitoring.settings import MonitoringSettings
from pipelines.monitoring.textcount import CategoryCounter

KIND = "batchscore.drift_state"


@dataclass
class CategoryCounts:
    """Counts of the baseline's categories (+1: not among them), missing, unseen by name."""

    counts: np.ndarray
    missing: int = 0
    unseen: dict[str, int] = field(default_factory=dict)
    unseen_rest: int = 0

    def add_unseen(self, named: Mapping[str, int], limit: int) -> None:
        """Add counts of unseen values by name, keeping the first `limit` names (see module)."""
        for name, c in named.items():
            self.unseen[name] = self.unseen.get(name, 0) + c
        self.unseen, dropped = keep_first_names(self.unseen, limit)
        self.unseen_rest += sum(dropped.values())

    def merged(self, other: CategoryCounts, limit: int) -> CategoryCounts:
        out = CategoryCounts(self.counts + other.counts, self.missing + other.missing)
        out.unseen_rest = self.unseen_rest + other.unseen_rest
        out.add_unseen(self.unseen, limit)
        out.add_unseen(other.unseen, limit)
        return out


def _pair_json(acc: list[Any]) -> dict[str, Any]:
    return {"counts": acc[0].tolist(), "missing": int(acc[1])}


def _pair(d: Mapping[str, Any]) -> list[Any]:
    return [np.asarray(d["counts"], dtype=np.int64), int(d["missing"])]


class DriftState:
    """Mergeable drift counts of one shard (or of a whole run, after `merge`)."""

    def __init__(self, baseline_sha256: str | None, max_unseen: int) -> None:
        self.baseline: Baseline | None = None  # needed by `update` only (edges, categories)
        self.baseline_sha256 = baseline_sha256
        self.max_unseen = max_unseen
        self.rows = 0
        self.positives = 0
        self.labelled = 0  # rows whose `positive` was given
        self.numeric: dict[str, list[Any]] = {}  # name -> [counts, missing]
        self.categorical: dict[str, CategoryCounts] = {}
        self.score: list[Any] | None = None  # [counts, missing] against the score's edges
        self.segments: dict[str, SegmentCounts] = {}
        self._index: dict[str, dict[str, int]] = {}
        self._counters: dict[str, CategoryCounter] = {}  # built from `_index` when first used
        self._numeric: dict[str | None, NumericCounter] = {}  # likewise, from the baseline's edges

    @classmethod
    def from_baseline(
        cls, baseline: Baseline, settings: MonitoringSettings | None = None
    ) -> DriftState:
        """An empty state for this baseline; the segments counted are `settings.segments`."""
        settings = settings or MonitoringSettings()
        state = cls(baseline.sha256, settings.drift.max_unseen)
        state._attach(baseline)
        for name, p in baseline.features.items():
            if isinstance(p, NumericProfile):
                state.numeric[name] = [np.zeros(p.counts.size, np.int64), 0]
            else:
                state.categorical[name] = CategoryCounts(np.zeros(len(p.categories) + 1, np.int64))
        if baseline.score is not None:
            state.score = [np.zeros(baseline.score.counts.size, np.int64), 0]
        for column in settings.segments:
            base = baseline.segments.get(column)
            known = frozenset(base.values) if base else frozenset()
            state.segments[column] = SegmentCounts(column, known, settings.drift.max_unseen)
        return state

    def _attach(self, baseline: Baseline) -> None:
        if baseline.sha256 != self.baseline_sha256:
            raise ConfigError(
                f"this drift state counts against baseline {self.baseline_sha256}, "
                f"not {baseline.sha256}",
                fix="use the baseline the run started with",
            )
        self.baseline = baseline
        self._index = {
            n: {c: i for i, c in enumerate(p.categories)}
            for n, p in baseline.features.items()
            if isinstance(p, CategoricalProfile)
        }

    def update(
        self, frame: pd.DataFrame, score: np.ndarray | None, positive: np.ndarray | None = None
    ) -> None:
        """Count one batch: the model's features (typed as it takes them) + segment columns,
        its scores, and whether each row's predicted class is the positive class."""
        baseline = self._baseline_for_update()
        absent = [c for c in (*self.numeric, *self.categorical, *self.segments) if c not in frame]
        if absent:
            raise SchemaMismatchError(
                f"the batch lacks column(s) {absent} that drift monitoring counts",
                fix="pass the model's features and the monitoring.segments columns",
            )
        n = len(frame)
        for what, array in (("score", score), ("positive", positive)):
            if array is not None and len(array) != n:
                raise ValueError(f"{what} has {len(array)} values for {n} rows")
        self.rows += n
        for name, acc in self.numeric.items():
            profile = baseline.features[name]
            assert isinstance(profile, NumericProfile)  # `numeric` holds the numeric features
            counts, missing = self._numeric_counter(name, profile).count(as_numbers(frame[name]))
            acc[0] += counts
            acc[1] += missing
        for name, cat in self.categorical.items():
            self._count_category(name, cat, frame[name])
        scores = None if score is None else np.asarray(score, dtype="float64")
        if self.score is not None and scores is not None and baseline.score is not None:
            counts, missing = self._numeric_counter(None, baseline.score).count(scores)
            self.score[0] += counts
            self.score[1] += missing
        if positive is not None:
            self.positives += int(np.count_nonzero(positive))
            self.labelled += n
        if self.segments:
            fp = fixed_point(scores) if scores is not None else np.zeros(n, np.int64)
            for column, seg in self.segments.items():
                seg.update(frame[column], fp, positive)

    def _baseline_for_update(self) -> Baseline:
        if self.baseline is None:
            raise ConfigError(
                "this drift state was read from JSON without its baseline; it can be merged "
                "and evaluated, not updated",
                fix="pass the baseline: DriftState.from_json(d, baseline)",
            )
        return self.baseline

    def _numeric_counter(self, name: str | None, profile: NumericProfile) -> NumericCounter:
        """The lookup counter of a numeric feature (None: the score) against its baseline
        bins, built on first use: its tables are per process, not part of the state."""
        counter = self._numeric.get(name)
        if counter is None:
            counter = self._numeric[name] = NumericCounter(profile.edges, profile.counts)
        return counter

    def _count_category(self, name: str, cat: CategoryCounts, column: pd.Series) -> None:
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = CategoryCounter(self._index[name])
        counts, missing, unseen = counter.count(column)
        cat.counts[: counts.size] += counts
        cat.missing += missing
        if unseen:
            cat.add_unseen(unseen, self.max_unseen)

    def merge(self, other: DriftState) -> DriftState:
        """This state plus another shard's, as a new state (neither is changed)."""
        same = (self.baseline_sha256, self.max_unseen, list(self.numeric), list(self.categorical))
        theirs = (other.baseline_sha256, other.max_unseen, list(other.numeric))
        if same[:3] != theirs or same[3] != list(other.categorical):
            raise ConfigError(
                "drift states of different baselines or settings cannot be merged",
                fix="every shard of a run must count against the same baseline and settings",
            )
        if list(self.segments) != list(other.segments) or (self.score is None) != (
            other.score is None
        ):
            raise ConfigError("drift states count different segments or score; cannot merge")
        out = DriftState(self.baseline_sha256, self.max_unseen)
        out.baseline, out._index = self.baseline or other.baseline, self._index or other._index
        out.rows, out.positives = self.rows + other.rows, self.positives + other.positives
        out.labelled = self.labelled + other.labelled
        out.numeric = {
            n: [a[0] + other.numeric[n][0], a[1] + other.numeric[n][1]]
            for n, a in self.numeric.items()
        }
        out.categorical = {
            n: c.merged(other.categorical[n], self.max_unseen) for n, c in self.categorical.items()
        }
        if self.score is not None and other.score is not None:
            out.score = [self.score[0] + other.score[0], self.score[1] + other.score[1]]
        out.segments = {n: s.merged(other.segments[n]) for n, s in self.segments.items()}
        return out

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (integers and text only): what a shard hands to the run's final step."""
        return {
            "kind": KIND,
            "schema_version": 1,
            "baseline_sha256": self.baseline_sha256,
            "max_unseen": self.max_unseen,
            "rows": self.rows,
            "positives": self.positives,
            "labelled": self.labelled,
            "numeric": {n: _pair_json(a) for n, a in self.numeric.items()},
            "categorical": {
                n: {
                    "counts": c.counts.tolist(),
                    "missing": c.missing,
                    "unseen": {k: c.unseen[k] for k in sorted(c.unseen)},
                    "unseen_rest": c.unseen_rest,
                }
                for n, c in self.categorical.items()
            },
            "score": None if self.score is None else _pair_json(self.score),
            "segments": {n: s.to_json() for n, s in self.segments.items()},
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any], baseline: Baseline | None = None) -> DriftState:
        """Rebuild a state from `to_json`; with its baseline it can go on counting."""
        if not isinstance(d, Mapping) or d.get("kind") != KIND:
            raise ConfigError('not a drift state (no "kind": "batchscore.drift_state")')
        state = cls(d["baseline_sha256"], int(d["max_unseen"]))
        state.rows, state.positives = int(d["rows"]), int(d["positives"])
        state.labelled = int(d["labelled"])
        state.numeric = {n: _pair(a) for n, a in d["numeric"].items()}
        state.categorical = {
            n: CategoryCounts(
                np.asarray(c["counts"], dtype=np.int64),
                int(c["missing"]),
                {str(k): int(v) for k, v in c["unseen"].items()},
                int(c["unseen_rest"]),
            )
            for n, c in d["categorical"].items()
        }
        state.score = None if d["score"] is None else _pair(d["score"])
        state.segments = {n: SegmentCounts.from_json(s) for n, s in d["segments"].items()}
        if baseline is not None:
            state._attach(baseline)
        return state
