"""Inline SVG charts (no JS, no external fonts): the report opens the same anywhere."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any


def esc(value: Any) -> str:
    """HTML-escaped text of any value (None is empty): every value from data goes through it."""
    return html.escape("" if value is None else str(value), quote=True)


def histogram_svg(edges: Sequence[float], counts: Sequence[int]) -> str:
    """Inline SVG bar chart of the score histogram (no JS, no external fonts)."""
    width, height, pad_l, pad_b, pad_t = 640, 240, 60, 30, 10
    plot_w, plot_h = width - pad_l - 10, height - pad_b - pad_t
    top = max(counts) if counts else 0
    n = len(counts)
    bar_w = plot_w / n if n else plot_w
    out = [
        f'<svg class="hist" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'role="img" aria-label="score histogram" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{pad_l + plot_w}" y2="{pad_t + plot_h}" '
        'stroke="#555"/>',
    ]
    for k in range(5):  # y gridlines and labels
        frac = k / 4
        y = pad_t + plot_h - frac * plot_h
        label = f"{top * frac:,.0f}"
        out.append(
            f'<line x1="{pad_l}" y1="{y:.1f}" x2="{pad_l + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{pad_l - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{label}</text>'
        )
    for i, c in enumerate(counts):
        h = 0 if not top else plot_h * c / top
        x = pad_l + i * bar_w
        lo, hi = (edges[i], edges[i + 1]) if len(edges) > i + 1 else (i, i + 1)
        out.append(
            f'<rect x="{x + 1:.1f}" y="{pad_t + plot_h - h:.1f}" width="{max(bar_w - 2, 1):.1f}" '
            f'height="{h:.1f}" fill="#3572b0"><title>{esc(f"{lo:g}-{hi:g}: {c:,}")}</title></rect>'
        )
    for i in range(0, n + 1, max(1, n // 5)):
        x = pad_l + i * bar_w
        value = edges[i] if i < len(edges) else i
        text = f"{value:g}" if isinstance(value, int | float) and math.isfinite(value) else value
        out.append(
            f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" font-size="11">'
            f"{esc(text)}</text>"
        )
    out.append("</svg>")
    return "".join(out)
