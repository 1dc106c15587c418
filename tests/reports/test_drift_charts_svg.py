"""The hand-built drift SVG charts: valid XML, shapes true to the shares, the labels a reader
needs (open edges, pooled categories, escaped names), round ticks; and the headless-Chromium
probe the report and history tests share, to check what a browser really draws."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pipelines.reports.charts import INK
from pipelines.reports.drift import drift_section
from pipelines.reports.drift_charts import (
    BASELINE,
    CURRENT,
    MAX_CATEGORIES,
    MAX_TICKS,
    histogram_svg,
    lines_svg,
)
from pipelines.reports.style import CSS
from tests.paths import ROOT

NS = "{http://www.w3.org/2000/svg}"
EVIL = '<b>&"x"'
NUMERIC = {
    "edges": [None, -1.5, -0.5, 0.0, 0.5, 1.5, None],
    "categories": None,
    "baseline": [0.1, 0.2, 0.2, 0.2, 0.2, 0.1],
    "current": [0.05, 0.1, 0.15, 0.2, 0.3, 0.2],
}


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on anything that is not well-formed XML
    assert root.tag == f"{NS}svg" and root.get("viewBox") == "0 0 640 300"
    return root


def _axes(root: ET.Element) -> tuple[list[str], str, list[str], str]:
    """X tick labels, x title, y tick labels, y title: the unnamed text group in INK."""
    (group,) = [g for g in root.iter(f"{NS}g") if g.get("fill") == INK and g.get("class") is None]
    x_labels, x_title, y_labels, y_title = list(group)
    return (
        [t.text or "" for t in x_labels],
        x_title.text or "",
        [t.text or "" for t in y_labels],
        y_title.text or "",
    )


def _grid(root: ET.Element) -> list[float]:
    """The y of each grid line, bottom (0) first."""
    (group,) = [g for g in root.iter(f"{NS}g") if g.get("stroke") == "#e6e6e6"]
    return [float(line.get("y1", "nan")) for line in group]


def _steps(root: ET.Element, cls: str) -> tuple[float, list[float], list[float]]:
    """A step path's bottom y, each bin's top y and each bin's right x."""
    (path,) = [p for p in root.iter(f"{NS}path") if p.get("class") == cls]
    d = path.get("d", "")
    bottom = float(re.match(r"M[-\d.]+ ([-\d.]+)", d).group(1))  # type: ignore[union-attr]
    tops = [float(v) for v in re.findall(r"V([-\d.]+)", d)]
    assert tops[-1] == bottom  # back down to the axis at the end
    return bottom, tops[:-1], [float(v) for v in re.findall(r"H([-\d.]+)", d)]


def _legend(root: ET.Element) -> list[str]:
    (group,) = [g for g in root.iter(f"{NS}g") if g.get("class") == "legend"]
    return [t.text or "" for t in group.iter(f"{NS}text")]


def _numeric(**extra: Any) -> str:
    return histogram_svg(
        {**NUMERIC, **extra}, title="age: fail, PSI 0.412", xlabel="age (bins)", label="age chart"
    )


def test_a_numeric_chart_draws_both_series_over_the_same_equal_width_bins() -> None:
    root = _parse(_numeric())
    assert root.get("class") == "drift-chart" and root.get("role") == "img"
    assert root.get("aria-label") == "age chart" and root.findtext(f"{NS}title") == "age chart"
    bottom, base_tops, base_right = _steps(root, "baseline")
    bottom2, cur_tops, cur_right = _steps(root, "current")
    assert bottom == bottom2 and base_right == cur_right  # one axis for both
    assert len(base_tops) == len(cur_tops) == 6 and len(base_right) == 6
    widths = [b - a for a, b in zip(base_right, base_right[1:], strict=False)]
    assert max(widths) - min(widths) < 0.02  # equal width, whatever the edges' values
    per_share = (bottom - cur_tops[4]) / 0.3  # px per unit share
    for tops, shares in ((base_tops, NUMERIC["baseline"]), (cur_tops, NUMERIC["current"])):
        for top, share in zip(tops, shares, strict=True):
            assert bottom - top == pytest.approx(share * per_share, abs=0.02)
    (base_path,) = [p for p in root.iter(f"{NS}path") if p.get("class") == "baseline"]
    (cur_path,) = [p for p in root.iter(f"{NS}path") if p.get("class") == "current"]
    assert base_path.get("fill") == BASELINE and cur_path.get("stroke") == CURRENT
    assert _legend(root) == ["baseline", "this run"]
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert "age: fail, PSI 0.412" in texts


def test_the_y_ticks_are_round_percentages_placed_where_the_shares_are() -> None:
    root = _parse(_numeric())
    bottom, _, _ = _steps(root, "current")
    _, cur_tops, _ = _steps(root, "current")
    per_share = (bottom - cur_tops[4]) / 0.3
    _, _, y_labels, y_title = _axes(root)
    assert y_labels == ["0%", "5%", "10%", "15%", "20%", "25%", "30%"] or y_labels == [
        "0%",
        "10%",
        "20%",
        "30%",
    ]
    assert y_title == "share of rows"
    for label, y in zip(y_labels, _grid(root), strict=True):
        assert bottom - y == pytest.approx(float(label[:-1]) / 100 * per_share, abs=0.02)


def test_open_edges_are_labelled_inf_and_the_labels_are_thinned() -> None:
    x_labels, x_title, _, _ = _axes(_parse(_numeric()))
    assert x_labels == ["-inf", "-1.5", "-0.5", "0", "0.5", "1.5", "+inf"]
    assert x_title == "age (bins)"
    edges = [float("-inf"), *[i / 10 for i in range(1, 20)], float("inf")]
    wide = {"edges": edges, "baseline": [0.05] * 20, "current": [0.05] * 20}
    x_labels, _, _, _ = _axes(_parse(histogram_svg(wide, title="t", xlabel="x", label="l")))
    assert len(x_labels) <= MAX_TICKS and x_labels[0] == "-inf"
    assert x_labels == ["-inf", "0.3", "0.6", "0.9", "1.2", "1.5", "1.8"]  # every 3rd edge


def _categorical(categories: list[str], base: list[float], cur: list[float]) -> str:
    histogram = {"edges": None, "categories": categories, "baseline": base, "current": cur}
    return histogram_svg(histogram, title="region", xlabel="region (category)", label="r")


def _bars(root: ET.Element, cls: str) -> list[ET.Element]:
    return [r for r in root.iter(f"{NS}rect") if r.get("class") == cls]


def test_categories_are_side_by_side_bars_with_heights_true_to_the_shares() -> None:
    cats, base, cur = ["north", "south", "east"], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]
    root = _parse(_categorical(cats, base, cur))
    grey, blue = _bars(root, "baseline"), _bars(root, "current")
    assert len(grey) == len(blue) == 3
    assert {r.get("fill") for r in grey} == {BASELINE} and {r.get("fill") for r in blue} == {
        CURRENT
    }
    heights = [float(r.get("height", "nan")) for r in grey + blue]
    per_share = heights[0] / 0.5
    assert heights == pytest.approx([s * per_share for s in base + cur], abs=0.02)
    for g, b in zip(grey, blue, strict=True):  # the baseline just left of this run's bar
        assert float(g.get("x", "0")) + float(g.get("width", "0")) == pytest.approx(
            float(b.get("x", "nan")), abs=0.02
        )
    x_labels, _, _, _ = _axes(root)
    assert x_labels == cats and _legend(root) == ["baseline", "this run"]
    assert not any("rotate(-30)" in (t.get("transform") or "") for t in root.iter(f"{NS}text"))


def test_many_categories_are_pooled_as_other_and_long_names_cut_and_slanted() -> None:
    cats = [f"a rather long category name {i}" for i in range(30)]
    base = [0.001] * 30
    cur = [0.001] * 30
    base[3], cur[17] = 0.5, 0.4  # the two biggest, kept in their order
    root = _parse(_categorical(cats, base, cur))
    assert len(_bars(root, "baseline")) == len(_bars(root, "current")) == MAX_CATEGORIES
    x_labels, _, _, _ = _axes(root)
    assert x_labels[-1] == f"(other {30 - MAX_CATEGORIES + 1})"
    assert all(len(t) <= 18 for t in x_labels) and x_labels[0].endswith("…")
    slanted = [t for t in root.iter(f"{NS}text") if "rotate(-30)" in (t.get("transform") or "")]
    assert len(slanted) == MAX_CATEGORIES
    heights = [float(r.get("height", "nan")) for r in _bars(root, "baseline")]
    per_share = max(heights) / 0.5
    assert heights[-1] == pytest.approx(0.001 * 16 * per_share, abs=0.02)  # pooled shares add


def test_every_text_from_data_is_escaped() -> None:
    histogram = {"categories": [EVIL, "b"], "baseline": [0.5, 0.5], "current": [0.5, 0.5]}
    svg = histogram_svg(histogram, title=EVIL, xlabel=EVIL, label=EVIL)
    assert EVIL not in svg and "&lt;b&gt;&amp;&quot;x&quot;" in svg
    root = _parse(svg)
    assert root.get("aria-label") == EVIL and root.findtext(f"{NS}title") == EVIL
    assert [t.text for t in root.iter(f"{NS}text")].count(EVIL) == 3  # title, tick, x title
    lines = lines_svg(
        ["a", EVIL], {EVIL: [1, 2]}, title=EVIL, ylabel=EVIL, label=EVIL, guides={EVIL: 1}
    )
    assert EVIL not in lines and _parse(lines).get("aria-label") == EVIL


def test_same_data_same_bytes_in_another_process() -> None:
    code = (
        "from pipelines.reports.drift_charts import histogram_svg, lines_svg\n"
        f"print(histogram_svg({NUMERIC!r}, title='t', xlabel='x', label='l'))\n"
        "print(lines_svg(['a', 'b'], {'s': [1, None], 'u': [0.5, 2]}, title='t', ylabel='y',"
        " label='l', statuses=['warn', None], guides={'g': 1.5}))"
    )
    here = histogram_svg(NUMERIC, title="t", xlabel="x", label="l") + "\n"
    here += lines_svg(
        ["a", "b"],
        {"s": [1, None], "u": [0.5, 2]},
        title="t",
        ylabel="y",
        label="l",
        statuses=["warn", None],
        guides={"g": 1.5},
    )
    env = {"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout == here + "\n"


@pytest.mark.parametrize(
    ("histogram", "message"),
    [
        ({"edges": [0, 1, 2], "baseline": [0.5, 0.5], "current": [1.0]}, "this run 1"),
        ({"edges": [0, 1], "baseline": [], "current": []}, "baseline has 0 bins"),
        ({"edges": [0, 1], "baseline": [0.5, 0.5], "current": [0.5, 0.5]}, "need 3 edges"),
        ({"edges": None, "baseline": [1.0], "current": [1.0]}, "need 2 edges"),
        ({"categories": ["a"], "baseline": [0.5, 0.5], "current": [0.5, 0.5]}, "1 categories"),
        ({"edges": [0, 1], "baseline": ["x"], "current": [1.0]}, "not numbers"),
        ({"edges": [0, 1], "baseline": [float("nan")], "current": [1.0]}, "not all finite"),
    ],
)
def test_shares_that_do_not_match_the_bins_are_an_error(
    histogram: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        histogram_svg(histogram, title="t", xlabel="x", label="l")


_PROBE = """<pre id="probe"></pre><script>
window.addEventListener("load", async () => {
  const out = [];
  for (const svg of document.querySelectorAll("svg.drift-chart, svg.history-chart")) {
    const img = new Image();
    img.src = "data:image/svg+xml;charset=utf-8,"
      + encodeURIComponent(new XMLSerializer().serializeToString(svg));
    await img.decode();  // the chart as a standalone SVG file: rejects if it is not one
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(img, 0, 0);
    const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let ink = 0; const colours = new Set();
    for (let i = 0; i < px.length; i += 4) {
      if (px[i] < 245 || px[i + 1] < 245 || px[i + 2] < 245) ink++;
      colours.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
    }
    const box = svg.getBoundingClientRect();
    const texts = [...svg.querySelectorAll("text")].map((t) => {
      const r = t.getBoundingClientRect();
      return {text: t.textContent, slanted: (t.getAttribute("transform") || "").includes("-30"),
              left: r.left - box.left, top: r.top - box.top,
              right: r.right - box.left, bottom: r.bottom - box.top};
    });
    const figure = svg.closest("figure");
    out.push({name: figure.dataset.feature || figure.dataset.chart, natural: img.naturalWidth,
              width: box.width, height: box.height, ink: ink / (px.length / 4),
              colours: colours.size, texts: texts});
  }
  document.getElementById("probe").textContent = JSON.stringify(out);
});
</script>"""


def chromium_probe(page: str, folder: Path) -> list[dict[str, Any]]:
    """Open `page` in headless Chromium; what the browser saw of each drift or history chart:
    its size on the page, its ink drawn standalone at 640 px, and where each text landed."""
    path = folder / "probe.html"
    path.write_text(page.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    done = subprocess.run(
        [
            str(shutil.which("chromium")),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={folder / 'profile'}",
            "--window-size=1280,1700",
            "--virtual-time-budget=10000",
            "--dump-dom",
            path.as_uri(),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    match = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, flags=re.S)
    assert match and match.group(1), done.stdout[-2000:] + done.stderr[-2000:]
    import html

    return json.loads(html.unescape(match.group(1)))


def assert_readable(seen: dict[str, Any]) -> None:
    """A chart the browser drew: sane size, not blank, every text inside the chart, and no
    two upright texts overlapping (the 30-degree x labels are parallel: their boxes may)."""
    assert seen["natural"] == 640 and seen["width"] >= 300 and seen["height"] >= 140, seen["name"]
    assert seen["ink"] > 0.03 and seen["colours"] > 50, seen["name"]  # antialiased, not flat
    scale = seen["width"] / 640
    for t in seen["texts"]:
        assert t["left"] >= -1 and t["top"] >= -1, (seen["name"], t)
        assert t["right"] <= seen["width"] + 1 and t["bottom"] <= seen["height"] + 1, t
    upright = [t for t in seen["texts"] if not t["slanted"] and t["text"]]
    for i, a in enumerate(upright):
        for b in upright[i + 1 :]:
            apart = (
                a["right"] <= b["left"] + scale
                or b["right"] <= a["left"] + scale
                or a["bottom"] <= b["top"] + scale
                or b["bottom"] <= a["top"] + scale
            )
            assert apart, (seen["name"], a, b)


@pytest.mark.skipif(not shutil.which("chromium"), reason="headless chromium not installed")
def test_the_browser_draws_crowded_and_escaped_charts_readably(tmp_path: Path) -> None:
    cats = [f"category number {i} of many" for i in range(25)] + [EVIL]
    shares = [1 / 26] * 26
    long_name = "plan_with_a_long_feature_name_that_does_not_fit_a_title_row"
    block = {
        "status": "warn",
        "features": [
            {"name": EVIL, "status": "warn", "psi": 0.2, "histogram": NUMERIC},
            {
                "name": long_name,
                "status": "warn",
                "psi": 0.15,
                "histogram": {"categories": cats, "baseline": shares, "current": shares},
            },
        ],
    }
    page = f"<!DOCTYPE html><html><head><style>{CSS}</style></head><body>"
    page += "".join(drift_section(block)) + "</body></html>"
    seen = chromium_probe(page, tmp_path)
    assert [s["name"] for s in seen] == [EVIL, long_name]
    for s in seen:
        assert_readable(s)
