"""Drift and history charts drawn by matplotlib as PNG bytes, for inline `data:` URIs.

PNG rather than SVG here: a drift section holds several charts with many bins, and a raster keeps
the page small and renders the same in any mail client. matplotlib is imported only when a chart
is drawn (importing `pipelines.reports` stays cheap). The bytes are deterministic: a bare `Figure`
on the Agg canvas, a fixed size and dpi, the DejaVu font matplotlib ships, and no PNG metadata.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

BASELINE = "#9aa5b1"
CURRENT = "#3572b0"
STATUS_COLOURS = {"ok": "#2e7d32", "warn": "#d9822b", "fail": "#c62828"}
LINE_COLOURS = ["#3572b0", "#d9822b", "#2e7d32", "#8e44ad", "#c62828", "#16a085", "#7f8c8d"]
DPI = 110
SIZE = (6.4, 3.0)  # inches: 704 x 330 px at DPI
MAX_CATEGORIES = 15  # more are pooled as "(other)" so the labels stay readable
MAX_TICKS = 9
_CHAR = 0.62  # a DejaVu Sans character's mean width, in ems (digits are 0.64)
_RC = {
    "font.size": 9,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "axes.edgecolor": "#555",
    "axes.labelcolor": "#333",
    "xtick.color": "#333",
    "ytick.color": "#333",
    "legend.frameon": False,
}


def data_uri(png: bytes) -> str:
    """A PNG as a `data:` URI, so the page stays one self-contained file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def histogram_png(histogram: Mapping[str, Any], *, title: str, xlabel: str) -> bytes:
    """Baseline vs this run, share of rows per bin: steps over the baseline's bins for a numeric
    feature (bins at equal width, labelled by their edges; an open outer edge is -inf/+inf), or
    side-by-side bars per category. Raises ValueError when the shares do not match the bins."""
    base, cur = _shares(histogram, "baseline"), _shares(histogram, "current")
    if len(base) != len(cur) or not base:
        raise ValueError(f"baseline has {len(base)} bins and this run {len(cur)}")
    categories = histogram.get("categories")
    if categories is not None:
        labels, base, cur = _pool([str(c) for c in categories], base, cur)
        return _draw_bars(labels, base, cur, title=title, xlabel=xlabel)
    edges = list(histogram.get("edges") or [])
    if len(edges) != len(base) + 1:
        raise ValueError(f"{len(base)} bins need {len(base) + 1} edges, got {len(edges)}")
    return _draw_steps(
        [_edge_label(e, i == 0) for i, e in enumerate(edges)], base, cur, title, xlabel
    )


def lines_png(
    x_labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    ylabel: str,
    statuses: Sequence[str | None] | None = None,
    percent: bool = False,
    guides: Mapping[str, float] | None = None,
) -> bytes:
    """One line per series over the run keys (a gap where a run has no value). Runs whose drift
    status is warn or fail get an orange or red band, so a person sees which nights flagged;
    `guides` draws labelled dashed lines (e.g. PSI 0.1 and 0.25)."""
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    n = len(x_labels)
    with _figure(tight=True) as (fig, ax):
        for i, status in enumerate(statuses or []):
            if status in ("warn", "fail"):
                ax.axvspan(i - 0.5, i + 0.5, color=STATUS_COLOURS[status], alpha=0.15, lw=0)
        for k, (name, values) in enumerate(series.items()):
            ys = [math.nan if v is None else float(v) for v in values]
            colour = LINE_COLOURS[k % len(LINE_COLOURS)]
            ax.plot(range(n), ys, marker="o", markersize=4, linewidth=1.6, color=colour, label=name)
        for label, y in (guides or {}).items():
            ax.axhline(y, color="#777", linestyle="--", linewidth=0.9)
            ax.annotate(
                label,
                (1, y),
                xycoords=("axes fraction", "data"),
                ha="right",
                va="bottom",
                fontsize=8,
                color="#555",
            )
        step = max(1, math.ceil(n / MAX_TICKS))
        ax.set_xticks(
            range(0, n, step), [str(x) for x in x_labels][::step], rotation=30, ha="right"
        )
        ax.set_xlim(-0.5, n - 0.5)
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
        if percent:
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel("run key")
        ax.set_ylabel(ylabel)
        ax.set_title(title, loc="left", fontsize=10)
        ax.grid(axis="y", color="#e6e6e6", linewidth=0.8)
        handles, _ = ax.get_legend_handles_labels()
        flagged = sorted({s for s in statuses or [] if s in ("warn", "fail")})
        handles += [Patch(color=STATUS_COLOURS[s], alpha=0.3, label=f"drift {s}") for s in flagged]
        if handles:
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
        return _png(fig)


def _draw_steps(
    edge_labels: list[str], base: list[float], cur: list[float], title: str, xlabel: str
) -> bytes:
    """Numeric bins as steps at equal width (quantile bins hold equal baseline shares, so a
    shift shows as steps leaving the flat baseline); ticks name the bin edges."""
    n = len(base)
    with _figure() as (fig, ax):
        ax.stairs(base, range(n + 1), fill=True, color=BASELINE, alpha=0.55, label="baseline")
        ax.stairs(cur, range(n + 1), color=CURRENT, linewidth=2.0, label="this run")
        step = max(1, math.ceil((n + 1) / MAX_TICKS))
        ticks = list(range(0, n + 1, step))
        shown = [edge_labels[i] for i in ticks]
        ax.set_xticks(ticks, shown, rotation=30, ha="right")
        ax.set_xlim(0, n)
        _finish(fig, ax, base + cur, title, xlabel)
        _margins(fig, shown, rotated=True, first_at=0.0)
        return _png(fig)


def _draw_bars(
    labels: list[str], base: list[float], cur: list[float], *, title: str, xlabel: str
) -> bytes:
    """Categories as side-by-side bars: baseline grey, this run blue."""
    n = len(labels)
    shown = [_cut(s, 18) for s in labels]
    with _figure() as (fig, ax):
        ax.bar([i - 0.2 for i in range(n)], base, 0.4, color=BASELINE, label="baseline")
        ax.bar([i + 0.2 for i in range(n)], cur, 0.4, color=CURRENT, label="this run")
        ax.set_xticks(
            range(n), shown, rotation=30 if n > 4 else 0, ha="right" if n > 4 else "center"
        )
        ax.set_xlim(-0.6, n - 0.4)
        _finish(fig, ax, base + cur, title, xlabel)
        _margins(fig, shown, rotated=n > 4, first_at=0.6 / max(n, 1))
        return _png(fig)


def _finish(fig: Any, ax: Any, values: list[float], title: str, xlabel: str) -> None:
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    ax.set_ylim(0, max(0.01, *values) * 1.1)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of rows")
    ax.set_title(title, loc="left", fontsize=10, y=1.0)  # y given: no search for a free spot
    ax.grid(axis="y", color="#e6e6e6", linewidth=0.8)
    ax.legend(loc="lower right", bbox_to_anchor=(1, 1), ncol=2, fontsize=8, borderaxespad=0.2)


def _margins(fig: Any, x_labels: Sequence[str], *, rotated: bool, first_at: float) -> None:
    """Room for the labels around the axes, from their lengths, instead of `layout="tight"`.

    Tight layout measures every text once more before drawing: a third of a histogram's
    drawing time, and the report draws seven of them in every run with drift on. The charts'
    texts are known (percent ticks, edge or category labels, one title and legend row), so a
    character-width estimate places them; `first_at` is where the first x tick sits (axes
    fraction): a long rotated first label may need more room on the left.
    """
    width, height = SIZE[0] * DPI, SIZE[1] * DPI
    em = _RC["font.size"] * DPI / 72  # the tick font's size in pixels
    longest = max((len(t) for t in x_labels), default=1) * _CHAR * em
    drop = 0.5 * longest + 0.87 * em if rotated else em  # rotated 30 degrees, ha="right"
    bottom = (drop + 3.6 * em) / height  # ticks, their labels, the axis label
    left = 8.0 * em / width  # "100.0%" and the axis label
    right = 1 - 0.5 * em / width
    if rotated:  # the first label extends left of its tick by its width x cos 30
        reach = 0.87 * longest - first_at * (right - left) * width
        left = max(left, (reach + 0.5 * em) / width)
    fig.subplots_adjust(left=left, right=right, bottom=min(bottom, 0.5), top=1 - 2.6 * em / height)


@contextmanager
def _figure(tight: bool = False) -> Iterator[tuple[Any, Any]]:
    """A Figure with one axes on the Agg canvas, inside the charts' rc settings (saving too);
    `tight`: laid out by matplotlib (the history lines, whose legend sits right of the axes),
    else the caller places the axes (`_margins`)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=SIZE, dpi=DPI, layout="tight" if tight else None)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_axisbelow(True)
        yield fig, ax


def _png(fig: Any) -> bytes:
    """PNG bytes of one Agg drawing, opaque RGB, no metadata (no "Software", no timestamp).

    Pillow encodes the canvas directly: `savefig` costs two drawings' time (it redraws for its
    own dpi and face colour), and the report draws its charts in every run with drift on.
    """
    from PIL import Image

    fig.canvas.draw()
    rgba = memoryview(fig.canvas.buffer_rgba())
    image = Image.frombuffer("RGBA", (rgba.shape[1], rgba.shape[0]), rgba, "raw", "RGBA", 0, 1)
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="png")
    return buf.getvalue()


def _shares(histogram: Mapping[str, Any], side: str) -> list[float]:
    try:
        return [0.0 if v is None else float(v) for v in histogram.get(side) or []]
    except (TypeError, ValueError):
        raise ValueError(f"the {side} shares are not numbers") from None


def _pool(labels: list[str], base: list[float], cur: list[float]) -> tuple[list[str], ...]:
    """At most MAX_CATEGORIES bars: the biggest (in either run) kept in order, the rest pooled."""
    if len(labels) != len(base):
        raise ValueError(f"{len(labels)} categories but {len(base)} shares")
    if len(labels) <= MAX_CATEGORIES:
        return labels, base, cur
    order = sorted(range(len(labels)), key=lambda i: -max(base[i], cur[i]))
    keep = sorted(order[: MAX_CATEGORIES - 1])
    rest = [i for i in range(len(labels)) if i not in set(keep)]
    return (
        [labels[i] for i in keep] + [f"(other {len(rest)})"],
        [base[i] for i in keep] + [sum(base[i] for i in rest)],
        [cur[i] for i in keep] + [sum(cur[i] for i in rest)],
    )


def _edge_label(edge: Any, first: bool) -> str:
    if edge is None or (isinstance(edge, float) and math.isinf(edge)):
        return "-inf" if first or (edge is not None and edge < 0) else "+inf"
    return f"{float(edge):.4g}"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
