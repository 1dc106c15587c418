"""Quality reports of a run: JSON for machines, one self-contained HTML page for people.

The HTML has no external assets (inline CSS, inline SVG charts, no scripts), so it opens the same
from S3, a laptop or an email attachment, and cannot leak a reader's IP to a CDN. Every value
that comes from data is escaped.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
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
    edges = list(histogram_edges) if histogram_edges is not None else _edges(len(counts))
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


def render_html(report: Mapping[str, Any]) -> str:
    """One self-contained HTML page: summary, failures, per-expectation tables, charts."""
    e = _esc
    status = str(report.get("status", "unknown"))
    rows_in = int(report.get("rows_in", 0))
    q = int(report.get("rows_quarantined", 0))
    verdicts = [
        ("Input", report.get("input_verdict")),
        ("Output", report.get("output_verdict")),
    ]
    title = f"Quality report: {report.get('model_name', '?')} / {report.get('run_key', '?')}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{e(title)}</h1>",
        f'<span class="badge {_cls(status)}">{e(status)}</span></header>',
        '<section class="cards">',
        _card("Rows in", f"{rows_in:,}"),
        _card("Scored", f"{int(report.get('rows_scored', 0)):,}"),
        _card("Quarantined", f"{q:,}", f"{q / rows_in:.2%}" if rows_in else "-"),
        _card("Model", str(report.get("model_name", "?")), str(report.get("model_version", ""))),
        "</section>",
        '<section><h2>Run</h2><table class="kv">',
        _kv("Run key", report.get("run_key")),
        _kv("Input", report.get("input_path")),
        _kv("Score", (report.get("scores") or {}).get("score_is")),
        _kv("Classes", ", ".join(map(str, (report.get("scores") or {}).get("classes", [])))),
        *(_kv(f"Input {k}", v) for k, v in (report.get("input_version") or {}).items()),
        _kv("Generated", report.get("generated_at")),
        "</table></section>",
    ]
    problems = [(name, f) for name, v in verdicts if v for f in v.get("table_failures", [])]
    if problems:
        parts.append('<section class="failures"><h2>Why the gate failed</h2><ul>')
        parts += [f"<li><b>{e(name)}:</b> {e(msg)}</li>" for name, msg in problems]
        parts.append("</ul></section>")
    warnings = [(name, w) for name, v in verdicts if v for w in v.get("warnings", [])]
    if warnings:
        parts.append('<section class="warnings"><h2>Warnings</h2><ul>')
        parts += [f"<li><b>{e(name)}:</b> {e(msg)}</li>" for name, msg in warnings]
        parts.append("</ul></section>")
    hist = report.get("score_histogram") or {}
    if hist.get("counts"):
        parts += [
            "<section><h2>Score distribution</h2>",
            _histogram_svg(hist.get("bin_edges") or _edges(len(hist["counts"])), hist["counts"]),
            "</section>",
        ]
    reasons = report.get("quarantine_reasons") or {}
    parts.append("<section><h2>Quarantine reasons</h2>")
    parts.append(_reasons_table(reasons) if reasons else "<p>No row was quarantined.</p>")
    parts.append("</section>")
    for name, verdict in verdicts:
        if verdict:
            parts.append(_verdict_section(name, verdict))
    timings = report.get("timings") or {}
    if timings:
        parts.append('<section><h2>Timings</h2><table class="kv">')
        parts += [_kv(k, f"{float(v):.3f} s") for k, v in timings.items()]
        parts.append("</table></section>")
    parts.append(_HOWTO)
    parts.append("</body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _cls(status: str) -> str:
    return {"passed": "ok", "published": "ok", "success": "ok"}.get(status.lower(), "bad")


def _card(label: str, value: str, sub: str = "") -> str:
    return (
        f'<div class="card"><div class="label">{_esc(label)}</div>'
        f'<div class="value">{_esc(value)}</div><div class="sub">{_esc(sub)}</div></div>'
    )


def _kv(key: Any, value: Any) -> str:
    return f"<tr><th>{_esc(key)}</th><td>{_esc(value)}</td></tr>"


def _edges(bins: int) -> list[float]:
    return [round(i / bins, 10) for i in range(bins + 1)] if bins else []


def _verdict_section(name: str, v: Mapping[str, Any]) -> str:
    """Summary line, then the expectations that need attention, then the passing ones folded."""
    e = _esc
    ok = bool(v.get("success"))
    head = (
        f"<section><h2>{e(name)} suite <code>{e(v.get('suite_name'))}</code> "
        f'<span class="badge {"ok" if ok else "bad"}">{"passed" if ok else "failed"}</span></h2>'
        f"<p>{e(v.get('evaluated_expectations'))} of {e(v.get('suite_size'))} expectations "
        f"evaluated over {int(v.get('rows_in', 0)):,} rows in {e(v.get('batches'))} batch(es); "
        f"{int(v.get('rows_quarantined', 0)):,} quarantined "
        f"({float(v.get('quarantine_fraction', 0)):.2%}, limit "
        f"{float(v.get('max_quarantine_fraction', 0)):.2%}). Suite file: "
        f"<code>{e(v.get('suite_source'))}</code></p>"
    )
    attention, passing = [], []
    for r in v.get("expectations", []):
        row = _expectation_row(r)
        (passing if r.get("evaluated") and r.get("success") else attention).append(row)
    parts = [head]
    if attention:
        parts.append(_EXP_HEAD + "\n".join(attention) + "</tbody></table>")
    else:
        parts.append("<p>Every expectation passed.</p>")
    if passing:
        parts.append(
            f"<details><summary>{len(passing)} passing expectation(s)</summary>"
            + _EXP_HEAD
            + "\n".join(passing)
            + "</tbody></table></details>"
        )
    return "\n".join(parts) + "</section>"


_EXP_HEAD = (
    '<table class="exp"><thead><tr><th>#</th><th>Expectation</th><th>Kind</th>'
    "<th>How</th><th>Result</th><th>Rows checked</th><th>Unexpected</th><th>Observed</th>"
    "<th>Examples of failing values</th></tr></thead><tbody>"
)


def _expectation_row(r: Mapping[str, Any]) -> str:
    e = _esc
    if not r.get("evaluated"):
        state, cls = "not evaluated", "bad"
    elif r.get("success"):
        state, cls = "pass", "ok"
    elif r.get("kind") == "row" and r.get("severity") == "critical":
        state, cls = "quarantined", "warn"
    elif r.get("severity") == "critical":
        state, cls = "fail", "bad"
    else:
        state, cls = str(r.get("severity")), "warn"
    unexpected = int(r.get("unexpected_count") or 0)
    pct = float(r.get("unexpected_percent") or 0)
    examples = list(r.get("examples") or [])[:6]
    ids = list(r.get("example_ids") or [])
    shown = ", ".join(
        f"{_short(x, 30)} (id {_short(ids[k], 20)})" if k < len(ids) else _short(x, 30)
        for k, x in enumerate(examples)
    )
    detail = r.get("message") if not r.get("success") else ""
    observed = r.get("observed_value")
    checked = "-" if r.get("kind") == "schema" else f"{int(r.get('element_count') or 0):,}"
    if r.get("kind") == "schema":
        unexpected_text = f"{unexpected} batch(es)" if unexpected else "0"
    else:
        unexpected_text = f"{unexpected:,}" + (f" ({pct:.2f}%)" if unexpected and pct else "")
    return (
        f'<tr class="{cls}"><td>{e(r.get("index"))}</td>'
        f"<td><code>{e(r.get('label'))}</code>"
        + (f'<div class="msg">{e(detail)}</div>' if detail else "")
        + f"</td><td>{e(r.get('kind'))}</td><td>{e(r.get('how'))}</td>"
        f'<td><span class="badge {cls}">{e(state)}</span></td>'
        f"<td>{e(checked)}</td><td>{e(unexpected_text)}</td>"
        f"<td>{e(_short(observed) if observed is not None else '')}</td>"
        f'<td class="ex">{e(shown)}</td></tr>'
    )


def _short(value: Any, limit: int = 60) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, list):
        text = (
            "["
            + ", ".join(_short(v, 20) for v in value[:8])
            + (", ..." if len(value) > 8 else "")
            + "]"
        )
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reasons_table(reasons: Mapping[str, int]) -> str:
    total = sum(reasons.values()) or 1
    top = max(reasons.values()) or 1
    rows = [
        '<table class="reasons"><thead><tr><th>Reason</th>'
        "<th>Rows (share of quarantined)</th><th></th></tr></thead>"
    ]
    for reason, count in list(reasons.items())[:50]:
        width = max(1, round(200 * count / top))
        rows.append(
            f"<tr><td><code>{_esc(reason)}</code></td><td>{count:,} ({count / total:.1%})</td>"
            f'<td><svg width="{width}" height="12" role="img" aria-label="{count}">'
            f'<rect width="{width}" height="12" fill="#d9822b"/></svg></td></tr>'
        )
    if len(reasons) > 50:
        rows.append(f"<tr><td colspan=3>... and {len(reasons) - 50} more</td></tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _histogram_svg(edges: Sequence[float], counts: Sequence[int]) -> str:
    """Inline SVG bar chart of the score histogram (no JS, no external fonts)."""
    width, height, pad_l, pad_b, pad_t = 640, 240, 60, 30, 10
    plot_w, plot_h = width - pad_l - 10, height - pad_b - pad_t
    top = max(counts) if counts else 0
    n = len(counts)
    bar_w = plot_w / n if n else plot_w
    out = [
        f'<svg class="hist" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'role="img" aria-label="score histogram" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{pad_l + plot_w}" y2="{pad_t + plot_h}" '
        'stroke="#555"/>',
    ]
    for k in range(5):  # y gridlines and labels
        frac = k / 4
        y = pad_t + plot_h - frac * plot_h
        label = f"{top * frac:,.0f}"
        out.append(
            f'<line x1="{pad_l}" y1="{y:.1f}" x2="{pad_l + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{pad_l - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{label}</text>'
        )
    for i, c in enumerate(counts):
        h = 0 if not top else plot_h * c / top
        x = pad_l + i * bar_w
        lo, hi = (edges[i], edges[i + 1]) if len(edges) > i + 1 else (i, i + 1)
        out.append(
            f'<rect x="{x + 1:.1f}" y="{pad_t + plot_h - h:.1f}" width="{max(bar_w - 2, 1):.1f}" '
            f'height="{h:.1f}" fill="#3572b0"><title>{_esc(f"{lo:g}-{hi:g}: {c:,}")}</title></rect>'
        )
    for i in range(0, n + 1, max(1, n // 5)):
        x = pad_l + i * bar_w
        value = edges[i] if i < len(edges) else i
        text = f"{value:g}" if isinstance(value, int | float) and math.isfinite(value) else value
        out.append(
            f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" font-size="11">'
            f"{_esc(text)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1200px;color:#222;padding:0 16px}
header{display:flex;align-items:center;gap:16px}h1{font-size:22px;margin:0}
h2{font-size:17px;margin:28px 0 8px}code{font:12px ui-monospace,Menlo,Consolas,monospace}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;font-size:12px;font-weight:600;
text-transform:uppercase;color:#fff;background:#777}
.badge.ok{background:#2e7d32}.badge.bad{background:#c62828}.badge.warn{background:#d9822b}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-top:16px}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 16px;min-width:150px}
.card .label{color:#666;font-size:12px}.card .value{font-size:22px;font-weight:600}
.card .sub{color:#666;font-size:12px;min-height:1em}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #eee;padding:4px 8px;
text-align:left;vertical-align:top}thead th{background:#f6f6f6}
table.kv{width:auto}table.kv th{font-weight:500;color:#555}
table.exp{font-size:13px}td.ex{max-width:320px;word-break:break-word}
td:nth-child(4){white-space:nowrap}details{margin-top:8px}summary{cursor:pointer;color:#3572b0}
tr.bad td{background:#fdecea}tr.warn td{background:#fff4e5}
.msg{color:#8a1c1c;font-size:12px;margin-top:2px}
.failures{border-left:4px solid #c62828;background:#fdecea;padding:4px 16px}
.warnings{border-left:4px solid #d9822b;background:#fff4e5;padding:4px 16px}
.howto{color:#555;font-size:13px;border-top:1px solid #ddd;margin-top:32px}
"""

_HOWTO = """<section class="howto"><h2>How to read this report</h2>
<p><b>gx-per-batch</b> expectations (schema and row-level) are run by Great Expectations on
every batch; row-level failures are <i>quarantined</i> (the row is not scored, it is published
with its reasons) and only fail the run when the quarantined share passes the limit.
<b>exact-merged</b> expectations (row count, ID uniqueness, column statistics) are computed once
over the whole input; column statistics cover the rows that were scored. A run fails on any
schema or aggregate failure, on an empty input, and when fewer expectations were evaluated than
the suite holds. See <code>validation/README.md</code>.</p></section>"""
