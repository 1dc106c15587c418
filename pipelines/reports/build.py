"""A run's quality report as one JSON document: what the HTML page and machines both read."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

REPORT_VERSION = 1
REASON_SEPARATOR = "; "  # how a row's several reasons are joined (contract, gate, quarantine)
# Run facts an older caller passed inside `input_version`; they are the run's, not the input's.
_RUN_FACTS = ("rows_per_s", "attempt_id")


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
    rows_per_s: float | None = None,
    attempt_id: str | None = None,
    monitoring: Mapping[str, Any] | None = None,
    challenger: Mapping[str, Any] | None = None,
    estimated_performance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report dict `render_html` and `render_json` take (all plain JSON types).

    This is long because it is one flat literal of every report field, in the report's order.

    `input_verdict`/`output_verdict` are `QualityVerdict.to_json()`; `score_histogram` the
    counts of the 20 equal bins over [0, 1] summed over chunks (`scoring.histogram`).
    `quarantine_reasons` may count rows under joined keys ("a; b"); the report counts rows
    per reason (see `reason_rows`). `input_version` is the input's identity (sha256, git_rev,
    dvc_md5): empty values are dropped, and run facts found there are moved to the top level.
    `monitoring` is the run's drift block (`pipelines.monitoring`), kept as given but made strict
    JSON (an infinite outer bin edge becomes None); without it the report has no such key.
    `challenger` (the shadow model and its comparison) and `estimated_performance` likewise.
    """
    counts = [int(c) for c in (score_histogram or [])]
    edges = list(histogram_edges) if histogram_edges is not None else bin_edges(len(counts))
    status = status if status is not None else gate_status(input_verdict, output_verdict)
    version = {k: v for k, v in (input_version or {}).items() if v is not None and v != ""}
    rows_per_s = rows_per_s if rows_per_s is not None else version.get("rows_per_s")
    attempt_id = attempt_id if attempt_id is not None else version.get("attempt_id")
    return {
        "report_version": REPORT_VERSION,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "status": status,
        "run_key": run_key,
        "attempt_id": None if attempt_id is None else str(attempt_id),
        "model_name": model_name,
        "model_version": model_version,
        "input_path": input_path,
        "input_version": {k: v for k, v in version.items() if k not in _RUN_FACTS},
        "scores": dict(scores or {}),
        "rows_in": int(rows_in),
        "rows_scored": int(rows_scored),
        "rows_quarantined": int(rows_quarantined),
        "rows_per_s": _finite(rows_per_s),
        "timings": {k: float(v) for k, v in (timings or {}).items()},
        "input_verdict": dict(input_verdict) if input_verdict is not None else None,
        "output_verdict": dict(output_verdict) if output_verdict is not None else None,
        "score_histogram": {"bin_edges": edges, "counts": counts},
        "quarantine_reasons": reason_rows(quarantine_reasons or {}),
    } | {
        name: strict_json(block)
        for name, block in (
            ("monitoring", monitoring),
            ("challenger", challenger),
            ("estimated_performance", estimated_performance),
        )
        if block is not None
    }


def gate_status(*verdicts: Mapping[str, Any] | None) -> str:
    """passed when every verdict given passed (none given: passed), else failed."""
    ok = all(v.get("success") for v in verdicts if v is not None)
    return "passed" if ok else "failed"


def reason_rows(reasons: Mapping[str, int]) -> dict[str, int]:
    """Rows per single reason, most first: a row counted under "a; b" counts once for a and
    once for b, so the counts can add up to more than the quarantined rows. Idempotent."""
    rows: Counter[str] = Counter()
    for key, count in reasons.items():
        for part in dict.fromkeys(p.strip() for p in str(key).split(REASON_SEPARATOR)):
            if part:
                rows[part] += int(count)
    return dict(sorted(rows.items(), key=lambda kv: (-kv[1], kv[0])))


def _finite(value: Any) -> float | None:
    """A finite float, else None (strict JSON has no NaN or inf)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def strict_json(value: Any) -> Any:
    """A plain-JSON copy of nested mappings and sequences: numpy values become Python ones, NaN
    and inf become None (strict JSON has neither), tuples become lists, keys become text."""
    if isinstance(value, Mapping):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    if value is None or isinstance(value, bool | str):
        return value
    if callable(getattr(value, "tolist", None)):  # a numpy scalar or array
        return strict_json(value.tolist())
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def render_json(report: Mapping[str, Any]) -> str:
    """Stable, strict JSON (sorted keys, no NaN literals)."""
    return json.dumps(report, indent=2, sort_keys=True, allow_nan=False) + "\n"


def bin_edges(bins: int) -> list[float]:
    """Equal-width bin edges over [0, 1]."""
    return [round(i / bins, 10) for i in range(bins + 1)] if bins else []
