"""Build a baseline from training data: frames and arrays in, a `Baseline` out (no I/O).

Memory beyond the frame stays bounded: one column at a time is converted and sorted (quantiles
from the frame), and what is kept is a few thousand counts per feature whatever the row count.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pipelines.errors import InputDataError
from pipelines.monitoring.baseline import (
    Baseline,
    CategoricalProfile,
    NumericProfile,
    Profile,
    SegmentProfile,
)
from pipelines.monitoring.bins import as_numbers, count_numeric, count_text, numeric_edges
from pipelines.monitoring.performance import performance_block
from pipelines.monitoring.segments import segment_profile
from pipelines.monitoring.settings import DriftSettings, MonitoringSettings

KINDS = ("numeric", "categorical")


def kind_of(column: pd.Series) -> str:
    """numeric dtypes (not bool) -> numeric; object/string/category/bool -> categorical."""
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        return "categorical"
    return "numeric"


def numeric_profile(values: np.ndarray, drift: DriftSettings) -> NumericProfile:
    """Edges and counts of one numeric column (or the score)."""
    edges = numeric_edges(values.astype("float64", copy=False), drift.fine_bins, drift.width_bins)
    counts, missing = count_numeric(values, edges)
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if finite.size == 0:
        return NumericProfile(edges, counts, missing, None, None, None, None)
    return NumericProfile(
        edges,
        counts,
        missing,
        float(finite.min()),
        float(finite.max()),
        float(np.mean(finite, dtype="float64")),
        float(np.std(finite, dtype="float64")),
    )


def categorical_profile(column: pd.Series, drift: DriftSettings) -> CategoricalProfile:
    """The `max_categories` most frequent values (ties by name) with counts; the rest is other."""
    seen, missing = count_text(column)
    ranked = sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = ranked[: drift.max_categories]
    other = sum(c for _, c in ranked[drift.max_categories :])
    counts = np.array([c for _, c in kept], dtype=np.int64)
    return CategoricalProfile(tuple(v for v, _ in kept), counts, other, missing)


def _kinds(features: pd.DataFrame, kinds: Mapping[str, str] | None) -> dict[str, str]:
    given = dict(kinds or {})
    unknown = [n for n in given if n not in features.columns]
    if unknown:
        raise InputDataError(
            f"kinds name column(s) {unknown} that the training data does not have",
            fix="pass kinds only for the data's feature columns",
        )
    out = {}
    for name in features.columns:
        kind = given.get(name, "any")
        if kind not in (*KINDS, "any"):
            raise InputDataError(
                f"feature {name!r} has kind {kind!r}", fix="use 'numeric' or 'categorical'"
            )
        out[str(name)] = kind_of(features[name]) if kind == "any" else kind
    return out


def _profile(name: str, column: pd.Series, kind: str, drift: DriftSettings) -> Profile:
    if kind == "categorical":
        return categorical_profile(column, drift)
    if kind_of(column) != "numeric":
        raise InputDataError(
            f"feature {name!r} is declared numeric but holds {column.dtype} values",
            fix="cast it to numbers in the training data, or declare it categorical",
        )
    return numeric_profile(as_numbers(column), drift)


def build_baseline(
    features: pd.DataFrame,
    kinds: Mapping[str, str] | None = None,
    score: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    positive: np.ndarray | None = None,
    segments: pd.DataFrame | None = None,
    *,
    settings: MonitoringSettings | None = None,
    positive_label: object = 1,
) -> Baseline:
    """The baseline of a model's training data.

    `features`: the model's feature columns (training rows). `kinds`: name -> numeric |
    categorical (missing names: from the dtypes). `score`, `labels`, `positive` and `segments`
    are aligned on the held-out rows: the model's score, the true labels (a `performance` block
    is made for a binary model: a label equal to `positive_label` is a positive), whether the
    predicted class is the positive class, and the segment columns.
    """
    settings = settings or MonitoringSettings()
    drift = settings.drift
    if features.shape[0] == 0:
        raise InputDataError("the training data has no rows", fix="pass the data the model learned")
    profiles = {
        name: _profile(name, features[name], kind, drift)
        for name, kind in _kinds(features, kinds).items()
    }
    score_profile = None
    performance = None
    seg: dict[str, SegmentProfile] = {}
    if score is not None:
        score = np.asarray(score, dtype="float64")
        score_profile = numeric_profile(score, drift)
        aligned = [("labels", labels), ("positive", positive)]
        if segments is not None:
            aligned.append(("segments", segments))
        for what, array in aligned:
            if array is not None and len(array) != len(score):
                raise InputDataError(f"{what} has {len(array)} rows but score has {len(score)}")
        if labels is not None:
            truth = np.asarray(labels) == positive_label
            performance = performance_block(score, truth, positive, settings.performance)
        for column in segments.columns if segments is not None else ():
            seg[str(column)] = segment_profile(segments[column], score, positive, drift)
    binning = {k: getattr(drift, k) for k in ("fine_bins", "width_bins", "max_categories")}
    return Baseline(
        features=profiles,
        rows=int(features.shape[0]),
        score=score_profile,
        performance=performance,
        segments=seg,
        binning=binning,
    )
