"""The report's model sections: performance estimated without labels, and the challenger.

Both read blocks the manifest carries (`estimated_performance`, `challenger`), so the page says
what a machine reading the JSON sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipelines.reports.charts import esc

_COMPARISON = (
    ("agreement", "agreement of predicted classes", "share of rows both models put in one class"),
    ("pearson", "Pearson correlation", "linear correlation of the two scores"),
    ("spearman", "Spearman correlation", "rank correlation: do they order rows alike?"),
    (
        "top_k_overlap",
        "top-k overlap",
        "share of the champion's k highest scores the challenger also ranks in its top k",
    ),  # fmt: skip
    ("psi", "PSI between the score distributions", "< 0.1 stable, 0.1-0.25 moderate, > 0.25 major"),
    ("champion_mean", "champion mean score", ""),
    ("challenger_mean", "challenger mean score", ""),
    ("challenger_unscored", "rows the challenger could not score", "left out of every number"),
)


def performance_section(block: Mapping[str, Any] | None) -> list[str]:
    """Expected AUC and accuracy from the model's probabilities, and what that assumes."""
    if not block:
        return []
    if block.get("auc") is None:
        reason = block.get("reason") or "not estimated"
        return ["<h2>Estimated performance</h2>", f"<p>{esc(reason)}</p>"]
    status = str(block.get("status", "ok"))
    rows = [
        _row("expected ROC AUC", _num(block.get("auc")), ""),
        _row("baseline ROC AUC (held-out)", _num(block.get("baseline_auc")), ""),
        _row("expected accuracy", _num(block.get("accuracy")), "mean of max(p, 1 - p)"),
        _row("method", block.get("method", ""), block.get("assumption", "")),
    ]
    notes = "".join(f"<li>{esc(r)}</li>" for r in block.get("reasons") or [])
    return [
        f'<h2>Estimated performance <span class="badge {esc(_cls(status))}">{esc(status)}</span>'
        "</h2>",
        f"<p>{esc(block.get('assumption', ''))}. Realized metrics come with the labels "
        "(<code>batchscore labels add</code>).</p>",
        f"<table>{''.join(rows)}</table>",
        f"<ul>{notes}</ul>" if notes else "",
    ]


def challenger_section(block: Mapping[str, Any] | None) -> list[str]:
    """The shadow model and how its scores compare with the run's, row by row."""
    if not block:
        return []
    model = block.get("model") or {}
    c = block.get("comparison") or {}
    who = f"{model.get('name', '?')} version {model.get('version', '?')}"
    rows = [_row(label, _num(c.get(key)), why) for key, label, why in _COMPARISON if key in c]
    if "top_k" in c:
        rows.insert(4, _row("k", c["top_k"], "challenger_top_k in params"))
    return [
        f"<h2>Challenger: {esc(who)}</h2>",
        f"<p>Scored in the same pass over the {c.get('rows', 0):,} rows the run scored; its "
        "scores are published under <code>challenger/</code>, never as the run's.</p>",
        f"<table>{''.join(rows)}</table>",
    ]


def _row(key: str, value: Any, why: str) -> str:
    title = f' title="{esc(why)}"' if why else ""
    return f"<tr><th{title}>{esc(key)}</th><td>{esc(value)}</td></tr>"


def _num(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:,}" if isinstance(value, int) else f"{value:.4f}"


def _cls(status: str) -> str:
    return {"ok": "ok", "fail": "bad"}.get(status, "warn")
