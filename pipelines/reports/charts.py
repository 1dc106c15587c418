"""Charts drawn by matplotlib as inline SVG (no JS, no external fonts or files).

matplotlib is imported only when a chart is drawn, so importing the reports stays cheap. No
pyplot: a bare `Figure` on the Agg canvas never touches a GUI backend or global figure state.
The SVG is deterministic: no date in its metadata, element ids salted with a fixed string.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

BAR = "#3572b0"
_RC = {
    "svg.fonttype": "none",  # text stays text: smaller, and drawn in the page's own font
    "svg.hashsalt": "batchscore-report",  # stable element ids, so the same data gives same bytes
    "font.size": 9,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # ships with matplotlib: exact metrics, no font lookup
    "axes.edgecolor": "#555",
    "axes.labelcolor": "#333",
    "xtick.color": "#333",
    "ytick.color": "#333",
}
_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}


def esc(value: Any) -> str:
    """HTML-escaped text of any value (None is empty): every value from data goes through it."""
    return html.escape("" if value is None else str(value), quote=True)


def histogram_svg(edges: Sequence[float], counts: Sequence[int]) -> str:
    """The score histogram as inline SVG: bars over the bin edges, round ticks, axis titles."""
    from matplotlib.ticker import MaxNLocator, MultipleLocator, StrMethodFormatter

    lo, hi = float(edges[0]), float(edges[-1])
    with _figure(6.4, 2.6) as (fig, ax):
        ax.stairs([int(c) for c in counts], [float(e) for e in edges], fill=True, color=BAR)
        ax.set_xlim(lo, hi)
        ax.set_ylim(0, max(1, *counts) * 1.05)
        if hi - lo == 1:
            ax.xaxis.set_major_locator(MultipleLocator(0.1))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 5, 10], integer=True))
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
        ax.set_xlabel("score")
        ax.set_ylabel("rows")
        ax.grid(axis="y", color="#e6e6e6", linewidth=0.8)
        return _svg(fig, "score histogram: rows per score bin")


@contextmanager
def _figure(width: float, height: float) -> Iterator[tuple[Any, Any]]:
    """A Figure with one axes on the Agg canvas, inside the report's rc settings (also saving)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height), dpi=100, layout="tight")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_axisbelow(True)
        yield fig, ax


def _svg(fig: Any, label: str) -> str:
    """The figure as an `<svg>` element to inline: no XML prolog, no metadata, no global CSS."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata=_METADATA)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)
    # matplotlib's <style> would apply to the whole page once inlined; it only sets line joins
    text = re.sub(r"\s*<style[^>]*>.*?</style>", "", text, flags=re.S)
    return text.replace("<svg ", f'<svg class="chart" role="img" aria-label="{esc(label)}" ', 1)
