"""The report's score histogram as hand-built inline SVG (no JS, no external fonts or files).

Plain string building rather than matplotlib: importing matplotlib and its SVG backend cost
~0.5 s on every run, even a tiny one, for one chart of at most a few dozen bars. The output is
deterministic (same data, same bytes) and sized by a viewBox, so the page's CSS scales it.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

BAR = "#3572b0"
GRID = "#e6e6e6"
AXIS = "#555"
INK = "#333"
WIDTH, HEIGHT = 640, 260  # px; close to the 6.4 x 2.6 in figure this chart used to be
FONT_PX = 12  # 9pt at 96 px/in, the size the matplotlib chart's text showed at
CHAR_PX = 7  # a generous average digit width at FONT_PX, to leave room for tick labels
TICK = 3.5  # tick mark length, outside the axes
_TOP, _BOTTOM = 12, 44  # margins: headroom above the plot; x tick labels and title below
_LABEL = "score histogram: rows per score bin"


def esc(value: Any) -> str:
    """HTML-escaped text of any value (None is empty): every value from data goes through it."""
    return html.escape("" if value is None else str(value), quote=True)


def histogram_svg(edges: Sequence[float], counts: Sequence[int]) -> str:
    """The score histogram as inline SVG: bars over the bin edges, round ticks, axis titles.

    Text elements come in reading order (x ticks, "score", y ticks, "rows"), so a test or a
    screen reader walking the markup meets each axis's labels together.
    """
    xs = [float(e) for e in edges]
    ns = [int(c) for c in counts]
    if len(xs) != len(ns) + 1 or not ns:
        raise ValueError(f"{len(xs)} edges for {len(ns)} counts: need one edge more than counts")
    lo, hi = xs[0], xs[-1]
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"histogram edges must be finite and increasing, got {lo} .. {hi}")
    top = max(1, *ns) * 1.05
    x_ticks, y_ticks = _x_ticks(lo, hi), _y_ticks(top)
    y_text = [f"{v:,.0f}" for v in y_ticks]
    x_text = [f"{v:g}" for v in x_ticks]
    left = 2 * FONT_PX + TICK + CHAR_PX * max(len(t) for t in y_text)  # title + labels + tick
    right = max(12, CHAR_PX * len(x_text[-1]) / 2 + 4) if x_text else 12  # last label's half
    box = _Box(left, WIDTH - right, _TOP, HEIGHT - _BOTTOM, lo, hi, top)
    parts = [
        f'<svg class="chart" role="img" aria-label="{esc(_LABEL)}"'
        f' xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="{FONT_PX}">',
        grid(box.x0, box.x1, [box.y(v) for v in y_ticks]),
        *_bars(box, xs, ns),
        *_axes(box, x_ticks, x_text, y_ticks, y_text),
        "</svg>",
    ]
    return "\n".join(parts)


class _Box:
    """The plot area in px and the data range it maps, so every part converts alike."""

    def __init__(
        self, x0: float, x1: float, y0: float, y1: float, lo: float, hi: float, top: float
    ) -> None:
        self.x0, self.x1, self.y0, self.y1 = x0, x1, y0, y1
        self.lo, self.hi, self.top = lo, hi, top

    def x(self, value: float) -> float:
        """The px column of a score."""
        return self.x0 + (value - self.lo) / (self.hi - self.lo) * (self.x1 - self.x0)

    def y(self, value: float) -> float:
        """The px row of a count (0 at the bottom axis)."""
        return self.y1 - value / self.top * (self.y1 - self.y0)


def px(value: float) -> str:
    """A px coordinate, short and stable: two decimals at most, no trailing zeros, no -0."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _x_ticks(lo: float, hi: float, most: int = 10) -> list[float]:
    """Round ticks over [lo, hi]: the smallest 1/2/5 x 10^k step with at most `most` intervals,
    so [0, 1] gets 0, 0.1, ..., 1 and other ranges get values a reader can add in their head."""
    raw = (hi - lo) / most
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    digits = max(0, 1 - math.floor(math.log10(step))) + 6  # rounds away float noise like 0.3…04
    return [round(k * step, digits) + 0.0 for k in range(first, last + 1)]


def _y_ticks(top: float, most: int = 5) -> list[int]:
    """Round integer ticks from 0 to `top`: the smallest 1/2/5 x 10^k step (integers only,
    rows come whole) leaving at most `most` intervals, so there are at most most+1 labels."""
    power = 1
    while True:
        for m in (1, 2, 5):
            step = m * power
            if top / step <= most:
                return list(range(0, int(top // step) * step + 1, step))
        power *= 10


def grid(x0: float, x1: float, rows: Iterable[float]) -> str:
    """Light horizontal lines across the plot at these px rows (the y ticks), drawn first so the
    data covers them: every chart of the report draws its grid here."""
    lines = "".join(f'<line x1="{px(x0)}" x2="{px(x1)}" y1="{px(y)}" y2="{px(y)}"/>' for y in rows)
    return f'<g stroke="{GRID}" stroke-width="0.8">{lines}</g>'


def frame_marks(
    x0: float, y0: float, x1: float, y1: float, cols: Iterable[float], rows: Iterable[float]
) -> list[str]:
    """The tick marks (below the x axis at px `cols`, left of the y axis at px `rows`) and the
    left and bottom axis lines of the plot area (x0, y0)-(x1, y1): shared by every chart."""
    marks = "".join(
        f'<line x1="{px(x)}" x2="{px(x)}" y1="{px(y1)}" y2="{px(y1 + TICK)}"/>' for x in cols
    ) + "".join(
        f'<line x1="{px(x0 - TICK)}" x2="{px(x0)}" y1="{px(y)}" y2="{px(y)}"/>' for y in rows
    )
    return [
        f'<g stroke="{INK}" stroke-width="0.8">{marks}</g>',
        f'<path d="M{px(x0)} {px(y0)}V{px(y1)}H{px(x1)}" fill="none" stroke="{AXIS}"'
        ' stroke-width="0.8"/>',
    ]


def y_labels(x0: float, rows: Iterable[float], texts: Iterable[str]) -> str:
    """The y tick labels, right-aligned left of the marks and centred on their px rows."""
    return "".join(
        f'<text x="{px(x0 - TICK - 3)}" y="{px(y + FONT_PX * 0.35)}">{esc(t)}</text>'
        for y, t in zip(rows, texts, strict=True)
    )


def _bars(box: _Box, edges: Sequence[float], counts: Sequence[int]) -> list[str]:
    """One filled rect per non-empty bin; crisp edges so adjacent bars show no hairline seams."""
    rects = []
    for i, count in enumerate(counts):
        if count <= 0:
            continue
        x, x_end, y = box.x(edges[i]), box.x(edges[i + 1]), box.y(count)
        rects.append(
            f'<rect class="bar" x="{px(x)}" y="{px(y)}" width="{px(x_end - x)}"'
            f' height="{px(box.y1 - y)}"/>'
        )
    return [f'<g fill="{BAR}" shape-rendering="crispEdges">{"".join(rects)}</g>']


def _axes(
    box: _Box,
    x_ticks: Sequence[float],
    x_text: Sequence[str],
    y_ticks: Sequence[int],
    y_text: Sequence[str],
) -> list[str]:
    """Left and bottom axis lines, tick marks, tick labels and axis titles, over the bars."""
    label_y = px(box.y1 + TICK + 2 + FONT_PX)  # baseline: one line of text below the marks
    x_labels = "".join(
        f'<text x="{px(box.x(v))}" y="{label_y}">{esc(t)}</text>'
        for v, t in zip(x_ticks, x_text, strict=True)
    )
    mid_x, mid_y = px((box.x0 + box.x1) / 2), px((box.y0 + box.y1) / 2)
    title_x, title_y = px(FONT_PX), px(HEIGHT - 6)
    rows = [box.y(v) for v in y_ticks]
    return [
        *frame_marks(box.x0, box.y0, box.x1, box.y1, [box.x(v) for v in x_ticks], rows),
        f'<g fill="{INK}">',
        f'<g text-anchor="middle">{x_labels}</g>',
        f'<text x="{mid_x}" y="{title_y}" text-anchor="middle">{esc("score")}</text>',
        f'<g text-anchor="end">{y_labels(box.x0, rows, y_text)}</g>',
        f'<text transform="translate({title_x} {mid_y}) rotate(-90)" text-anchor="middle">'
        f"{esc('rows')}</text>",
        "</g>",
    ]
