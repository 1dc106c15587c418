"""The history page `batchscore monitor` writes: line plots over run keys, then the table.

It takes the rows of `pipelines.monitoring.history` (plain dicts) and imports nothing of that
package, so the reports stay below monitoring. One self-contained file like the run report:
inline CSS, inline SVG charts drawn without matplotlib, no scripts; every value from data is
escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.reports.charts import esc
from pipelines.reports.drift import badge
from pipelines.reports.drift_charts import lines_svg
from pipelines.reports.style import CSS

TOP_FEATURES = 5  # features drawn in the PSI plot: those that drifted most in any run
PSI_GUIDES = {"0.1 moderate": 0.1, "0.25 major": 0.25}
_TABLE = (  # (column, title, format)
    ("run_key", "Run key", "text"),
    ("model", "Model", "text"),
    ("created_at", "Created", "text"),
    ("rows_in", "Rows in", "int"),
    ("rows_quarantined", "Quarantined", "int"),
    ("quarantine_share", "Quarantined share", "pct"),
    ("score_mean", "Score mean", "num"),
    ("drift_status", "Drift", "badge"),
    ("flagged_features", "Flagged features", "text"),
    ("score_psi", "Score PSI", "num"),
)


def render_history_html(
    rows: Sequence[Mapping[str, Any]], *, source: str = "", features: Sequence[str] = ()
) -> str:
    """The page: what was read, the plots, the table. `features` are the PSI columns' feature
    names, most drifted first (`history.feature_names`); the top ones are plotted."""
    title = "Run history" + (f": {source}" if source else "")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>{esc(title)}</h1></header>",
    ]
    if not rows:
        parts += ["<p>No published run was found.</p>", "</body></html>"]
        return "\n".join(parts)
    keys = sorted({str(r.get("model")) for r in rows})
    parts.append(
        f"<p>{len(rows)} published run(s) of {esc(', '.join(keys))}, from "
        f"{esc(rows[0].get('run_key'))} to {esc(rows[-1].get('run_key'))}. A shaded run key "
        "had drift: orange warn, red fail.</p>"
    )
    parts += _plots(rows, list(features)[:TOP_FEATURES])
    parts += _table(rows, list(features))
    parts.append("</body></html>")
    return "\n".join(parts)


def _plots(rows: Sequence[Mapping[str, Any]], top: list[str]) -> list[str]:
    """Rows, quarantined share, score mean, PSI of the top features; performance if any."""
    x = [_x(r, rows) for r in rows]
    statuses = [r.get("drift_status") for r in rows]
    col = _column(rows)
    charts: list[tuple[str, dict[str, list[Any]], str, dict[str, Any]]] = [
        ("Rows in per run", {"rows in": col("rows_in")}, "rows", {}),
        (
            "Quarantined share",
            {"quarantined": col("quarantine_share")},
            "share of rows",
            {"percent": True},
        ),
        ("Mean score", {"score mean": col("score_mean")}, "score", {}),
    ]
    psi = {name: col(f"psi_{name}") for name in top}
    if any(r.get("score_psi") is not None for r in rows):
        psi["score"] = col("score_psi")
    if psi:
        charts.append(("PSI of the most drifted features", psi, "PSI", {"guides": PSI_GUIDES}))
    perf = {
        k: col(k)
        for k in rows[0]
        if k.startswith(("estimated_", "realized_"))
        and any(isinstance(r.get(k), int | float) for r in rows)
    }
    if perf:
        charts.append(("Estimated and realized performance", perf, "metric", {}))
    parts = ['<section><h2>Over run keys</h2><div class="drift-charts">']
    for title, series, ylabel, extra in charts:
        label = f"{title} over run keys"
        svg = lines_svg(
            x, series, title=title, ylabel=ylabel, label=label, statuses=statuses, **extra
        )
        parts.append(f'<figure data-chart="{esc(title)}">{svg}</figure>')
    parts.append("</div></section>")
    return parts


def _table(rows: Sequence[Mapping[str, Any]], features: list[str]) -> list[str]:
    """Every run, newest last, with its PSI per feature (most drifted features first)."""
    cols = [*_TABLE, *((f"psi_{name}", f"PSI {name}", "num") for name in features)]
    cols += [
        (k, k.replace("_", " "), "num")
        for k in rows[0]
        if k.startswith(("estimated_", "realized_"))
    ]
    head = "".join(f"<th>{esc(title)}</th>" for _, title, _ in cols)
    parts = ['<section><h2>Runs</h2><div class="scroll"><table class="exp history">']
    parts.append(f"<thead><tr>{head}</tr></thead>")
    for r in rows:
        status = str(r.get("drift_status") or "")
        cls = {"warn": "warn", "fail": "bad"}.get(status, "")
        cells = "".join(_cell(r.get(key), fmt) for key, _, fmt in cols)
        parts.append(f'<tr class="{cls}">{cells}</tr>')
    parts.append("</table></div></section>")
    return parts


def _cell(value: Any, fmt: str) -> str:
    if value is None or value == "":
        return "<td>-</td>"
    if fmt == "badge":
        return f"<td>{badge(str(value))}</td>"
    if fmt == "text" or not isinstance(value, int | float) or isinstance(value, bool):
        return f"<td>{esc(value)}</td>"
    text = f"{value:,}" if fmt == "int" else f"{value:.2%}" if fmt == "pct" else f"{value:.4g}"
    return f'<td class="num">{esc(text)}</td>'


def _column(rows: Sequence[Mapping[str, Any]]) -> Any:
    def col(name: str) -> list[Any]:
        return [r.get(name) if isinstance(r.get(name), int | float) else None for r in rows]

    return col


def _x(row: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    """The run key on the x axis; MODEL/KEY when several models share the page."""
    several = len({r.get("model") for r in rows}) > 1
    return f"{row.get('model')}/{row.get('run_key')}" if several else str(row.get("run_key"))
