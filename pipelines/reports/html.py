"""The report as one self-contained HTML page (inline CSS, SVG and PNG `data:` images, no scripts).

It opens the same from S3, a laptop or an email attachment, and cannot leak a reader's IP to a CDN.
Every value that comes from data is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.reports.build import bin_edges, reason_rows
from pipelines.reports.charts import esc, histogram_svg
from pipelines.reports.drift import drift_section
from pipelines.reports.models import challenger_section, performance_section
from pipelines.reports.style import CSS, HOWTO, RUN_HELP, TIMINGS, TIMINGS_NOTE


def render_html(report: Mapping[str, Any]) -> str:
    """One self-contained HTML page: summary, failures, charts, drift, per-expectation tables."""
    verdicts = [
        ("Input", report.get("input_verdict")),
        ("Output", report.get("output_verdict")),
    ]
    parts = _summary(report)
    parts += _notes(verdicts)
    hist = report.get("score_histogram") or {}
    if hist.get("counts"):
        parts += _histogram(hist.get("bin_edges") or bin_edges(len(hist["counts"])), hist["counts"])
    parts += drift_section(report.get("monitoring"))
    parts += performance_section(report.get("estimated_performance"))
    parts += challenger_section(report.get("challenger"))
    parts += _reasons(report)
    parts += [_verdict_section(name, verdict) for name, verdict in verdicts if verdict]
    parts += _timings(report.get("timings") or {})
    parts += [HOWTO, "</body></html>"]
    return "\n".join(parts)


def _summary(report: Mapping[str, Any]) -> list[str]:
    """The page head, the count cards and the run's identity."""
    e = esc
    status = str(report.get("status", "unknown"))
    rows_in = int(report.get("rows_in", 0))
    q = int(report.get("rows_quarantined", 0))
    title = f"Quality report: {report.get('model_name', '?')} / {report.get('run_key', '?')}"
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>{e(title)}</h1>",
        f'<span class="badge {_cls(status)}">{e(status)}</span></header>',
        '<section class="cards">',
        _card("Rows in", f"{rows_in:,}"),
        _card("Scored", f"{int(report.get('rows_scored', 0)):,}"),
        _card("Quarantined", f"{q:,}", f"{q / rows_in:.2%}" if rows_in else "-"),
        _card("Model", str(report.get("model_name", "?")), str(report.get("model_version", ""))),
        "</section>",
        '<section><h2>Run</h2><table class="kv">',
        *(_kv(label, value, RUN_HELP.get(label, "")) for label, value in run_facts(report)),
        "</table></section>",
    ]


_INPUT_FACTS = {"sha256": "Input sha256", "git_rev": "Git revision", "dvc_md5": "DVC md5"}


def run_facts(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The run table's (label, value) rows, in reading order; facts without a value are left out."""
    version = dict(report.get("input_version") or {})
    scores = report.get("scores") or {}
    model = " ".join(str(report.get(k) or "") for k in ("model_name", "model_version"))
    rate = report.get("rows_per_s")
    facts: list[tuple[str, Any]] = [
        ("Run key", report.get("run_key")),
        ("Input file", report.get("input_path")),
        *((label, version.pop(key, None)) for key, label in _INPUT_FACTS.items()),
        *((f"Input {key}", value) for key, value in version.items()),
        ("Model", model.strip()),
        ("Score means", _score_means(scores)),
        ("Classes", ", ".join(map(str, scores.get("classes") or []))),
        ("Rate", f"{float(rate):,.0f} rows/s" if isinstance(rate, int | float) else None),
        ("Attempt", report.get("attempt_id")),
        ("Generated", report.get("generated_at")),
    ]
    return [(label, str(value)) for label, value in facts if value is not None and value != ""]


def _score_means(scores: Mapping[str, Any]) -> str:
    """What the `score` column is, in words: P(1) is the probability of class "1"."""
    score_is = scores.get("score_is")
    if not score_is:
        return ""
    if scores.get("kind") == "binary" and scores.get("positive_class") is not None:
        return f'{score_is}: probability of class "{scores["positive_class"]}"'
    if score_is == "P(predicted_class)":
        return f"{score_is}: probability of the predicted class"
    return str(score_is)


def _histogram(edges: Sequence[float], counts: Sequence[int]) -> list[str]:
    """The score histogram (hand-drawn SVG), and its exact counts per bin folded below."""
    chart = histogram_svg(edges, counts)
    rows = "".join(
        f"<tr><td>{edges[i]:g} - {edges[i + 1]:g}</td><td>{int(c):,}</td></tr>"
        for i, c in enumerate(counts)
        if i + 1 < len(edges)
    )
    return [
        "<section><h2>Score distribution</h2>",
        f'<div class="chart">{chart}</div>',
        "<details><summary>Rows per score bin</summary>",
        f'<table class="kv"><thead><tr><th>score</th><th>rows</th></tr></thead>{rows}</table>',
        "</details></section>",
    ]


def _notes(verdicts: list[tuple[str, Any]]) -> list[str]:
    """Why the gate failed, and the warnings, above everything else."""
    e = esc
    parts: list[str] = []
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
    return parts


def _cls(status: str) -> str:
    return {"passed": "ok", "published": "ok", "success": "ok"}.get(status.lower(), "bad")


def _card(label: str, value: str, sub: str = "") -> str:
    return (
        f'<div class="card"><div class="label">{esc(label)}</div>'
        f'<div class="value">{esc(value)}</div><div class="sub">{esc(sub)}</div></div>'
    )


def _kv(key: Any, value: Any, help_text: str = "") -> str:
    title = f' title="{esc(help_text)}"' if help_text else ""
    return f"<tr><th{title}>{esc(key)}</th><td>{esc(value)}</td></tr>"


def _verdict_section(name: str, v: Mapping[str, Any]) -> str:
    """Summary line, then the expectations that need attention, then the passing ones folded."""
    e = esc
    ok = bool(v.get("success"))
    head = (
        f"<section><h2>{e(name)} suite <code>{e(v.get('suite_name'))}</code> "
        f'<span class="badge {"ok" if ok else "bad"}">{"passed" if ok else "failed"}</span></h2>'
        f"<p>{e(v.get('evaluated_expectations'))} of {e(v.get('suite_size'))} expectations "
        f"evaluated over {int(v.get('rows_in', 0)):,} rows in {e(v.get('batches'))} batch(es); "
        f"{int(v.get('rows_quarantined', 0)):,} quarantined "
        f"({float(v.get('quarantine_fraction', 0)):.2%}, limit "
        f"{float(v.get('max_quarantine_fraction', 0)):.2%}). Suite file: "
        f"<code>{e(v.get('suite_source'))}</code></p>" + _engine_line(v)
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


def _engine_line(v: Mapping[str, Any]) -> str:
    """Which validation engine ran and what GX's audit of it checked (validation.engine)."""
    audit = v.get("audit") or {}
    if audit.get("summary"):
        return f"<p>Engine: {esc(audit['summary'])}.</p>"
    return f"<p>Engine: {esc(v.get('engine') or 'gx')} (GX on every batch).</p>"


_EXP_HEAD = (
    '<table class="exp"><thead><tr><th>#</th><th>Expectation</th><th>Kind</th>'
    "<th>How</th><th>Result</th><th>Rows checked</th><th>Unexpected</th><th>Observed</th>"
    "<th>Examples of failing values</th></tr></thead><tbody>"
)


def _expectation_row(r: Mapping[str, Any]) -> str:
    e = esc
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


def _reasons(report: Mapping[str, Any]) -> list[str]:
    """Rows per quarantine reason; a row with several reasons counts once under each."""
    reasons = reason_rows(report.get("quarantine_reasons") or {})
    quarantined = int(report.get("rows_quarantined") or 0)
    parts = ["<section><h2>Quarantine reasons</h2>"]
    if reasons:
        parts.append(_reasons_table(reasons, max(quarantined, *reasons.values()) or 1))
        parts.append(
            '<p class="note">A row is counted once for each reason it has, so a row with several '
            "reasons is counted under each of them and the shares can add up to more than 100%."
            "</p>"
        )
    elif quarantined:
        parts.append(f"<p>{quarantined:,} row(s) quarantined; no reason was recorded.</p>")
    else:
        parts.append("<p>No row was quarantined.</p>")
    parts.append("</section>")
    return parts


def _reasons_table(reasons: Mapping[str, int], quarantined: int) -> str:
    top = max(reasons.values()) or 1
    rows = [
        '<table class="reasons"><thead><tr><th>Reason</th><th>Rows</th>'
        "<th>Share of quarantined rows</th><th></th></tr></thead>"
    ]
    for reason, count in list(reasons.items())[:50]:
        width = max(1, round(200 * count / top))
        rows.append(
            f"<tr><td><code>{esc(reason)}</code></td><td>{count:,}</td>"
            f"<td>{count / quarantined:.1%}</td>"
            f'<td><svg width="{width}" height="12" role="img" aria-label="{count}">'
            f'<rect width="{width}" height="12" fill="#d9822b"/></svg></td></tr>'
        )
    if len(reasons) > 50:
        rows.append(f"<tr><td colspan=4>... and {len(reasons) - 50} more</td></tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _timings(timings: Mapping[str, Any]) -> list[str]:
    """The timings in the run's order, each with what it measures (also as a tooltip)."""
    if not timings:
        return []
    order = list(TIMINGS)
    keys = sorted(timings, key=lambda k: (order.index(k) if k in order else len(order), k))
    parts = [
        '<section><h2>Timings</h2><table class="kv timings"><thead><tr><th>Step</th>'
        "<th>Seconds</th><th>What it measures</th></tr></thead>"
    ]
    for key in keys:
        meaning = TIMINGS.get(key, "")
        parts.append(
            f'<tr title="{esc(meaning)}"><th>{esc(key)}</th>'
            f'<td class="num">{float(timings[key]):.3f} s</td><td>{esc(meaning)}</td></tr>'
        )
    parts += ["</table>", TIMINGS_NOTE, "</section>"]
    return parts
