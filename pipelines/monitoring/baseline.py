"""The baseline stored with the model: a compact profile of its training data, as JSON.

Per feature: bin edges and counts (numeric) or category counts (categorical), missing count,
min/max/mean/std; the score's distribution on the held-out split; per-segment shares, score
means and positive rates; for a binary model with labels a `performance` block. A run compares
its own counts against these, so no training row is read at scoring time. `sha256` is the hash of
the file's bytes, recorded by a run's manifest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.errors import ConfigError, SchemaMismatchError

SCHEMA_VERSION = 1
KIND = "batchscore.baseline"
SUFFIX = ".baseline.json"


@dataclass(frozen=True)
class NumericProfile:
    """Counts of a numeric column in the 2m+1 bins of `edges` (see `monitoring.bins`)."""

    edges: np.ndarray
    counts: np.ndarray
    missing: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    kind: str = "numeric"

    @property
    def rows(self) -> int:
        return int(self.counts.sum()) + self.missing


@dataclass(frozen=True)
class CategoricalProfile:
    """Counts of the kept categories (most frequent first) plus `other` (the rest) and missing."""

    categories: tuple[str, ...]
    counts: np.ndarray
    other: int
    missing: int
    kind: str = "categorical"

    @property
    def rows(self) -> int:
        return int(self.counts.sum()) + self.other + self.missing


@dataclass(frozen=True)
class SegmentProfile:
    """One segment column on the held-out rows: per value its rows, score mean, positive rate."""

    column: str
    rows: int
    values: dict[str, dict[str, Any]]  # value -> {"rows", "score_mean", "positive_rate"}


Profile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class Baseline:
    """A loaded (or freshly built) baseline; `sha256`/`path` are set once it is on disk."""

    features: dict[str, Profile]
    rows: int
    score: NumericProfile | None = None
    performance: dict[str, Any] | None = None
    segments: dict[str, SegmentProfile] = field(default_factory=dict)
    binning: dict[str, Any] = field(default_factory=dict)
    sha256: str | None = None
    path: Path | None = None


def baseline_path_for(model_path: Path) -> Path:
    """A model's default baseline: beside it, all suffixes gone (`m.skops` → `m.baseline.json`)."""
    return model_path.with_name(model_path.name.split(".")[0] + SUFFIX)


def _numeric_json(p: NumericProfile) -> dict[str, Any]:
    return {
        "kind": "numeric",
        "edges": p.edges.tolist(),
        "counts": p.counts.tolist(),
        "missing": p.missing,
        "min": p.min,
        "max": p.max,
        "mean": p.mean,
        "std": p.std,
    }


def _profile_json(name: str, p: Profile) -> dict[str, Any]:
    if isinstance(p, NumericProfile):
        return {"name": name, **_numeric_json(p)}
    return {
        "name": name,
        "kind": "categorical",
        "categories": list(p.categories),
        "counts": p.counts.tolist(),
        "other": p.other,
        "missing": p.missing,
    }


def baseline_json(baseline: Baseline) -> dict[str, Any]:
    """The document `write_baseline` stores (schema_version 1)."""
    return {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        "rows": baseline.rows,
        "binning": baseline.binning,
        "features": [_profile_json(n, p) for n, p in baseline.features.items()],
        "score": None if baseline.score is None else _numeric_json(baseline.score),
        "performance": baseline.performance,
        "segments": [
            {"column": s.column, "rows": s.rows, "values": s.values}
            for s in baseline.segments.values()
        ],
    }


def canonical_bytes(baseline: Baseline) -> bytes:
    """The exact bytes on disk: compact JSON, keys in a fixed order, no NaN; the same baseline
    always gives the same bytes (so the same sha256)."""
    text = json.dumps(baseline_json(baseline), separators=(",", ":"), allow_nan=False)
    return (text + "\n").encode()


def write_baseline(baseline: Baseline, path: Path) -> Baseline:
    """Write atomically (temp file + rename); return the baseline with `sha256` and `path` set."""
    data = canonical_bytes(baseline)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return replace(baseline, sha256=hashlib.sha256(data).hexdigest(), path=path)


def load_baseline(path: Path) -> Baseline:
    """Read and check a baseline file; anything else is one ConfigError naming the file."""
    fix = "regenerate it: `batchscore baseline --data TRAIN.parquet --model MODEL.skops`"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"baseline {path} cannot be read ({exc.strerror or exc})",
            where="monitoring.baseline",
            fix=fix,
        ) from None
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"baseline is not valid JSON ({exc})", where=str(path), fix=fix) from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise ConfigError(
            'not a batchscore baseline (no "kind": "batchscore.baseline")',
            where=str(path),
            fix=fix,
        )
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(
            f"baseline schema_version {doc.get('schema_version')!r} is not {SCHEMA_VERSION}",
            where=str(path),
            fix=fix,
        )
    try:
        parsed = parse_baseline(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"baseline is malformed: {exc}", where=str(path), fix=fix) from None
    return replace(parsed, sha256=hashlib.sha256(data).hexdigest(), path=path)


def check_baseline(
    baseline: Baseline, features: Mapping[str, str] | Sequence[str], model: str = "the model"
) -> None:
    """Refuse a baseline made for other features than the model's (names, and kinds if known).

    `features` are the model's feature names, or name -> kind ("numeric", "categorical", or
    "any" when the model has no card).
    """
    kinds = dict(features) if isinstance(features, Mapping) else dict.fromkeys(features, "any")
    where = str(baseline.path) if baseline.path else "the baseline"
    missing = [n for n in kinds if n not in baseline.features]
    extra = [n for n in baseline.features if n not in kinds]
    if missing or extra:
        parts = [f"lacks {missing}" if missing else "", f"has {extra} too" if extra else ""]
        raise SchemaMismatchError(
            f"the baseline was made for other features than {model}'s: it "
            + " and ".join(p for p in parts if p),
            where=where,
            fix="make a baseline for this model: `batchscore baseline --data TRAIN.parquet "
            "--model MODEL.skops` (or point monitoring.baseline at the right file)",
        )
    wrong = [
        f"{n} ({baseline.features[n].kind} in the baseline, {k} in the model)"
        for n, k in kinds.items()
        if k in ("numeric", "categorical") and baseline.features[n].kind != k
    ]
    if wrong:
        raise SchemaMismatchError(
            f"the baseline's feature kinds differ from {model}'s: {', '.join(wrong)}",
            where=where,
            fix="rebuild the baseline with `batchscore baseline` for this model",
        )


def _counts(value: Any, size: int | None, what: str) -> np.ndarray:
    counts = np.asarray(value, dtype=np.int64)
    if counts.ndim != 1 or (size is not None and counts.size != size) or (counts < 0).any():
        raise ValueError(f"{what}: counts must be {size} non-negative integers")
    if not np.array_equal(counts, np.asarray(value, dtype=np.float64)):
        raise ValueError(f"{what}: counts must be integers")
    return counts


def _numeric(doc: dict[str, Any], what: str) -> NumericProfile:
    edges = np.asarray(doc["edges"], dtype=np.float64)
    if edges.ndim != 1 or not np.isfinite(edges).all() or (np.diff(edges) <= 0).any():
        raise ValueError(f"{what}: edges must be finite and strictly increasing")
    stats = {k: None if doc[k] is None else float(doc[k]) for k in ("min", "max", "mean", "std")}
    return NumericProfile(
        edges, _counts(doc["counts"], 2 * edges.size + 1, what), int(doc["missing"]), **stats
    )


def _feature(doc: dict[str, Any], what: str) -> Profile:
    if doc["kind"] == "numeric":
        return _numeric(doc, what)
    if doc["kind"] != "categorical":
        raise ValueError(f"{what}: kind {doc['kind']!r} is neither numeric nor categorical")
    categories = tuple(str(c) for c in doc["categories"])
    if len(set(categories)) != len(categories):
        raise ValueError(f"{what}: categories repeat")
    counts = _counts(doc["counts"], len(categories), what)
    return CategoricalProfile(categories, counts, int(doc["other"]), int(doc["missing"]))


def parse_baseline(doc: dict[str, Any]) -> Baseline:
    """A Baseline from its JSON document; KeyError/TypeError/ValueError name what is wrong."""
    features: dict[str, Profile] = {}
    for i, item in enumerate(doc["features"]):
        name = str(item["name"])
        if name in features:
            raise ValueError(f"feature {name!r} is listed twice")
        features[name] = _feature(item, f"features[{i}] ({name})")
    score = None if doc.get("score") is None else _numeric(doc["score"], "score")
    segments = {
        str(s["column"]): SegmentProfile(str(s["column"]), int(s["rows"]), dict(s["values"]))
        for s in doc.get("segments") or []
    }
    performance = doc.get("performance")
    if performance is not None and not isinstance(performance, dict):
        raise ValueError("performance must be an object or null")
    return Baseline(
        features=features,
        rows=int(doc["rows"]),
        score=score,
        performance=performance,
        segments=segments,
        binning=dict(doc.get("binning") or {}),
    )
