"""The history across published runs: one row per run, from the manifests alone.

Pure: manifest dicts in, rows out, so `batchscore monitor`, a DAG task or a notebook build the
same table from whatever store they read. A row holds the run's counts, quarantine share, score
mean, drift status with the PSI of every feature (`psi_<feature>`), and estimated or realized
performance when a run has them. Columns are the same on every row (None where a run has no
value) and named for `dvc plots` (no dots: Vega-Lite would read `psi.age` as a nested field);
`run` numbers the runs 1, 2, ... in run-key order, the numeric x DVC's line plots need.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.errors import InputDataError

HISTORY_VERSION = 1
DRIFT_LEVELS = {"ok": 0, "warn": 1, "fail": 2}  # drift_level, a number `dvc plots` can draw
BASE_COLUMNS = [
    "run",  # 1, 2, ... in run-key order: the numeric x DVC's line templates need
    "run_key",
    "model",
    "model_version",
    "created_at",
    "rows_in",
    "rows_scored",
    "rows_quarantined",
    "quarantine_share",
    "score_mean",
    "drift_status",
    "drift_level",
    "flagged",
    "flagged_features",
    "baseline_sha256",
    "score_psi",
]
PSI_PREFIX = "psi_"
_FIX = "re-publish the run, or remove the broken manifest so the history skips that run"


def history_rows(
    manifests: Sequence[Mapping[str, Any]],
    *,
    realized: Mapping[str, Mapping[str, Any]] | None = None,
    reports: Mapping[str, Mapping[str, Any]] | None = None,
    model: str | None = None,
    last: int | None = None,
) -> list[dict[str, Any]]:
    """One row per published run, sorted by run key (then model), every row with every column.

    `manifests` are the runs' `manifest.json` documents as dicts (with their `monitoring` and
    `estimated_performance` blocks, which a parsed `RunManifest` would drop). `realized` holds
    labelled metrics per run, keyed "MODEL/KEY" or "KEY" (`realized_<metric>` columns);
    `reports` the runs' JSON quality reports keyed "MODEL/KEY", whose 20-bin histogram gives
    the score mean (within half a bin, 0.025) when the manifest has no exact `scores.mean`.
    `model` keeps one model's runs; `last` the N latest by run key.
    """
    if last is not None and last < 1:
        raise InputDataError(f"last must be at least 1, got {last}", fix="ask for --last 1 or more")
    rows = [
        _row(m, i, realized or {}, reports or {})
        for i, m in enumerate(manifests)
        if model is None or _model_name(m, i) == model
    ]
    rows.sort(key=lambda r: (str(r["run_key"]), str(r["model"])))
    if last is not None:
        rows = rows[-last:]
    names = columns(rows)
    return [{name: r.get(name) for name in names} | {"run": i} for i, r in enumerate(rows, 1)]


def columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The base columns, then one PSI column per feature (by name), then performance columns
    (only those some run has)."""
    seen = {k for r in rows for k in r}
    psi = sorted(k for k in seen if k.startswith(PSI_PREFIX))
    perf = sorted(k for k in seen if k.startswith(("estimated_", "realized_")))
    return [*BASE_COLUMNS, *psi, *perf]


def feature_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The features that have a PSI column, most drifted first (highest PSI of any run)."""
    cols = [c for c in columns(rows) if c.startswith(PSI_PREFIX)]
    peak = {c: max((_float(r.get(c)) or 0.0 for r in rows), default=0.0) for c in cols}
    return [c.removeprefix(PSI_PREFIX) for c in sorted(cols, key=lambda c: (-peak[c], c))]


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """A tidy CSV: a header, one line per run in run-key order, empty cells where a run has no
    value. DVC's line templates need a numeric x: `dvc plots show history.csv -x run -y psi_age`
    (the tooltip shows run_key); `--template bar_horizontal -x psi_age -y run_key` uses the key."""
    buf = io.StringIO()
    names = columns(rows)
    writer = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if r.get(k) is None else r.get(k) for k in names})
    return buf.getvalue()


def to_json(rows: Sequence[Mapping[str, Any]], source: str | None = None) -> str:
    """The history as strict JSON: columns, features (most drifted first) and the runs."""
    doc = {
        "history_version": HISTORY_VERSION,
        "source": source,
        "columns": columns(rows),
        "features": feature_names(rows),
        "runs": [dict(r) for r in rows],
    }
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


def _row(
    m: Mapping[str, Any],
    index: int,
    realized: Mapping[str, Mapping[str, Any]],
    reports: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """One run's row: counts, score mean, drift, performance."""
    if not isinstance(m, Mapping):
        raise InputDataError(
            f"manifest #{index} is a {type(m).__name__}, not a JSON object", fix=_FIX
        )
    name, key = _model_name(m, index), _text(m, "run_key", index)
    run = f"{name}/{key}"
    counts = m.get("counts")
    if not isinstance(counts, Mapping):
        raise InputDataError("manifest has no counts", where=f"run {run}", fix=_FIX)
    rows_in, scored, quarantined = (
        _count(counts, k, run) for k in ("rows_in", "rows_scored", "rows_quarantined")
    )
    row: dict[str, Any] = {
        "run_key": key,
        "model": name,
        "model_version": (m.get("model") or {}).get("version"),
        "created_at": m.get("created_at"),
        "rows_in": rows_in,
        "rows_scored": scored,
        "rows_quarantined": quarantined,
        "quarantine_share": round(quarantined / rows_in, 6) if rows_in else None,
        "score_mean": _score_mean(m, reports.get(run)),
    }
    row |= _drift(m.get("monitoring"))
    row |= _prefixed("estimated_", m.get("estimated_performance"), run)
    row |= _prefixed("realized_", realized.get(run, realized.get(key)), run)
    return row


def _drift(monitoring: Any) -> dict[str, Any]:
    """Drift status, its level, what was flagged and the PSI per feature (score apart)."""
    if not isinstance(monitoring, Mapping):
        return {"drift_status": "off", "flagged": None}
    status = str(monitoring.get("status") or "unknown")
    out: dict[str, Any] = {"drift_status": status, "drift_level": DRIFT_LEVELS.get(status)}
    if status == "no_baseline":
        return out | {"flagged": None}
    features = [f for f in monitoring.get("features") or [] if isinstance(f, Mapping)]
    decision = monitoring.get("decision") or {}
    flagged = decision.get("flagged")
    if not isinstance(flagged, list):  # an older block: the features whose status is not ok
        flagged = [f.get("name") for f in features if f.get("status") in ("warn", "fail")]
    out["flagged"] = len(flagged)
    out["flagged_features"] = ";".join(str(f) for f in flagged)
    out["baseline_sha256"] = (monitoring.get("baseline") or {}).get("sha256")
    for f in features:
        out[PSI_PREFIX + str(f.get("name"))] = _float(f.get("psi"))
    score = monitoring.get("score")
    out["score_psi"] = _float(score.get("psi")) if isinstance(score, Mapping) else None
    return out


def _score_mean(m: Mapping[str, Any], report: Mapping[str, Any] | None) -> float | None:
    """The exact mean if the manifest has one, else the report histogram's (bin midpoints)."""
    exact = _float((m.get("scores") or {}).get("mean"))
    if exact is not None:
        return round(exact, 6)
    hist = (report or {}).get("score_histogram") or {}
    edges, counts = hist.get("bin_edges") or [], hist.get("counts") or []
    if len(edges) != len(counts) + 1 or not sum(counts):
        return None
    mids = [(float(a) + float(b)) / 2 for a, b in zip(edges, edges[1:], strict=False)]
    return round(sum(x * c for x, c in zip(mids, counts, strict=True)) / sum(counts), 6)


def _prefixed(prefix: str, metrics: Any, run: str) -> dict[str, Any]:
    """Performance numbers (and their method, as text) as `<prefix><metric>` columns."""
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise InputDataError(
            f"{prefix.rstrip('_')} performance of run {run} is not a mapping of metric -> value",
            fix='give e.g. {"auc": 0.81, "coverage": 0.4}',
        )
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if isinstance(v, str):
            out[f"{prefix}{k}"] = v
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = _float(v)
    return out


def _model_name(m: Mapping[str, Any], index: int) -> str:
    model = m.get("model") if isinstance(m, Mapping) else None
    name = model.get("name") if isinstance(model, Mapping) else None
    if not isinstance(name, str) or not name:
        raise InputDataError(f"manifest #{index} has no model.name", fix=_FIX)
    return name


def _text(m: Mapping[str, Any], field: str, index: int) -> str:
    value = m.get(field)
    if not isinstance(value, str) or not value:
        raise InputDataError(f"manifest #{index} has no {field}", fix=_FIX)
    return value


def _count(counts: Mapping[str, Any], field: str, run: str) -> int:
    value = counts.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputDataError(
            f"counts.{field} is {value!r}, not a row count", where=f"run {run}", fix=_FIX
        )
    return value


def _float(value: Any) -> float | None:
    """A finite float, else None (the CSV leaves the cell empty, strict JSON has no NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
