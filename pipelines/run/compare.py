"""Published runs read back: a run's gate verdict, failed attempts, and what changed between two.

`batchscore runs list|show|diff` only formats what these return. The diff compares counts, the
quarantine reasons, the score distribution (PSI over the report's histogram) and provenance
(input, model, suites, code), so "why do tonight's scores look different?" has one answer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.publish.keys import failed_report_key, manifest_run
from pipelines.publish.manifest import RunManifest
from pipelines.storage.base import ObjectStore

PSI_EPSILON = 1e-4  # the share an empty bin counts as: ln(p/0) would be infinite
TOP_REASONS = 10


def suite_verdicts(quality: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each gate's verdict in a manifest's `quality` block: passed/failed, share, failures."""
    return {
        name: {
            "verdict": "passed" if v.get("success") else "failed",
            "suite": v.get("suite_name"),
            "source": v.get("suite_source"),
            "sha256": v.get("suite_sha256") or v.get("suite_digest"),
            "quarantine_fraction": v.get("quarantine_fraction"),
            "max_quarantine_fraction": v.get("max_quarantine_fraction"),
            "failures": list(v.get("table_failures") or []),
        }
        for name, v in sorted(quality.items())
        if isinstance(v, Mapping) and "success" in v
    }


def gate_verdict(quality: Mapping[str, Any]) -> str:
    """passed (every gate passed), failed (one did not) or off (validation disabled)."""
    verdicts = [v["verdict"] for v in suite_verdicts(quality).values()]
    if not verdicts:
        return "off"
    return "passed" if all(v == "passed" for v in verdicts) else "failed"


def published_report(store: ObjectStore, manifest: RunManifest) -> dict[str, Any] | None:
    """The run's JSON quality report (it holds the score histogram), found through its parts."""
    key = next(
        (p.key for p in manifest.parts if p.kind == "report" and p.key.endswith(".json")), None
    )
    body = store.get_bytes(key) if key else None
    return json.loads(body) if body else None


def failed_attempts(store: ObjectStore, model_name: str | None = None) -> list[dict[str, Any]]:
    """Every failed attempt whose report was kept (`<run>/failed/<attempt>/`), newest first."""
    keys = store.list_keys("")
    published = {run for key in keys if (run := manifest_run(key))}
    attempts: dict[tuple[str, str, str], dict[str, str]] = {}
    for key in keys:
        parts = key.split("/")
        if len(parts) != 5 or parts[2] != "failed":
            continue
        model, run_key, _, attempt, name = parts
        if failed_report_key(model, run_key, attempt, name) == key and model_name in (None, model):
            attempts.setdefault((model, run_key, attempt), {})[name] = key
    found = []
    for (model, run_key, attempt), files in attempts.items():
        by_suffix = {name.rpartition(".")[2]: key for name, key in files.items()}
        body = store.get_bytes(by_suffix["json"]) if "json" in by_suffix else None
        report = json.loads(body) if body else {}
        found.append(
            {
                "run": f"{model}/{run_key}",
                "attempt_id": attempt,
                "generated_at": report.get("generated_at"),
                "rows_in": report.get("rows_in"),
                "rows_quarantined": report.get("rows_quarantined"),
                "why": failure_reason(report),
                "published_since": (model, run_key) in published,
                "report": store.url(by_suffix.get("html") or next(iter(files.values()))),
            }
        )
    return sorted(found, key=lambda f: f["generated_at"] or "", reverse=True)


def failure_reason(report: Mapping[str, Any]) -> str:
    """The first thing that failed a run, from its report."""
    for name in ("input_verdict", "output_verdict"):
        if failures := (report.get(name) or {}).get("table_failures"):
            return f"{name.split('_')[0]} gate: {failures[0]}"
    rows_in, quarantined = report.get("rows_in"), report.get("rows_quarantined")
    if rows_in and quarantined:
        return f"{quarantined:,} of {rows_in:,} rows quarantined ({quarantined / rows_in:.2%})"
    return str(report.get("status") or "unknown (no report)")


def psi(expected: Sequence[float], actual: Sequence[float], eps: float = PSI_EPSILON) -> float:
    """Population stability index of two histograms over the same bins: sum((p-q) ln(p/q)).

    Counts become shares; an empty bin counts as `eps` of its side.
    """
    if len(expected) != len(actual) or not sum(expected) or not sum(actual):
        raise ValueError("PSI needs two non-empty histograms over the same bins")
    p = [max(c / sum(expected), eps) for c in expected]
    q = [max(c / sum(actual), eps) for c in actual]
    return float(sum((a - b) * math.log(a / b) for a, b in zip(p, q, strict=True)))


def psi_band(value: float) -> str:
    """< 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift (the usual reading)."""
    return "stable" if value < 0.1 else "moderate shift" if value <= 0.25 else "major shift"


def diff_runs(
    a: RunManifest,
    b: RunManifest,
    report_a: Mapping[str, Any] | None,
    report_b: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """What differs from run `a` to run `b` (plain JSON types; `b - a` for every delta)."""
    return {
        "a": f"{a.model.name}/{a.run_key}",
        "b": f"{b.model.name}/{b.run_key}",
        "counts": _counts(a, b),
        "gate": {"a": gate_verdict(a.quality), "b": gate_verdict(b.quality)},
        "quarantine_reasons": _reasons(_reason_counts(a, report_a), _reason_counts(b, report_b)),
        "scores": _scores(report_a, report_b),
        "changed": [c for c in _provenance(a, b) if c["a"] != c["b"]],
        "unchanged": [c["what"] for c in _provenance(a, b) if c["a"] == c["b"]],
    }


def _counts(a: RunManifest, b: RunManifest) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for field in ("rows_in", "rows_scored", "rows_quarantined"):
        x, y = getattr(a.counts, field), getattr(b.counts, field)
        out[field] = {"a": x, "b": y, "delta": y - x}
    sa, sb = (
        m.counts.rows_quarantined / m.counts.rows_in if m.counts.rows_in else 0.0 for m in (a, b)
    )
    out["quarantine_share"] = {"a": round(sa, 6), "b": round(sb, 6), "delta": round(sb - sa, 6)}
    return out


def _reason_counts(m: RunManifest, report: Mapping[str, Any] | None) -> dict[str, int]:
    """The report's quarantine reasons (top 50), else the input gate's counts."""
    if report and report.get("quarantine_reasons") is not None:
        return dict(report["quarantine_reasons"])
    return dict((m.quality.get("input") or {}).get("reason_counts") or {})


def _reasons(a: Mapping[str, int], b: Mapping[str, int]) -> list[dict[str, Any]]:
    """The top reasons of either run, biggest first, with their change."""
    rows = [
        {"reason": r, "a": a.get(r, 0), "b": b.get(r, 0), "delta": b.get(r, 0) - a.get(r, 0)}
        for r in set(a) | set(b)
    ]
    rows.sort(key=lambda r: (-max(r["a"], r["b"]), r["reason"]))
    return rows[:TOP_REASONS]


def _scores(
    report_a: Mapping[str, Any] | None, report_b: Mapping[str, Any] | None
) -> dict[str, Any]:
    """PSI, its band, the mean score (from bin midpoints) and the shares per bin."""
    ha, hb = ((r or {}).get("score_histogram") or {} for r in (report_a, report_b))
    edges, ca, cb = ha.get("bin_edges") or [], ha.get("counts") or [], hb.get("counts") or []
    if not ca or not cb or edges != (hb.get("bin_edges") or []) or not sum(ca) or not sum(cb):
        why = "a run has no published report" if not (report_a and report_b) else "no common bins"
        return {"psi": None, "band": None, "note": f"cannot compare score distributions: {why}"}
    value = psi(ca, cb)
    mids = [(lo + hi) / 2 for lo, hi in zip(edges, edges[1:], strict=False)]
    return {
        "psi": round(value, 6),
        "band": psi_band(value),
        "mean_a": round(sum(m * c for m, c in zip(mids, ca, strict=False)) / sum(ca), 4),
        "mean_b": round(sum(m * c for m, c in zip(mids, cb, strict=False)) / sum(cb), 4),
        "bins": [
            {"from": lo, "to": hi, "a": round(x / sum(ca), 6), "b": round(y / sum(cb), 6)}
            for lo, hi, x, y in zip(edges, edges[1:], ca, cb, strict=False)
        ],
    }


def _provenance(a: RunManifest, b: RunManifest) -> list[dict[str, Any]]:
    """Each fact that decides a run's output, in both runs: input, model, suites, code."""
    facts = [
        *(f"input.{f}" for f in ("path", "sha256", "git_rev", "dvc_md5", "format")),
        *(f"model.{f}" for f in ("name", "version", "sha256")),
    ]
    out = [{"what": f, "a": _get(a, f), "b": _get(b, f)} for f in facts]
    sa, sb = suite_verdicts(a.quality), suite_verdicts(b.quality)
    for gate in sorted(set(sa) | set(sb)):
        for field in ("suite", "source", "sha256"):
            x, y = (s.get(gate, {}).get(field) for s in (sa, sb))
            if x is not None or y is not None:
                out.append({"what": f"suites.{gate}.{field}", "a": x, "b": y})
    out.append({"what": "code_version", "a": a.code_version, "b": b.code_version})
    out.append({"what": "fingerprint", "a": a.fingerprint, "b": b.fingerprint})
    return out


def _get(m: RunManifest, dotted: str) -> Any:
    section, field = dotted.split(".")
    return getattr(getattr(m, section), field)
