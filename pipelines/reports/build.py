"""A run's quality report as one JSON document: what the HTML page and machines both read."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

REPORT_VERSION = 1


def build_report(
    *,
    run_key: str,
    model_name: str,
    model_version: str,
    input_path: str,
    rows_in: int,
    rows_scored: int,
    rows_quarantined: int,
    input_verdict: Mapping[str, Any] | None,
    output_verdict: Mapping[str, Any] | None,
    score_histogram: Sequence[int] | None = None,
    histogram_edges: Sequence[float] | None = None,
    quarantine_reasons: Mapping[str, int] | None = None,
    timings: Mapping[str, float] | None = None,
    status: str | None = None,
    input_version: Mapping[str, Any] | None = None,
    scores: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report dict `render_html` and `render_json` take (all plain JSON types).

    `input_verdict`/`output_verdict` are `QualityVerdict.to_json()`; `score_histogram` the
    counts of the 20 equal bins over [0, 1] summed over chunks (`scoring.histogram`).
    """
    counts = [int(c) for c in (score_histogram or [])]
    edges = list(histogram_edges) if histogram_edges is not None else bin_edges(len(counts))
    verdicts = [v for v in (input_verdict, output_verdict) if v is not None]
    if status is None:
        status = "passed" if all(v.get("success") for v in verdicts) else "failed"
    return {
        "report_version": REPORT_VERSION,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "status": status,
        "run_key": run_key,
        "model_name": model_name,
        "model_version": model_version,
        "input_path": input_path,
        "input_version": dict(input_version or {}),
        "scores": dict(scores or {}),
        "rows_in": int(rows_in),
        "rows_scored": int(rows_scored),
        "rows_quarantined": int(rows_quarantined),
        "timings": {k: float(v) for k, v in (timings or {}).items()},
        "input_verdict": dict(input_verdict) if input_verdict is not None else None,
        "output_verdict": dict(output_verdict) if output_verdict is not None else None,
        "score_histogram": {"bin_edges": edges, "counts": counts},
        "quarantine_reasons": dict(
            sorted((quarantine_reasons or {}).items(), key=lambda kv: (-kv[1], kv[0]))
        ),
    }


def render_json(report: Mapping[str, Any]) -> str:
    """Stable, strict JSON (sorted keys, no NaN literals)."""
    return json.dumps(report, indent=2, sort_keys=True, allow_nan=False) + "\n"


def bin_edges(bins: int) -> list[float]:
    """Equal-width bin edges over [0, 1]."""
    return [round(i / bins, 10) for i in range(bins + 1)] if bins else []
