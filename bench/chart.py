"""chart.png: per model, batchscore's share of the ceiling (in-loop and whole process) and peak
RSS, against input size; the bar's targets drawn where the issue sets them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.bar import OF_CEILING, ONE_W, cell, label, sized, summary_rows

RSS_VARIANTS = ("batchscore-1w", "batchscore-1w-challenger", "batchscore-2w", "naive")
STYLES = {"batchscore-1w": "C0-o", "batchscore-1w-challenger": "C2-^", "batchscore-2w": "C1-s",
          "naive": "C3--x"}  # fmt: skip


def render_chart(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models, sizes = doc["config"]["models"], sized(doc)
    fig, axes = plt.subplots(
        2, len(models), figsize=(max(8.0, 6.5 * len(models)), 8.5), squeeze=False
    )
    summary = summary_rows(doc)
    xs = list(range(len(sizes)))  # sizes as even steps: 1M, 2M, 5M, 10M all readable
    for col, model in enumerate(models):
        top, bottom = axes[0][col], axes[1][col]
        mine = {s["rows"]: s for s in summary if s["model"] == model}
        for key, style, name in (("inloop_of_ceiling", "C0-o", "in-loop"),
                                 ("process_of_ceiling", "C1-s", "whole process")):  # fmt: skip
            ys = [100 * mine[r][key] if mine.get(r) and mine[r][key] else None for r in sizes]
            top.plot(xs, [y if y is not None else float("nan") for y in ys], style, label=name)
            for x, y in zip(xs, ys, strict=True):
                if y is not None:
                    top.annotate(f"{y:.0f}%", (x, y), textcoords="offset points", xytext=(0, 6),
                                 ha="center", fontsize=8)  # fmt: skip
        for (m, rows), need in OF_CEILING.items():
            if m == model and rows in sizes:
                x = sizes.index(rows)
                top.plot([x - 0.3, x + 0.3], [100 * need] * 2, "k-", lw=2)
                top.annotate(f"bar {need:.0%}", (x + 0.32, 100 * need), fontsize=7, va="center")
        top.axhline(100, color="grey", ls=":", lw=1)
        top.set_title(f"{model}: batchscore 1 worker, % of the ceiling")
        top.set_ylabel("% of ceiling (higher is better)")
        top.set_ylim(0, 110)
        for variant in RSS_VARIANTS:
            pts = [cell(doc["results"], model, r, variant) for r in sizes]
            if any(pts):
                ys = [p["peak_rss_mb"] if p else float("nan") for p in pts]
                bottom.plot(xs, ys, STYLES[variant], label=variant)
        bottom.set_title(f"{model}: peak RSS (process tree)")
        bottom.set_ylabel("MB (lower is better)")
        bottom.set_ylim(bottom=0)
        for ax in (top, bottom):
            ax.set_xticks(xs, [label(r) for r in sizes])
            ax.set_xlabel("input rows")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, loc="lower right" if ax is top else "upper left")
    m = doc["machine"]
    quick = " (--quick smoke run)" if doc.get("quick") else ""
    fig.suptitle(
        f"batchscore vs the ceiling ({ONE_W}, gate and drift on){quick}\n"
        f"{m['cpu']}, {m['logical_cores']} cores, git {m.get('git_rev')}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
