"""The report's drift section: the run's drift status, the features by drift, charts, segments.

It renders the `monitoring` block exactly as `pipelines.monitoring` wrote it (a plain dict), so
the page and the JSON report cannot disagree. Features are listed in the order given (most
drifted first: the monitoring decides what "most" means). Every value from data is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.reports.charts import esc
from pipelines.reports.drift_charts import histogram_svg

TOP_CHARTS = 6  # features drawn as histograms: the most drifted ones
TOP_UNSEEN = 20  # unseen categories listed per feature
BASELINE_HOWTO = "batchscore baseline --data TRAIN --model MODEL"
_METRICS = (  # (key, column title, what it means: the column's tooltip)
    ("psi", "PSI", "population stability index: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major"),
    ("js", "JS", "Jensen-Shannon distance (0 = same distribution, 1 = disjoint)"),
    ("wasserstein", "Wasserstein", "earth mover's distance in baseline standard deviations"),
    ("ks", "KS", "largest gap between the two cumulative distributions (over the baseline bins)"),
    ("linf", "L-inf", "largest change in one category's share"),
    ("unseen_share", "Unseen", "share of rows with a category the baseline never saw"),
    ("p_value", "p-value", "the test's p-value, before the correction across features"),
)


def drift_section(monitoring: Mapping[str, Any] | None) -> list[str]:
    """The section's HTML parts; none when the run had no monitoring (off, or an older run)."""
    if monitoring is None:
        return []
    status = str(monitoring.get("status") or "unknown")
    head = f'<section class="drift"><h2>Drift against the baseline {badge(status)}</h2>'
    if status == "no_baseline":
        message = monitoring.get("message") or "this run had no baseline to compare with"
        return [
            head,
            f"<p>No drift check: {esc(message)}. Make a baseline from the model's training data "
            f"with <code>{esc(BASELINE_HOWTO)}</code>; runs find it beside the model.</p>",
            "</section>",
        ]
    features = [f for f in monitoring.get("features") or [] if isinstance(f, Mapping)]
    score = monitoring.get("score") if isinstance(monitoring.get("score"), Mapping) else None
    parts = [head, _summary(monitoring, features)]
    parts += _feature_table(features, score)
    parts += _charts(features[:TOP_CHARTS], score)
    parts += _unseen(features)
    parts += _segments([s for s in monitoring.get("segments") or [] if isinstance(s, Mapping)])
    parts.append("</section>")
    return parts


def badge(status: str) -> str:
    """A status badge: ok green, warn orange, fail red, anything else grey."""
    cls = {"ok": "ok", "warn": "warn", "fail": "bad"}.get(status, "")
    return f'<span class="badge {cls}">{esc(status.replace("_", " "))}</span>'


def _summary(monitoring: Mapping[str, Any], features: list[Mapping[str, Any]]) -> str:
    """What was compared with what, and the decision in one paragraph."""
    baseline = monitoring.get("baseline") or {}
    decision = monitoring.get("decision") or {}
    flagged = [str(f) for f in decision.get("flagged") or []]
    sha = str(baseline.get("sha256") or "?")
    where = f" (<code>{esc(baseline['path'])}</code>)" if baseline.get("path") else ""
    rule = f"Rule: <code>{esc(decision.get('rule'))}</code>" if decision.get("rule") else ""
    alpha = decision.get("alpha")
    if isinstance(alpha, int | float):
        rule += f", alpha {alpha:g}"
    extra = [
        f"{esc(k)} {esc(_num(v))}"
        for k, v in decision.items()
        if k not in ("rule", "flagged", "alpha") and isinstance(v, int | float | str)
    ]
    flagged_text = ", ".join(f"<code>{esc(f)}</code>" for f in flagged) or "none"
    return (
        f'<p class="drift-summary">{_int(monitoring.get("rows"))} rows of this run against the '
        f'baseline <code title="{esc(sha)}">{esc(sha[:12])}</code> of '
        f"{_int(baseline.get('rows'))} rows{where}; {len(features)} feature(s) compared. "
        f"Flagged: {flagged_text}. {rule}{'; ' if extra and rule else ''}{'; '.join(extra)}</p>"
    )


def _feature_table(features: list[Mapping[str, Any]], score: Mapping[str, Any] | None) -> list[str]:
    """One row per feature (most drifted first), then the score, with every metric it has."""
    if not features and score is None:
        return ["<p>No feature was compared.</p>"]
    head = "".join(f'<th title="{esc(tip)}">{esc(title)}</th>' for _, title, tip in _METRICS)
    rows = [_feature_row(f) for f in features]
    if score is not None:
        rows.append(
            _feature_row({**score, "kind": "model score", "name": score.get("name", "score")})
        )
    return [
        '<div class="scroll"><table class="drift exp"><thead><tr><th>Feature</th><th>Kind</th>'
        "<th>Status</th>"
        f'{head}<th title="missing rate now vs the baseline\'s">Missing</th></tr></thead><tbody>',
        *rows,
        "</tbody></table></div>",
    ]


def _feature_row(f: Mapping[str, Any]) -> str:
    status = str(f.get("status") or "?")
    cls = {"warn": "warn", "fail": "bad"}.get(status, "")
    cells = "".join(f'<td class="num">{esc(_num(f.get(key)))}</td>' for key, _, _ in _METRICS)
    missing = f"{_pct(f.get('missing_rate'))} vs {_pct(f.get('baseline_missing_rate'))}"
    delta = f.get("missing_delta")
    if isinstance(delta, int | float) and delta:
        missing += f" ({delta * 100:+.2f} pp)"
    return (
        f'<tr class="{cls}"><td><code>{esc(f.get("name"))}</code></td><td>{esc(f.get("kind"))}</td>'
        f"<td>{badge(status)}</td>{cells}<td>{esc(missing)}</td></tr>"
    )


def _charts(features: Sequence[Mapping[str, Any]], score: Mapping[str, Any] | None) -> list[str]:
    """Baseline vs this run for the most drifted features and for the score, as inline SVG."""
    drawn = [f for f in [*features, *([score] if score else [])] if f.get("histogram")]
    if not drawn:
        return []
    parts = ['<h3>Baseline vs this run</h3><div class="drift-charts">']
    for f in drawn:
        name = str(f.get("name") or "?")
        psi = f.get("psi")
        title = f"{name}: {f.get('status', '?')}" + (
            f", PSI {psi:.3f}" if isinstance(psi, int | float) else ""
        )
        alt = f"{name}: share of rows per bin, baseline vs this run"
        try:
            svg = histogram_svg(f["histogram"], title=title, xlabel=_xlabel(f), label=alt)
        except ValueError as exc:
            parts.append(f"<p>(No chart for <code>{esc(name)}</code>: {esc(exc)}.)</p>")
            continue
        parts.append(f'<figure data-feature="{esc(name)}">{svg}</figure>')
    parts.append("</div>")
    return parts


def _xlabel(f: Mapping[str, Any]) -> str:
    name = str(f.get("name") or "?")
    if (f.get("histogram") or {}).get("categories") is not None:
        return f"{name} (category)"
    return f"{name} (bins of the baseline)"


def _unseen(features: list[Mapping[str, Any]]) -> list[str]:
    """Categories this run has and the baseline never saw, most rows first."""
    found = [(f, f.get("unseen")) for f in features if isinstance(f.get("unseen"), Mapping)]
    found = [(f, u) for f, u in found if u]
    if not found:
        return []
    parts = [
        "<h3>Unseen categories</h3>",
        '<table class="kv unseen"><thead><tr><th>Feature</th>'
        "<th>Category</th><th>Rows</th></tr></thead><tbody>",
    ]
    for f, unseen in found:
        ranked = sorted(unseen.items(), key=lambda kv: (-_count(kv[1]), str(kv[0])))
        for value, count in ranked[:TOP_UNSEEN]:
            parts.append(
                f"<tr><td><code>{esc(f.get('name'))}</code></td><td><code>{esc(value)}</code></td>"
                f'<td class="num">{_count(count):,}</td></tr>'
            )
        if len(ranked) > TOP_UNSEEN:
            more = sum(_count(c) for _, c in ranked[TOP_UNSEEN:])
            parts.append(
                f"<tr><td><code>{esc(f.get('name'))}</code></td><td>... {len(ranked) - TOP_UNSEEN}"
                f' more</td><td class="num">{more:,}</td></tr>'
            )
    parts.append("</tbody></table>")
    return parts


def _segments(segments: list[Mapping[str, Any]]) -> list[str]:
    """Per segment column: the positive-rate ratio (highest/lowest) and flag, then each value."""
    if not segments:
        return []
    parts = ["<h3>Segments</h3>"]
    for s in segments:
        status = str(s.get("status") or "?")
        parts.append(
            f"<p><code>{esc(s.get('column'))}</code> {badge(status)} positive-rate ratio "
            f"(highest / lowest) {esc(_num(s.get('ratio')))}, flagged above "
            f"{esc(_num(s.get('threshold')))}</p>"
        )
        parts.append(
            '<table class="kv segments"><thead><tr><th>Value</th><th>Rows</th><th>Share</th>'
            "<th>Baseline share</th><th>Score mean</th><th>Baseline score mean</th>"
            "<th>Positive rate</th><th>Baseline positive rate</th></tr></thead><tbody>"
        )
        for v in [v for v in s.get("values") or [] if isinstance(v, Mapping)]:
            cells = [_int(v.get("rows")), _pct(v.get("share")), _pct(v.get("baseline_share"))]
            cells += [_num(v.get("score_mean")), _num(v.get("baseline_score_mean"))]
            cells += [_pct(v.get("positive_rate")), _pct(v.get("baseline_positive_rate"))]
            tds = "".join(f'<td class="num">{esc(c)}</td>' for c in cells)
            parts.append(f"<tr><td><code>{esc(v.get('value'))}</code></td>{tds}</tr>")
        parts.append("</tbody></table>")
    return parts


def _num(value: Any) -> str:
    """A metric as text: 4 significant digits, "-" when there is none."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _pct(value: Any) -> str:
    return f"{value:.2%}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _int(value: Any) -> str:
    return (
        f"{int(value):,}" if isinstance(value, int | float) and not isinstance(value, bool) else "?"
    )


def _count(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
