"""`labels/evaluation.html`: a run's realized performance as one page a person reads.

Realized metrics beside the estimate made at scoring time (when the manifest has one), label
coverage, what each delivery brought and what was left out, and the reliability curve as a PNG
drawn with matplotlib (Agg, imported only here) and embedded in the page.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#1d2430}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}
table{border-collapse:collapse;margin:.4rem 0}
td,th{padding:.25rem .7rem;border-bottom:1px solid #e3e6ea;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#69727d}
"""
ROWS = (
    ("roc_auc", "ROC AUC"),
    ("pr_auc", "PR AUC (average precision)"),
    ("log_loss", "log loss"),
    ("brier", "Brier score"),
    ("accuracy", "accuracy (at the model's predicted class)"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("ece", "expected calibration error"),
)


def reliability_png(reliability: dict[str, Any], challenger: dict[str, Any] | None = None) -> bytes:
    """The reliability curve (fraction positive against mean predicted, per bin) as a PNG; with
    a challenger's, both curves on one plot, so their calibration is compared at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=100)
    ax.plot([0, 1], [0, 1], linestyle="--", color="#9aa3ad", label="perfectly calibrated")
    curves = [(reliability, "this run" if challenger is None else "champion", "#2b6cb0")]
    if challenger is not None:
        curves.append((challenger, "challenger", "#c05621"))
    for curve, label, color in curves:
        points = [
            (m, f)
            for m, f in zip(curve["mean_predicted"], curve["fraction_positive"], strict=True)
            if m is not None
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", color=color, label=label)
    ax.set(
        xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted probability", ylabel="fraction positive"
    )
    ax.set_title(f"Reliability ({reliability['bins']} equal-width bins)")
    ax.legend(loc="upper left", fontsize=8)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def evaluation_html(ev: dict[str, Any]) -> str:
    """The page for one run's evaluation (see `evaluate.evaluate_run` for its fields)."""
    e = html.escape
    m, est = ev["metrics"], ev.get("estimated") or {}
    title = f"Realized performance of run {e(ev['run'])}"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>",
        f"<style>{STYLE}</style></head><body><h1>{title}</h1>",
        f"<p>{ev['labelled']:,} of {ev['rows_scored']:,} scored rows labelled "
        f"(coverage {_pct(ev['coverage'])}), from {len(ev['deliveries'])} delivery(ies); "
        f"{ev['conflicting_ids']:,} ID(s) with conflicting labels left out.</p>",
        _metrics_table(ev),
    ]
    if est:
        method, assumption = e(str(est.get("method"))), e(str(est.get("assumption")))
        parts.append(f"<p class=muted>Estimated at scoring time: {method}; {assumption}.</p>")
    if m.get("note"):
        parts.append(f"<p class=muted>{e(m['note'])}</p>")
    if "reliability" in m and m["rows"]:
        other = (ev.get("challenger") or {}).get("metrics") or {}
        curve = other.get("reliability") if other.get("rows") else None
        png = base64.b64encode(reliability_png(m["reliability"], curve)).decode()
        img = f"<img alt='reliability curve' src='data:image/png;base64,{png}'>"
        parts.append(f"<h2>Calibration</h2>{img}")
    parts += [_deliveries(ev), _segments(ev), "</body></html>"]
    return "\n".join(parts)


def _metrics_table(ev: dict[str, Any]) -> str:
    """Realized metrics beside the estimate; with a challenger, both models side by side in one
    table (champion | challenger | difference), the challenger's on the same labelled rows."""
    m, est, ch = ev["metrics"], ev.get("estimated") or {}, ev.get("challenger")
    estimated = {"roc_auc": est.get("auc"), "accuracy": est.get("accuracy")}
    if ch is None:
        rows = [_row(["metric", "realized", "estimated"], head=True)]
        rows += [
            _row([label, _num(m[key]), _num(estimated.get(key))]) for key, label in ROWS if key in m
        ]
        return "<h2>Metrics</h2><table>" + "\n".join(rows) + "</table>"
    c, model = ch["metrics"], ch.get("model") or {}
    name = html.escape(f"{model.get('name')} {model.get('version')}")
    head = ["metric", "champion", "challenger", "difference (challenger - champion)"]
    rows = [_row([*head, "champion estimated"], head=True)]
    for key, label in ROWS:
        if key in m:
            a, b = m[key], c.get(key)
            diff = None if a is None or b is None else b - a
            cells = [_num(a), _num(b), _signed(diff), _num(estimated.get(key))]
            rows.append(_row([label, *cells]))
    note = (
        f"<p class=muted>Challenger {name}: {ch['rows']:,} of the {ev['labelled']:,} labelled "
        f"rows; {ch['unscored']:,} it could not score are left out of its metrics.</p>"
    )
    return "<h2>Metrics: champion and challenger</h2><table>" + "\n".join(rows) + "</table>" + note


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.4f}"


def _row(cells: list[str], head: bool = False) -> str:
    """One table row; every cell but the first is a number, right-aligned."""
    tag = "th" if head else "td"
    inner = "".join(
        f"<{tag}>{html.escape(str(c))}</{tag}>" if i == 0 or head else f"<td class=n>{c}</td>"
        for i, c in enumerate(cells)
    )
    return f"<tr>{inner}</tr>"


def _deliveries(ev: dict[str, Any]) -> str:
    head = ["file", "received", "joined", "unknown IDs", "duplicates", "outside classes"]
    rows = ["<h2>Deliveries</h2><table>", _row([*head, "no label"], head=True)]
    for d in ev["deliveries"]:
        f, r = d.get("file_counts") or {}, d.get("run_counts") or {}
        source = str((d.get("source") or {}).get("path"))
        counts = [d["rows"], f.get("unknown_id_rows", 0), f.get("duplicate_rows", 0)]
        counts += [r.get("out_of_class_rows", 0), f.get("missing_label_rows", 0)]
        received = html.escape(str(d.get("received_at")))
        rows.append(_row([source, received, *(f"{c:,}" for c in counts)]))
    rows.append("</table>")
    if ev.get("stale_deliveries"):
        n = len(ev["stale_deliveries"])
        rows.append(
            f"<p class=muted>{n} delivery(ies) were joined to an earlier version of this run "
            "(since replaced) and are left out.</p>"
        )
    return "\n".join(rows)


def _segments(ev: dict[str, Any]) -> str:
    if not ev.get("segments"):
        return (
            "<p class=muted>No per-segment metrics: the published scores carry only the ID and "
            "the scores, so segments come from a delivery that carries the segment columns "
            "(monitoring.segments).</p>"
        )
    out = []
    for seg, values in ev["segments"].items():
        head = ["value", "rows", "ROC AUC", "accuracy", "log loss"]
        out.append(f"<h2>By {html.escape(seg)}</h2><table>" + _row(head, head=True))
        for value, m in values.items():
            cells = [_num(m.get(k)) for k in ("roc_auc", "accuracy", "log_loss")]
            out.append(_row([value, f"{m['rows']:,}", *cells]))
        out.append("</table>")
    return "\n".join(out)


def _num(value: Any) -> str:
    return "–" if value is None else f"{value:.4f}"


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{value:.2%}"
