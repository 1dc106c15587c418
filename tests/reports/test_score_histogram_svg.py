"""The hand-built score histogram SVG: valid XML, bars true to the counts, round ticks, fast."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from pipelines.reports.charts import BAR, histogram_svg
from tests.paths import ROOT

NS = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on anything that is not well-formed XML
    assert root.tag == f"{NS}svg"
    return root


def _bars(root: ET.Element) -> list[ET.Element]:
    return [r for r in root.iter(f"{NS}rect") if r.get("class") == "bar"]


def _texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{NS}text")]


def _axis_labels(root: ET.Element) -> tuple[list[str], list[str]]:
    """X and y tick labels, split on the axis titles that follow each axis's ticks."""
    texts = _texts(root)
    x = texts[: texts.index("score")]
    y = texts[texts.index("score") + 1 : texts.index("rows")]
    return x, y


def _grid_lines(root: ET.Element) -> list[ET.Element]:
    return [
        line
        for g in root.iter(f"{NS}g")
        if g.get("stroke") == "#e6e6e6"
        for line in g.iter(f"{NS}line")
    ]


def test_root_keeps_role_label_and_scales_by_viewbox() -> None:
    root = _parse(histogram_svg([0, 0.5, 1], [1, 2]))
    assert root.get("class") == "chart" and root.get("role") == "img"
    assert root.get("aria-label") == "score histogram: rows per score bin"
    assert root.get("viewBox") == "0 0 640 260"
    assert (root.get("width"), root.get("height")) == ("640", "260")  # CSS caps at 100%


def test_one_bar_per_non_zero_bin_with_heights_proportional_to_counts() -> None:
    counts = [0, 10, 20, 0, 40, 5, 0, 1]
    root = _parse(histogram_svg(np.linspace(0, 1, len(counts) + 1), counts))
    bars = _bars(root)
    drawn = [c for c in counts if c > 0]
    assert len(bars) == len(drawn)
    heights = [float(b.get("height", "nan")) for b in bars]
    ratios = [h / c for h, c in zip(heights, drawn, strict=True)]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-3)
    bottoms = {round(float(b.get("y", "nan")) + h, 1) for b, h in zip(bars, heights, strict=True)}
    assert len(bottoms) == 1  # every bar stands on the x axis
    grid = [float(line.get("y1", "nan")) for line in _grid_lines(root)]
    assert len(grid) == 5  # y ticks 0, 10, ..., 40 under a 42 (40 * 1.05) high axis
    assert max(heights) == pytest.approx(max(grid) - min(grid), abs=0.02)  # tallest reaches 40


def test_bars_sit_over_their_bin_edges_and_fill_bar_colour() -> None:
    svg = histogram_svg([0, 0.25, 0.5, 0.75, 1], [3, 3, 3, 3])
    root = _parse(svg)
    bars = _bars(root)
    xs = [float(b.get("x", "nan")) for b in bars]
    widths = [float(b.get("width", "nan")) for b in bars]
    assert widths == pytest.approx([widths[0]] * 4, abs=0.02)  # equal bins, equal widths
    for left, width, right in zip(xs, widths, xs[1:], strict=False):
        assert left + width == pytest.approx(right, abs=0.02)  # adjacent, no gap
    assert f'fill="{BAR}"' in svg


def test_zero_to_one_range_ticks_are_exactly_tenths() -> None:
    root = _parse(histogram_svg(np.linspace(0, 1, 21), np.arange(20) * 3))
    x, _ = _axis_labels(root)
    assert x == ["0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1"]


def test_y_ticks_are_round_with_thousands_separators() -> None:
    root = _parse(histogram_svg([0, 0.5, 1], [1_234_567, 10]))
    _, y = _axis_labels(root)
    assert y == ["0", "500,000", "1,000,000"]


@pytest.mark.parametrize("peak", [1, 7, 99, 100, 485, 1_000, 43_210, 1_234_567])
def test_y_ticks_are_few_evenly_stepped_and_stay_inside_the_axis(peak: int) -> None:
    _, y = _axis_labels(_parse(histogram_svg([0, 1], [peak])))
    values = [int(t.replace(",", "")) for t in y]
    assert values[0] == 0 and 2 <= len(values) <= 6, values
    steps = {b - a for a, b in zip(values, values[1:], strict=False)}
    assert len(steps) == 1, values
    step = steps.pop()
    magnitude = 10 ** (len(str(step)) - 1)
    assert step % magnitude == 0 and step // magnitude in (1, 2, 5), values
    assert values[-1] <= peak * 1.05 < values[-1] + step  # the top tick is the last that fits


def test_same_input_same_bytes() -> None:
    counts = np.random.default_rng(0).integers(0, 50_000, 50)
    edges = np.linspace(0, 1, 51)
    assert histogram_svg(edges, counts) == histogram_svg(list(edges), [int(c) for c in counts])


def test_edges_outside_zero_to_one_get_nice_ticks() -> None:
    root = _parse(histogram_svg([-3.2, 0.0, 2.5, 7.9], [4, 9, 2]))
    x, _ = _axis_labels(root)
    assert x == ["-2", "0", "2", "4", "6"]
    assert len(_bars(root)) == 3
    root = _parse(histogram_svg([2.0, 2.001, 2.003], [5, 7]))
    x, _ = _axis_labels(root)
    assert x == ["2", "2.0005", "2.001", "2.0015", "2.002", "2.0025", "2.003"]


def test_a_single_bin_fills_the_plot_width() -> None:
    root = _parse(histogram_svg([0.0, 1.0], [np.int64(12)]))
    (bar,) = _bars(root)
    axis = root.find(f"{NS}path")
    assert axis is not None
    d = axis.get("d", "")  # "M{left} {top}V{bottom}H{right}"
    left, right = float(d[1:].split()[0]), float(d[d.index("H") + 1 :])
    x = float(bar.get("x", "nan"))
    assert x == pytest.approx(left) and x + float(bar.get("width", "nan")) == pytest.approx(right)


def test_all_zero_counts_draw_no_bars_but_keep_the_axes() -> None:
    root = _parse(histogram_svg(np.linspace(0, 1, 11), np.zeros(10, dtype=np.int64)))
    assert _bars(root) == []
    x, y = _axis_labels(root)
    assert x[0] == "0" and x[-1] == "1" and y == ["0", "1"]


def test_mismatched_or_bad_edges_are_an_error_not_a_wrong_chart() -> None:
    with pytest.raises(ValueError):
        histogram_svg([0, 0.5, 1], [1])
    with pytest.raises(ValueError):
        histogram_svg([1, 0], [1])
    with pytest.raises(ValueError):
        histogram_svg([float("-inf"), 0, 1], [1, 1])


def test_drawing_the_histogram_does_not_import_matplotlib() -> None:
    code = (
        "import sys; from pipelines.reports.charts import histogram_svg;"
        " histogram_svg([0,0.5,1],[1,2]); assert 'matplotlib' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
