"""The hand-built history line charts and the monitor page that holds them: series true to the
values, gaps, drift bands, guides, round ticks, accessible names, no matplotlib."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pipelines.reports.drift_charts import LINE_COLOURS, MAX_TICKS, STATUS_COLOURS, lines_svg
from pipelines.reports.history_page import render_history_html
from tests.paths import ROOT
from tests.reports.test_drift_charts_svg import (
    NS,
    _axes,
    _grid,
    _legend,
    _parse,
    assert_readable,
    chromium_probe,
)


def test_bad_line_series_are_an_error() -> None:
    with pytest.raises(ValueError, match="no run"):
        lines_svg([], {}, title="t", ylabel="y", label="l")
    with pytest.raises(ValueError, match="2 values for 3 runs"):
        lines_svg(["a", "b", "c"], {"s": [1, 2]}, title="t", ylabel="y", label="l")
    with pytest.raises(ValueError, match="not a number"):
        lines_svg(["a"], {"s": ["x"]}, title="t", ylabel="y", label="l")  # type: ignore[list-item]


def _series(root: ET.Element) -> dict[str, ET.Element]:
    return {
        g.findtext(f"{NS}title") or "": g for g in root.iter(f"{NS}g") if g.get("class") == "series"
    }


def test_lines_draw_each_series_over_the_runs_with_bands_legend_and_guides() -> None:
    keys = [f"2026-11-{d:02d}" for d in range(1, 21)]
    statuses = ["ok"] * 20
    statuses[4], statuses[11], statuses[15] = "warn", "fail", "warn"
    series = {
        "age": [0.02 * d for d in range(20)],
        "region": [None if d in (5, 6) else 0.01 for d in range(20)],
        "score": [0.1] * 20,
    }
    svg = lines_svg(
        keys,
        series,
        title="PSI of the most drifted features",
        ylabel="PSI",
        label="PSI over run keys",
        statuses=statuses,
        guides={"0.1 moderate": 0.1, "0.25 major": 0.25},
    )
    root = _parse(svg)
    assert root.get("class") == "history-chart" and root.get("aria-label") == "PSI over run keys"
    drawn = _series(root)
    assert list(drawn) == ["age", "region", "score"]
    for k, (name, g) in enumerate(drawn.items()):
        assert g.get("fill") == LINE_COLOURS[k]
        dots = g.findall(f"{NS}circle")
        assert len(dots) == sum(v is not None for v in series[name])
        d = g.find(f"{NS}path").get("d", "")  # type: ignore[union-attr]
        assert d.count("M") == (2 if name == "region" else 1)  # a gap where a run has none
    xs = [float(c.get("cx", "nan")) for c in drawn["age"].findall(f"{NS}circle")]
    steps = [b - a for a, b in zip(xs, xs[1:], strict=False)]
    assert max(steps) - min(steps) < 0.02  # one run, one step
    (bands,) = [g for g in root.iter(f"{NS}g") if g.get("class") == "bands"]
    assert [r.get("fill") for r in bands] == [STATUS_COLOURS[s] for s in ("warn", "fail", "warn")]
    assert _legend(root) == ["age", "region", "score", "drift fail", "drift warn"]
    (guides,) = [g for g in root.iter(f"{NS}g") if g.get("class") == "guides"]
    assert [t.text for t in guides] == ["0.1 moderate", "0.25 major"]
    x_labels, x_title, y_labels, y_title = _axes(root)
    assert x_labels[0] == keys[0] and len(x_labels) <= MAX_TICKS and set(x_labels) <= set(keys)
    assert (x_title, y_title) == ("run key", "PSI")
    assert y_labels == ["0.0", "0.1", "0.2", "0.3"]  # one decimal count for all
    ys = _grid(root)  # a dot at 0.1 sits on the 0.1 grid line
    assert float(drawn["score"].find(f"{NS}circle").get("cy", "nan")) == pytest.approx(ys[1])  # type: ignore[union-attr]


def test_line_ticks_are_round_numbers_or_percentages() -> None:
    rows = lines_svg(["a", "b"], {"rows in": [1000, 1030]}, title="t", ylabel="rows", label="l")
    assert _axes(_parse(rows))[2] == ["0", "200", "400", "600", "800", "1,000"]
    share = lines_svg(["a"], {"q": [0.0107]}, title="t", ylabel="s", label="l", percent=True)
    assert _axes(_parse(share))[2] == ["0.0%", "0.2%", "0.4%", "0.6%", "0.8%", "1.0%"]
    zeros = lines_svg(["a"], {"q": [0.0]}, title="t", ylabel="s", label="l", percent=True)
    assert _axes(_parse(zeros))[2][0] == "0.0%"
    big = lines_svg(["a"], {"rows": [48_000_000]}, title="t", ylabel="rows", label="l")
    assert _axes(_parse(big))[2] == [
        "0",
        "10,000,000",
        "20,000,000",
        "30,000,000",
        "40,000,000",
        "50,000,000",
    ]


def history_rows(runs: int = 30) -> list[dict[str, Any]]:
    """Rows as `pipelines.monitoring.history` writes them: some drifted, one gap."""
    return [
        {
            "run_key": f"2026-11-{d:02d}",
            "model": "churn",
            "created_at": f"2026-11-{d:02d}T02:00:00Z",
            "rows_in": 1_000 + 10 * d,
            "rows_quarantined": d % 3,
            "quarantine_share": (d % 3) / 1_000,
            "score_mean": 0.4 + 0.002 * d,
            "drift_status": "fail" if d == 12 else "warn" if d % 5 == 0 else "ok",
            "flagged_features": "age" if d % 5 == 0 else "",
            "score_psi": 0.05 * (d % 4),
            "psi_age": 0.02 * d,
            "psi_region": None if d == 7 else 0.01 * (d % 7),
            "estimated_auc": 0.8,
            "realized_auc": 0.78 if d < runs - 3 else None,
        }
        for d in range(1, runs + 1)
    ]


def test_rendering_a_drift_section_and_a_history_page_never_imports_matplotlib() -> None:
    code = (
        "import sys\n"
        "from pipelines.reports.html import render_html\n"
        "from pipelines.reports.history_page import render_history_html\n"
        "from tests.reports.test_drift_report import _report, monitoring_block\n"
        "from tests.reports.test_history_charts_svg import history_rows\n"
        "page = render_html(_report(monitoring_block()))\n"
        "history = render_history_html(history_rows(), features=['age', 'region'])\n"
        "assert page.count('<svg class=\"drift-chart\"') == 7, page\n"
        "assert history.count('<svg class=\"history-chart\"') == 5, history\n"
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_the_history_page_labels_each_chart_for_a_screen_reader() -> None:
    page = render_history_html(history_rows(), features=["age", "region"])
    labels = re.findall(r'<svg class="history-chart" role="img" aria-label="([^"]+)"', page)
    assert labels == [
        "Rows in per run over run keys",
        "Quarantined share over run keys",
        "Mean score over run keys",
        "PSI of the most drifted features over run keys",
        "Estimated and realized performance over run keys",
    ]
    assert "<img" not in page and "data:image" not in page
    for svg in re.findall(r'<svg class="history-chart".*?</svg>', page, re.S):
        _parse(svg)


@pytest.mark.skipif(not shutil.which("chromium"), reason="headless chromium not installed")
def test_the_browser_draws_the_history_charts_readably(tmp_path: Path) -> None:
    page = render_history_html(history_rows(), features=["age", "region"])
    seen = chromium_probe(page, tmp_path)
    assert [s["name"] for s in seen] == [
        "Rows in per run",
        "Quarantined share",
        "Mean score",
        "PSI of the most drifted features",
        "Estimated and realized performance",
    ]
    for s in seen:
        assert_readable(s)
