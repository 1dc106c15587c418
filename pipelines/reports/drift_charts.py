"""Drift and history charts as hand-built inline SVG (no matplotlib, no JS, no external files).

SVG strings rather than matplotlib PNGs: importing matplotlib and drawing the ~7 drift charts
cost ~1 s of every run with drift monitoring on (the default), even a 1,000-row one. A chart is
now a few KB of text built in about a millisecond, deterministic (same data, same bytes) and
sized by a viewBox so the page's CSS scales it. Style, sizes and `esc` follow the score histogram
(`pipelines.reports.charts`); text widths are estimated (CHAR_PX a character), not measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines.reports.charts import (
    CHAR_PX,
    FONT_PX,
    INK,
    TICK,
    WIDTH,
    esc,
    frame_marks,
    grid,
    px,
    y_labels,
)

BASELINE = "#9aa5b1"
CURRENT = "#3572b0"
STATUS_COLOURS = {"ok": "#2e7d32", "warn": "#d9822b", "fail": "#c62828"}
LINE_COLOURS = ["#3572b0", "#d9822b", "#2e7d32", "#8e44ad", "#c62828", "#16a085", "#7f8c8d"]
HEIGHT = 300  # px of the viewBox; WIDTH (640) as the score histogram: the 704 x 330 PNGs' shape
MAX_CATEGORIES = 15  # more are pooled as "(other)" so the labels stay readable
MAX_TICKS = 9
TITLE_PX, SMALL_PX = 13, 11  # the chart's title; legend entries and guide labels
_TOP = 30  # the title row (and a histogram's legend) above the plot
_COS, _SIN = math.cos(math.radians(30)), 0.5  # crowded x labels are rotated 30 degrees


def histogram_svg(histogram: Mapping[str, Any], *, title: str, xlabel: str, label: str) -> str:
    """Baseline vs this run, share of rows per bin: steps over the baseline's bins for a numeric
    feature (bins at equal width, labelled by their edges; an open outer edge is -inf/+inf), or
    side-by-side bars per category. `label` is the accessible name (aria-label and <title>).
    Raises ValueError when the shares do not match the bins."""
    base, cur = _shares(histogram, "baseline"), _shares(histogram, "current")
    if len(base) != len(cur) or not base:
        raise ValueError(f"baseline has {len(base)} bins and this run {len(cur)}")
    categories = histogram.get("categories")
    if categories is not None:
        labels, base, cur = _pool([str(c) for c in categories], base, cur)
        return _svg("drift-chart", label, _compare(labels, base, cur, False, title, xlabel))
    edges = list(histogram.get("edges") or [])
    if len(edges) != len(base) + 1:
        raise ValueError(f"{len(base)} bins need {len(base) + 1} edges, got {len(edges)}")
    labels = [_edge_label(e, i == 0) for i, e in enumerate(edges)]
    return _svg("drift-chart", label, _compare(labels, base, cur, True, title, xlabel))


def lines_svg(
    x_labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    ylabel: str,
    label: str,
    statuses: Sequence[str | None] | None = None,
    percent: bool = False,
    guides: Mapping[str, float] | None = None,
) -> str:
    """One line per series over the run keys (a gap where a run has no value). Runs whose drift
    status is warn or fail get an orange or red band, so a person sees which nights flagged;
    `guides` draws labelled dashed lines (e.g. PSI 0.1 and 0.25). The legend sits to the right.
    Raises ValueError when there is no run or a series does not have one value per run."""
    n = len(x_labels)
    if not n:
        raise ValueError("no run to draw")
    values: dict[str, list[float | None]] = {}
    for name, vs in series.items():
        if len(vs) != n:
            raise ValueError(f"series {name!r} has {len(vs)} values for {n} runs")
        values[str(name)] = [_finite(v) for v in vs]
    marks = {k: y for k, v in (guides or {}).items() if (y := _finite(v)) is not None}
    found = [v for vs in values.values() for v in vs if v is not None] + list(marks.values())
    lo, hi = min(0.0, *found), max(0.0, *found)
    hi = lo + (0.01 if percent else 1.0) if hi <= lo else hi + 0.05 * (hi - lo)
    at = list(range(0, n, max(1, math.ceil(n / MAX_TICKS))))
    shown = [_cut(str(x_labels[i]), 20) for i in at]
    flagged = sorted({s for s in statuses or [] if s in ("warn", "fail")})
    colours = [LINE_COLOURS[k % len(LINE_COLOURS)] for k in range(len(values))]
    legend = [("marker", c, _cut(name, 22)) for c, name in zip(colours, values, strict=True)]
    legend += [("band", STATUS_COLOURS[s], f"drift {s}") for s in flagged]
    right = 40 + max((_width(t, SMALL_PX) for _, _, t in legend), default=0)
    f = _Frame((-0.5, n - 0.5), (lo, hi), at, shown, rotated=True, percent=percent, right=right)
    bands = "".join(
        f'<rect x="{px(f.x(i - 0.5))}" y="{px(f.y0)}" width="{px(f.x(i + 0.5) - f.x(i - 0.5))}"'
        f' height="{px(f.y1 - f.y0)}" fill="{STATUS_COLOURS[s]}"/>'
        for i, s in enumerate(list(statuses or [])[:n])
        if s in ("warn", "fail")
    )
    body = [
        grid(f.x0, f.x1, [f.y(v) for v in f.y_at]),
        f'<g class="bands" fill-opacity="0.15">{bands}</g>',
    ]
    body += [_series(f, name, vs, c) for c, (name, vs) in zip(colours, values.items(), strict=True)]
    body += [*_guides(f, marks), *_axes(f, "run key", ylabel)]
    body.append(_title(title, f.x0, WIDTH - f.x0 - 8))
    body.append(_legend(legend, f.x1 + 14, f.y0 + 8, across=False))
    return _svg("history-chart", label, body)


def _compare(
    labels: list[str], base: list[float], cur: list[float], numeric: bool, title: str, xlabel: str
) -> list[str]:
    """Baseline vs this run. Numeric: steps over bins at equal width (quantile bins hold equal
    baseline shares, so a shift shows as steps leaving the flat baseline), ticks on the bin
    edges, thinned to MAX_TICKS. Categorical: side-by-side bars, labels cut at 18 characters
    and rotated when more than 4 (or long ones) would not fit side by side."""
    n = len(base)
    top = max(0.01, *base, *cur) * 1.1
    if numeric:
        at = list(range(0, n + 1, max(1, math.ceil((n + 1) / MAX_TICKS))))
        shown, xlim, rotated = [labels[i] for i in at], (0.0, float(n)), True
    else:
        at, shown, xlim = list(range(n)), [_cut(s, 18) for s in labels], (-0.6, n - 0.4)
        rotated = n > 4 or max(_width(s) for s in shown) > 0.9 * (WIDTH - 80) / n
    f = _Frame(xlim, (0.0, top), at, shown, rotated=rotated, percent=True, right=12)
    data = _stairs(f, base, cur) if numeric else _side_bars(f, base, cur)
    kinds = ("area", "line") if numeric else ("bar", "bar")
    legend = [(kinds[0], BASELINE, "baseline"), (kinds[1], CURRENT, "this run")]
    room = f.x1 - f.x0 - sum(34 + _width(t, SMALL_PX) for _, _, t in legend)
    parts = [grid(f.x0, f.x1, [f.y(v) for v in f.y_at]), *data, *_axes(f, xlabel, "share of rows")]
    return [*parts, _title(title, f.x0, room), _legend(legend, f.x1, 18, across=True)]


def _stairs(f: _Frame, base: list[float], cur: list[float]) -> list[str]:
    """The baseline as a filled step outline, this run as a step line over it."""

    def path(shares: list[float]) -> str:
        """From the bottom left, up to each bin's share and across it, then back down."""
        steps = "".join(f"V{px(f.y(s))}H{px(f.x(i + 1))}" for i, s in enumerate(shares))
        return f"M{px(f.x0)} {px(f.y1)}{steps}V{px(f.y1)}"

    return [
        f'<path class="baseline" d="{path(base)}Z" fill="{BASELINE}" fill-opacity="0.55"/>',
        f'<path class="current" d="{path(cur)}" fill="none" stroke="{CURRENT}" stroke-width="2"/>',
    ]


def _side_bars(f: _Frame, base: list[float], cur: list[float]) -> list[str]:
    """Two bars per category, 0.4 wide each: the baseline left of the tick, this run right."""
    sides = (("baseline", BASELINE, base, -0.4), ("current", CURRENT, cur, 0.0))
    rects = [
        f'<rect class="{cls}" x="{px(f.x(i + dx))}" y="{px(f.y(v))}"'
        f' width="{px(f.x(0.4) - f.x(0))}" height="{px(f.y1 - f.y(v))}" fill="{colour}"/>'
        for cls, colour, shares, dx in sides
        for i, v in enumerate(shares)
    ]
    return [f'<g shape-rendering="crispEdges">{"".join(rects)}</g>']


@dataclass
class _Frame:
    """The plot area in px, the data ranges it maps (x in bins or runs) and both axes' ticks,
    so every part of a chart converts alike. The area leaves room below for the x labels (from
    their estimated width) and the axis title, left for the y labels, the axis title and a long
    rotated first x label, and `right` px on the right (a legend)."""

    xlim: tuple[float, float]
    ylim: tuple[float, float]
    x_at: list[int]
    x_text: list[str]
    rotated: bool
    percent: bool
    right: float
    y_at: list[float] = field(init=False)
    y_text: list[str] = field(init=False)
    x0: float = field(init=False)
    y1: float = field(init=False)

    def __post_init__(self) -> None:
        self.y_at = _ticks(*self.ylim)
        self.y_text = _tick_text(self.y_at, self.percent)
        left = 2 * FONT_PX + TICK + 4 + max(_width(t) for t in self.y_text)
        if self.rotated and self.x_at:  # the first label runs left of its tick by w x cos 30
            lo, hi = self.xlim
            first = (self.x_at[0] - lo) / (hi - lo) * (WIDTH - left - self.right)
            left = max(left, _COS * _width(self.x_text[0]) + 4 - first)
        self.x0, self.y1 = left, HEIGHT - self.drop - FONT_PX - 7
        self.x1, self.y0 = WIDTH - self.right, _TOP

    @property
    def drop(self) -> float:
        """How far below the axis the x labels reach (marks, labels, the rotation's slope)."""
        if self.rotated:
            return TICK + 11 + _SIN * max((_width(t) for t in self.x_text), default=0)
        return TICK + 6 + FONT_PX

    def x(self, value: float) -> float:
        lo, hi = self.xlim
        return self.x0 + (value - lo) / (hi - lo) * (self.x1 - self.x0)

    def y(self, value: float) -> float:
        lo, hi = self.ylim
        return self.y1 - (value - lo) / (hi - lo) * (self.y1 - self.y0)


def _axes(f: _Frame, xlabel: str, ylabel: str) -> list[str]:
    """Left and bottom axis lines, tick marks, tick labels (x ones rotated 30 degrees and
    right-aligned at their tick when `f.rotated`) and the axis titles, over the data."""
    if f.rotated:  # the label's end on the tick, its top just under the tick mark
        x_labels = "".join(
            f'<text transform="translate({px(f.x(v) + 2)} {px(f.y1 + TICK + 9)}) rotate(-30)">'
            f"{esc(t)}</text>"
            for v, t in zip(f.x_at, f.x_text, strict=True)
        )
    else:
        x_labels = "".join(
            f'<text x="{px(f.x(v))}" y="{px(f.y1 + TICK + 2 + FONT_PX)}">{esc(t)}</text>'
            for v, t in zip(f.x_at, f.x_text, strict=True)
        )
    mid_x, mid_y = px((f.x0 + f.x1) / 2), px((f.y0 + f.y1) / 2)
    rows = [f.y(v) for v in f.y_at]
    return [
        *frame_marks(f.x0, f.y0, f.x1, f.y1, [f.x(v) for v in f.x_at], rows),
        f'<g fill="{INK}">',
        f'<g text-anchor="{"end" if f.rotated else "middle"}">{x_labels}</g>',
        f'<text x="{mid_x}" y="{px(f.y1 + f.drop + FONT_PX + 2)}" text-anchor="middle">'
        f"{esc(xlabel)}</text>",
        f'<g text-anchor="end">{y_labels(f.x0, rows, f.y_text)}</g>',
        f'<text transform="translate({px(FONT_PX)} {mid_y}) rotate(-90)" text-anchor="middle">'
        f"{esc(ylabel)}</text>",
        "</g>",
    ]


def _title(title: str, x: float, room: float) -> str:
    """The chart's title, cut to the room it has (the full name is in the aria-label)."""
    text = _cut(title, max(8, int(room / (CHAR_PX * TITLE_PX / FONT_PX))))
    return (
        f'<text class="title" x="{px(x)}" y="18" font-size="{TITLE_PX}" fill="{INK}">'
        f"{esc(text)}</text>"
    )


def _legend(entries: list[tuple[str, str, str]], x: float, y: float, *, across: bool) -> str:
    """Legend entries (swatch kind, colour, text): a row ending at `x` (across) or a column
    starting at `x`; `y` is the first entry's text baseline."""
    widths = [22 + _width(t, SMALL_PX) for _, _, t in entries]
    start = x - sum(widths) - 12 * (len(widths) - 1) if across else x
    items = []
    for k, (kind, colour, text) in enumerate(entries):
        ex, ey = (start + sum(widths[:k]) + 12 * k, y) if across else (x, y + 16 * k)
        items.append(_swatch(kind, colour, ex, ey - SMALL_PX * 0.35))
        items.append(f'<text x="{px(ex + 22)}" y="{px(ey)}">{esc(text)}</text>')
    return f'<g class="legend" font-size="{SMALL_PX}" fill="{INK}">{"".join(items)}</g>'


def _swatch(kind: str, colour: str, x: float, mid: float) -> str:
    """A 16 px legend key centred on the text's middle `mid`: a line (with a marker) or a box."""
    if kind in ("line", "marker"):
        dot = f'<circle cx="{px(x + 8)}" cy="{px(mid)}" r="2.5" fill="{colour}"/>'
        line = f'<line x1="{px(x)}" x2="{px(x + 16)}" y1="{px(mid)}" y2="{px(mid)}"'
        return f'{line} stroke="{colour}" stroke-width="2"/>' + (dot if kind == "marker" else "")
    opacity = {"area": 0.55, "band": 0.3}.get(kind, 1.0)
    return (
        f'<rect x="{px(x)}" y="{px(mid - 5)}" width="16" height="10" fill="{colour}"'
        f' fill-opacity="{opacity:g}"/>'
    )


def _series(f: _Frame, name: str, values: Sequence[float | None], colour: str) -> str:
    """One series: a line through its runs (broken where a run has none) and a dot per run."""
    path, dots, pen = [], [], "M"
    for i, v in enumerate(values):
        if v is None:
            pen = "M"  # a gap: the next value starts a new piece of line
            continue
        x, y = px(f.x(i)), px(f.y(v))
        path.append(f"{pen}{x} {y}")
        dots.append(f'<circle cx="{x}" cy="{y}" r="2.5"/>')
        pen = "L"
    return (
        f'<g class="series" fill="{colour}"><title>{esc(name)}</title><path d="{"".join(path)}"'
        f' fill="none" stroke="{colour}" stroke-width="1.6" stroke-linejoin="round"/>'
        f"{''.join(dots)}</g>"
    )


def _guides(f: _Frame, guides: Mapping[str, float]) -> list[str]:
    """Dashed horizontal guides, each labelled at the right end above it (on a white halo so
    a line passing under the label does not hide it)."""
    rows = [(text, px(f.y(y))) for text, y in guides.items()]
    lines = "".join(f'<line x1="{px(f.x0)}" x2="{px(f.x1)}" y1="{y}" y2="{y}"/>' for _, y in rows)
    labels = "".join(
        f'<text x="{px(f.x1 - 2)}" y="{y}" dy="-3">{esc(text)}</text>' for text, y in rows
    )
    return [
        f'<g stroke="#777" stroke-width="0.9" stroke-dasharray="4 3">{lines}</g>',
        '<g class="guides" font-size="10" fill="#555" text-anchor="end" stroke="#fff"'
        f' stroke-width="3" paint-order="stroke">{labels}</g>',
    ]


def _svg(cls: str, label: str, body: list[str]) -> str:
    """The <svg> element: accessible name as aria-label and <title>, scaled by its viewBox."""
    head = (
        f'<svg class="{cls}" role="img" aria-label="{esc(label)}"'
        f' xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="{FONT_PX}">'
        f"\n<title>{esc(label)}</title>"
    )
    return "\n".join([head, *body, "</svg>"])


def _ticks(lo: float, hi: float, most: int = 5) -> list[float]:
    """Round ticks within [lo, hi]: the smallest 1/2/2.5/5 x 10^k step leaving at most `most`
    whole intervals between them, as matplotlib's MaxNLocator (0-1,081 rows: 0, 200, ... 1,000)."""
    power = 10.0 ** math.floor(math.log10((hi - lo) / most))
    for step in (m * power for m in (1, 2, 2.5, 5, 10)):  # 10 x power always fits
        first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
        if last - first <= most:
            break
    digits = 8 - math.floor(math.log10(step))  # rounds away float noise like 0.30000000000000004
    return [round(k * step, digits) + 0.0 for k in range(first, last + 1)]


def _tick_text(ticks: Sequence[float], percent: bool) -> list[str]:
    """Tick labels with the fewest decimals that show every tick exactly (thousands grouped)."""
    scaled = [t * 100 if percent else t for t in ticks]
    digits = 0
    while digits < 6 and any(abs(round(v, digits) - v) > 1e-9 * max(1, abs(v)) for v in scaled):
        digits += 1
    return [f"{v:,.{digits}f}" + ("%" if percent else "") for v in scaled]


def _width(text: str, px: float = FONT_PX) -> float:
    return len(text) * CHAR_PX * px / FONT_PX


def _finite(value: Any) -> float | None:
    """A value to plot, or None (a gap) when it is missing or not a finite number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a number") from None
    return number if math.isfinite(number) else None


def _shares(histogram: Mapping[str, Any], side: str) -> list[float]:
    try:
        shares = [0.0 if v is None else float(v) for v in histogram.get(side) or []]
    except (TypeError, ValueError):
        raise ValueError(f"the {side} shares are not numbers") from None
    if not all(math.isfinite(s) for s in shares):
        raise ValueError(f"the {side} shares are not all finite")
    return shares


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
