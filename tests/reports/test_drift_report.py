"""The report's drift section from a hand-built monitoring block: numbers, order, escaping, and
charts a person can read (inline SVG, parsed here and drawn by headless Chromium)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.reports.build import build_report, render_json
from pipelines.reports.drift import BASELINE_HOWTO, TOP_CHARTS
from pipelines.reports.html import render_html
from tests.reports.test_drift_charts_svg import assert_readable, chromium_probe

EVIL = "<script>alert(1)</script>"


def _numeric(name: str, status: str, psi: float, shift: float, seed: int) -> dict[str, Any]:
    """A numeric feature over 10 baseline quantile bins (open outer edges), current shifted."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1, 20_000)
    edges = np.quantile(base, np.linspace(0, 1, 11))
    current = np.histogram(rng.normal(shift, 1, 5_000), bins=[-np.inf, *edges[1:-1], np.inf])[0]
    return {
        "name": name,
        "kind": "numeric",
        "status": status,
        "psi": psi,
        "js": psi / 3,
        "wasserstein": abs(shift),
        "ks": abs(shift) / 2.5,
        "linf": None,
        "unseen_share": None,
        "unseen": {},
        "missing_rate": 0.02,
        "baseline_missing_rate": 0.01,
        "missing_delta": 0.01,
        "p_value": 1e-9 if status != "ok" else 0.6,
        "histogram": {
            "edges": [None, *edges[1:-1].tolist(), None],
            "categories": None,
            "baseline": [0.1] * 10,
            "current": (current / current.sum()).tolist(),
        },
    }


def _categorical(name: str, status: str, psi: float, unseen: dict[str, int]) -> dict[str, Any]:
    cats = ["north", "south", "east", "west", "central"]
    return {
        "name": name,
        "kind": "categorical",
        "status": status,
        "psi": psi,
        "js": psi / 4,
        "wasserstein": None,
        "ks": None,
        "linf": 0.1,
        "unseen_share": 0.0246,
        "unseen": unseen,
        "missing_rate": 0.0,
        "baseline_missing_rate": 0.0,
        "missing_delta": 0.0,
        "p_value": 0.003,
        "histogram": {
            "edges": None,
            "categories": cats,
            "baseline": [0.2] * 5,
            "current": [0.3, 0.15, 0.2, 0.2, 0.15],
        },
    }


def monitoring_block() -> dict[str, Any]:
    """The monitoring contract as the drift helper writes it: 7 features, most drifted first."""
    features = [
        _numeric("age", "fail", 0.4123, 0.8, 1),
        _categorical("region", "warn", 0.1532, {"atlantis": 1234, EVIL: 12}),
        _numeric("income", "warn", 0.1201, 0.4, 2),
        _numeric("tenure", "ok", 0.0412, 0.15, 3),
        _numeric("bmi", "ok", 0.0105, 0.05, 4),
        _categorical("plan", "ok", 0.0033, {}),
        _numeric("<b>x</b>", "ok", 0.0011, 0.0, 5),
    ]
    score = _numeric("score", "warn", 0.1804, 0.3, 6)
    return {
        "status": "fail",
        "baseline": {"sha256": "ab" * 32, "rows": 48_000, "path": "models/churn.baseline.json"},
        "rows": 50_000,
        "decision": {"rule": "holm", "flagged": ["age", "region", "income"], "alpha": 0.01},
        "features": features,
        "score": score,
        "segments": [
            {
                "column": "region",
                "status": "warn",
                "ratio": 1.8431,
                "threshold": 1.5,
                "values": [
                    {
                        "value": "north",
                        "rows": 15_000,
                        "share": 0.3,
                        "baseline_share": 0.2,
                        "score_mean": 0.4421,
                        "baseline_score_mean": 0.3907,
                        "positive_rate": 0.47,
                        "baseline_positive_rate": 0.39,
                    },
                    {
                        "value": EVIL,
                        "rows": 1,
                        "share": 0.00002,
                        "baseline_share": None,
                        "score_mean": 0.2,
                        "baseline_score_mean": None,
                        "positive_rate": None,
                        "baseline_positive_rate": None,
                    },
                ],
            }
        ],
    }


def _report(monitoring: Any = None, **extra: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "run_key": "2026-12-01",
        "model_name": "churn",
        "model_version": "1.0.0",
        "input_path": "data/score.parquet",
        "rows_in": 50_000,
        "rows_scored": 50_000,
        "rows_quarantined": 0,
        "input_verdict": None,
        "output_verdict": None,
        "score_histogram": [2_500] * 20,
    }
    if monitoring is not None:
        kwargs["monitoring"] = monitoring
    return build_report(**kwargs, **extra)


class _Tables(HTMLParser):
    """Rows of every <table> by its class, the text of <p>, every drift chart's <figure> and
    <svg> attributes (in page order), and whether the page has any <img>."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.figures: list[dict[str, str]] = []
        self.charts: list[dict[str, str]] = []
        self.has_img = False
        self.paragraphs: list[str] = []
        self._table = ""
        self._cell: list[str] | None = None
        self._p: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table":
            self._table = a.get("class", "")
            self.tables.setdefault(self._table, [])
        elif tag == "tr":
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "figure":
            self.figures.append(a)
        elif tag == "svg" and a.get("class") == "drift-chart":
            self.charts.append(a)
        elif tag == "img":
            self.has_img = True
        elif tag == "p":
            self._p = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append(" ".join(self._cell))
            self._cell = None
        elif tag == "p" and self._p is not None:
            self.paragraphs.append(" ".join(self._p))
            self._p = None

    def handle_data(self, data: str) -> None:
        for sink in (self._cell, self._p):
            if sink is not None and data.strip():
                sink.append(data.strip())


def _parse(page: str) -> _Tables:
    parser = _Tables()
    parser.feed(page)
    return parser


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(_report(monitoring_block()))


def test_the_feature_table_lists_features_most_drifted_first_with_their_numbers(page: str) -> None:
    rows = _parse(page).tables["drift exp"]
    assert rows[0][:4] == ["Feature", "Kind", "Status", "PSI"] and rows[0][-1] == "Missing"
    names = [r[0] for r in rows[1:]]
    assert names == ["age", "region", "income", "tenure", "bmi", "plan", "<b>x</b>", "score"]
    by_name = {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    age = by_name["age"]
    assert (age["Kind"], age["Status"], age["PSI"]) == ("numeric", "fail", "0.4123")
    assert age["Wasserstein"] == "0.8" and age["KS"] == "0.32" and age["L-inf"] == "-"
    assert age["Missing"] == "2.00% vs 1.00% (+1.00 pp)"
    region = by_name["region"]
    assert (region["Status"], region["L-inf"], region["Unseen"]) == ("warn", "0.1", "0.0246")
    assert region["Wasserstein"] == "-" and region["p-value"] == "0.003"
    assert by_name["score"]["Kind"] == "model score" and by_name["score"]["PSI"] == "0.1804"


def test_the_section_says_the_status_what_was_compared_and_what_was_flagged(page: str) -> None:
    assert re.search(r'Drift against the baseline <span class="badge bad">fail</span>', page)
    summary = next(p for p in _parse(page).paragraphs if "rows of this run" in p)
    assert "50,000 rows of this run against the baseline" in summary
    assert "abababababab" in summary and "48,000 rows" in summary
    assert "models/churn.baseline.json" in summary and "7 feature(s) compared" in summary
    assert "Flagged: age , region , income" in summary and "holm" in summary
    assert "alpha 0.01" in summary


def test_unseen_categories_are_listed_most_rows_first_and_escaped(page: str) -> None:
    rows = _parse(page).tables["kv unseen"]
    assert rows == [
        ["Feature", "Category", "Rows"],
        ["region", "atlantis", "1,234"],
        ["region", EVIL, "12"],
    ]
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page


def test_segments_show_the_ratio_the_flag_and_each_value(page: str) -> None:
    parsed = _parse(page)
    line = next(p for p in parsed.paragraphs if "positive-rate ratio" in p)
    assert line.startswith("region warn") and "1.843" in line and "flagged above 1.5" in line
    rows = parsed.tables["kv segments"]
    assert rows[0] == ["Value", "Rows", "Share", "Baseline share", "Score mean"] + [
        "Baseline score mean",
        "Positive rate",
        "Baseline positive rate",
    ]
    assert rows[1] == [
        "north",
        "15,000",
        "30.00%",
        "20.00%",
        "0.4421",
        "0.3907",
        "47.00%",
        "39.00%",
    ]
    assert rows[2] == [EVIL, "1", "0.00%", "-", "0.2", "-", "-", "-"]


def test_no_monitoring_no_section_and_no_baseline_says_how_to_make_one() -> None:
    plain = render_html(_report())
    assert "Drift against the baseline" not in plain
    assert not _parse(plain).charts and not _parse(plain).has_img
    assert "monitoring" not in _report()
    message = "no baseline beside models/churn.skops"
    page = render_html(_report({"status": "no_baseline", "message": message}))
    parsed = _parse(page)
    (line,) = [p for p in parsed.paragraphs if "No drift check" in p]
    assert message in line and BASELINE_HOWTO in line
    assert BASELINE_HOWTO == "batchscore baseline --data TRAIN --model MODEL"
    assert not parsed.charts and not parsed.has_img and "drift exp" not in parsed.tables


def test_the_json_report_keeps_the_block_as_strict_json() -> None:
    block = monitoring_block()
    block["features"][0]["histogram"]["edges"][0] = float("-inf")  # as a profile may hold them
    block["features"][0]["psi"] = np.float64(0.4123)
    block["rows"] = np.int64(50_000)
    block["features"][1]["p_value"] = float("nan")
    data = json.loads(render_json(_report(block)))
    got = data["monitoring"]
    assert got["rows"] == 50_000 and got["features"][0]["psi"] == 0.4123
    assert got["features"][0]["histogram"]["edges"][0] is None
    assert got["features"][1]["p_value"] is None
    assert got["decision"] == block["decision"] and got["segments"] == block["segments"]
    assert got["features"][1]["unseen"] == {"atlantis": 1234, EVIL: 12}


def _svgs(page: str) -> list[ET.Element]:
    """Every drift chart of the page, parsed as XML (which raises on anything not well-formed)."""
    return [ET.fromstring(m) for m in re.findall(r'<svg class="drift-chart".*?</svg>', page, re.S)]


def test_charts_are_inline_svgs_for_the_top_features_and_the_score(page: str) -> None:
    parsed = _parse(page)
    names = ["age", "region", "income", "tenure", "bmi", "plan", "score"][: TOP_CHARTS + 1]
    assert [f["data-feature"] for f in parsed.figures] == names
    assert len(parsed.charts) == len(names) and not parsed.has_img  # no PNG left
    ns = "{http://www.w3.org/2000/svg}"
    for name, attrs, root in zip(names, parsed.charts, _svgs(page), strict=True):
        label = f"{name}: share of rows per bin, baseline vs this run"
        assert attrs["role"] == "img" and attrs["aria-label"] == label
        assert root.findtext(f"{ns}title") == label and root.get("viewBox") == "0 0 640 300"
        assert root.find(f".//{ns}style") is None and root.find(f".//{ns}script") is None
        texts = [t.text for t in root.iter(f"{ns}text")]
        assert "baseline" in texts and "this run" in texts and "share of rows" in texts
        shapes = [e for e in root.iter() if e.get("class") in ("baseline", "current")]
        assert {e.get("class") for e in shapes} == {"baseline", "current"}
    svg_text = "".join(re.findall(r'<svg class="drift-chart".*?</svg>', page, re.S))
    assert "href" not in svg_text and "data:" not in svg_text and "<script" not in svg_text
    assert 1_000 < len(svg_text) / len(names) < 12_000  # a few KB a chart
    report = _report(monitoring_block())
    assert render_html(report) == render_html(report)  # same numbers, same bytes


def test_a_chart_that_cannot_be_drawn_is_a_note_not_a_failed_report() -> None:
    block = monitoring_block()
    block["features"][0]["histogram"]["current"] = [0.5, 0.5]  # 2 shares for 10 bins
    page = render_html(_report(block))
    assert "No chart for <code>age</code>: baseline has 10 bins and this run 2" in page
    assert len(_parse(page).charts) == TOP_CHARTS  # the others are drawn


@pytest.mark.skipif(not shutil.which("chromium"), reason="headless chromium not installed")
def test_the_browser_draws_every_chart_of_a_sane_size_readable_and_not_blank(
    page: str, tmp_path: Path
) -> None:
    seen = chromium_probe(page, tmp_path)
    assert [s["name"] for s in seen] == [f["data-feature"] for f in _parse(page).figures]
    assert len(seen) == TOP_CHARTS + 1
    for s in seen:
        assert_readable(s)
        assert s["width"] <= 572  # CSS: 570 px (+ its border) scales the 640 px viewBox down


def test_importing_the_drift_and_history_pages_does_not_import_matplotlib() -> None:
    code = (
        "import sys, pipelines.reports.drift, pipelines.reports.drift_charts,"
        " pipelines.reports.history_page, pipelines.monitoring.history;"
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
