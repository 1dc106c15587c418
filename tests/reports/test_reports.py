"""Quality reports from real verdicts: the run's numbers, self-contained, escaped."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.data.demo import make_frame
from pipelines.quality.gate import StreamingGate
from pipelines.quality.suite import load_suite
from pipelines.quality.verdict import merge_verdict
from pipelines.reports.build import build_report, reason_rows, render_json
from pipelines.reports.html import render_html
from pipelines.reports.style import TIMINGS
from tests.paths import ROOT


class _Page(HTMLParser):
    """Collects text, tags and every URL-bearing attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)

    def handle_data(self, data):
        if data.strip():
            self.text.append(data.strip())


class _Tables(HTMLParser):
    """The text of every table row, cell by cell, under the title of its section (h2)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[list[str]]] = {}
        self.titles: dict[str, str] = {}  # row header text -> its title attribute
        self._h2: list[str] | None = None
        self._section = ""
        self._cell: list[str] | None = None
        self._title: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "h2":
            self._h2 = []
        elif tag == "tr":
            self.rows.setdefault(self._section, []).append([])
        elif tag in ("th", "td"):
            self._cell = []
            self._title = dict(attrs).get("title")

    def handle_endtag(self, tag):
        if tag == "h2" and self._h2 is not None:
            self._section, self._h2 = " ".join(self._h2).split(" ")[0], None
        elif tag in ("th", "td") and self._cell is not None:
            text = " ".join(self._cell)
            self.rows[self._section][-1].append(text)
            if self._title:
                self.titles[text] = self._title
            self._cell = None

    def handle_data(self, data):
        for sink in (self._h2, self._cell):
            if sink is not None and data.strip():
                sink.append(data.strip())


def _tables(html: str) -> dict[str, list[list[str]]]:
    """Table rows by section: "Run", "Score", "Quarantine", "Timings", "Input", "Output"."""
    parser = _Tables()
    parser.feed(html)
    return parser.rows


def _verdict(suite_path: Path, frames, max_q: float = 0.05, id_col: str = "customer_id"):
    suite = load_suite(suite_path)
    gate = StreamingGate(suite, id_col, fail_fast=False)
    for df in frames:
        gate.check_batch(df)
    return merge_verdict(suite, [gate.finish()], [gate.id_hashes()], max_q)


_TIMINGS = {
    "read": 0.52,
    "prepare": 0.02,
    "validate": 0.41,
    "predict": 1.54,
    "write": 0.03,
    "upload": 0.01,
    "total": 2.58,
    "plan": 3.61,
    "verdict": 0.01,
    "wall": 6.22,
}


@pytest.fixture(scope="module")
def report() -> dict:
    df = make_frame(2_000, 5, with_label=False)
    df.loc[:59, "plan"] = "gold"  # 3% quarantined
    df.loc[0, "age"] = 500  # a second reason on a quarantined row: still 66 rows
    df.loc[60:64, "age"] = np.inf
    df.loc[65, "region"] = "<script>alert(1)</script>"  # must be escaped, never run
    df.loc[100, "customer_id"] = 7  # duplicate ID: the input gate fails
    inp = _verdict(ROOT / "validation" / "input_suite.json", [df])
    rng = np.random.default_rng(0)
    n = 1_934
    scores = rng.beta(2, 5, n)
    out_frame = pd.DataFrame(
        {
            "id": np.arange(n, dtype="int64"),
            "score": scores,
            "predicted_class": (scores > 0.5).astype("int64"),
            "model_version": pd.Categorical(["1.0.0"] * n),
            "run_key": pd.Categorical(["2026-11-23"] * n),
        }
    )
    out = _verdict(ROOT / "pipelines" / "quality" / "output_suite.json", [out_frame], 0.0, "id")
    counts, edges = np.histogram(scores, bins=20, range=(0, 1))
    return build_report(
        run_key="2026-11-23",
        model_name="churn-hgb",
        model_version="1.0.0",
        input_path="data/score.parquet",
        input_version={
            "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "git_rev": "abc1234",
            "dvc_md5": "0123456789abcdef",
        },
        rows_per_s=48_267.0,
        attempt_id="20261123T020000-1a2b3c4d",
        scores={"kind": "binary", "classes": ["0", "1"], "score_is": "P(1)", "positive_class": "1"},
        rows_in=inp.rows_in,
        rows_scored=n,
        rows_quarantined=inp.rows_quarantined,
        input_verdict=inp.to_json(),
        output_verdict=out.to_json(),
        score_histogram=counts.tolist(),
        histogram_edges=edges.tolist(),
        quarantine_reasons=inp.reason_counts,
        timings=_TIMINGS,
    )


def test_json_report_is_strict_and_complete(report):
    data = json.loads(render_json(report))
    assert data["status"] == "failed"
    assert data["rows_in"] == 2_000 and data["rows_quarantined"] == 66
    assert data["input_verdict"]["success"] is False
    assert data["output_verdict"]["success"] is True
    assert sum(data["score_histogram"]["counts"]) == 1_934
    assert len(data["score_histogram"]["bin_edges"]) == 21


def test_html_shows_the_numbers_and_failures(report):
    page = _Page()
    page.feed(render_html(report))
    text = "\n".join(page.text)
    for expected in (
        "2026-11-23",
        "churn-hgb",
        "2,000",  # rows in
        "1,934",  # scored
        "66",  # quarantined
        "3.30%",
        "data/score.parquet",
        "abc1234",
        "Why the gate failed",
        "expect_column_values_to_be_unique(customer_id): 1 duplicated value(s) on 2 rows",
        "expect_column_values_to_be_in_set(plan, {basic, plus, premium})",
        "gold",  # an example failing value
        "exact-merged",
        "gx-per-batch",
        "59 of 59 expectations",
        "batchscore_output",
        "Score distribution",
        "plan",
    ):
        assert expected in text, expected
    assert "svg" in page.tags  # the histogram is drawn inline


def test_html_is_self_contained_and_escaped(report):
    page = _Page()
    html = render_html(report)
    page.feed(html)
    assert "script" not in page.tags
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not [u for u in page.urls if not u.startswith("#")]  # no external assets
    assert "<link" not in html and "@import" not in html


def test_passing_report_renders_without_failures():
    df = make_frame(500, 6, with_label=False)
    inp = _verdict(ROOT / "validation" / "input_suite.json", [df])
    report = build_report(
        run_key="r1",
        model_name="m",
        model_version="1",
        input_path="in.parquet",
        rows_in=500,
        rows_scored=500,
        rows_quarantined=0,
        input_verdict=inp.to_json(),
        output_verdict=None,
    )
    html = render_html(report)
    assert report["status"] == "passed"
    assert "Why the gate failed" not in html and "No row was quarantined." in html


def _today_callers_report(**overrides) -> dict:
    """A report built the way run/reporting.py calls build_report today."""
    kwargs = {
        "run_key": "rpt1",
        "model_name": "churn-hgb",
        "model_version": "d39f9ea34f1f",
        "input_path": "/work/data/score.parquet",
        "rows_in": 300_000,
        "rows_scored": 300_000,
        "rows_quarantined": 0,
        "input_verdict": None,
        "output_verdict": None,
        "scores": {
            "kind": "binary",
            "classes": ["0", "1"],
            "score_is": "P(1)",
            "positive_class": "1",
        },
        "input_version": {
            "sha256": "42809de0",
            "git_rev": "18cac412",
            "dvc_md5": None,
            "rows_per_s": 48267.0,
            "attempt_id": "20261202T011617-76be5550",
        },
    }
    return build_report(**(kwargs | overrides))


def test_run_table_holds_run_facts_under_their_names():
    report = _today_callers_report()
    assert report["rows_per_s"] == 48267.0 and report["attempt_id"] == "20261202T011617-76be5550"
    assert report["input_version"] == {"sha256": "42809de0", "git_rev": "18cac412"}
    run = _tables(render_html(report))["Run"]
    assert [row[0] for row in run] == [
        "Run key",
        "Input file",
        "Input sha256",
        "Git revision",
        "Model",
        "Score means",
        "Classes",
        "Rate",
        "Attempt",
        "Generated",
    ]  # no "Input rows_per_s", and no "DVC md5" row without a value
    assert all(len(row) == 2 and row[1] for row in run), run  # no empty rows
    facts = dict(run)
    assert facts["Input sha256"] == "42809de0" and facts["Git revision"] == "18cac412"
    assert facts["Rate"] == "48,267 rows/s"
    assert facts["Model"] == "churn-hgb d39f9ea34f1f"
    assert facts["Score means"] == 'P(1): probability of class "1"'
    assert facts["Classes"] == "0, 1"


def test_run_table_of_the_fixture_names_every_input_fact(report):
    facts = dict(_tables(render_html(report))["Run"])
    assert facts["Input file"] == "data/score.parquet"
    assert facts["DVC md5"] == "0123456789abcdef"
    assert facts["Attempt"] == "20261123T020000-1a2b3c4d"
    assert not [
        k for k in facts if k.startswith("Input ") and k not in ("Input file", "Input sha256")
    ]


def _tick_labels(svg: str) -> list[str]:
    return [html_unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text).strip()


def _chart(page: str) -> str:
    match = re.search(r'<svg class="chart".*?</svg>', page, flags=re.S)
    assert match, "no score chart on the page"
    return match.group(0)


def test_histogram_is_a_chart_with_round_ticks_and_axis_titles(report):
    svg = _chart(render_html(report))
    labels = _tick_labels(svg)
    assert "score" in labels and "rows" in labels  # axis titles
    x = [float(t) for t in labels[: labels.index("score")]]
    assert x == [round(0.1 * i, 1) for i in range(11)]  # 0, 0.1, ..., 1 over the [0, 1] bins
    y = [int(t.replace(",", "")) for t in labels[labels.index("score") + 1 : labels.index("rows")]]
    steps = {b - a for a, b in zip(y, y[1:], strict=False)}
    assert y[0] == 0 and len(steps) == 1, y
    step = steps.pop()
    magnitude = 10 ** (len(str(step)) - 1)
    assert step % magnitude == 0 and step // magnitude in (1, 2, 5), y  # round: 1, 2, 5 x 10^k
    counts = report["score_histogram"]["counts"]
    assert y[-1] <= max(counts) < y[-1] + step


def test_histogram_svg_is_deterministic_small_and_inline(report):
    first = render_html(report)
    assert first == render_html(report)  # same report, same bytes (element ids included)
    svg = _chart(first)
    assert len(svg.encode()) < 30_000
    assert "<metadata" not in svg and "dc:date" not in svg and "<?xml" not in first
    assert "<style" not in svg  # a <style> would apply to the whole page once inlined
    hrefs = re.findall(r'href="([^"]*)"', svg)
    assert all(h.startswith("#") for h in hrefs)  # only references inside the page


def test_importing_the_reports_does_not_import_matplotlib():
    code = (
        "import sys, pipelines.reports.build, pipelines.reports.html, pipelines.reports.charts;"
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_the_page_renders_without_matplotlib(report, monkeypatch):
    for name in ("matplotlib", "matplotlib.ticker", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)  # any import of matplotlib fails
    page = render_html(report)
    assert '<svg class="chart"' in page and "needs matplotlib" not in page  # drawn by hand
    bins = _tables(page)["Score"]
    assert bins[0] == ["score", "rows"] and len(bins) == 21
    assert sum(int(row[1].replace(",", "")) for row in bins[1:]) == 1_934


def test_timings_say_what_they_measure(report):
    rows = _tables(render_html(report))["Timings"]
    assert rows[0] == ["Step", "Seconds", "What it measures"]
    steps = [row[0] for row in rows[1:]]
    assert steps == [
        "plan",
        "read",
        "prepare",
        "validate",
        "predict",
        "write",
        "upload",
        "total",
        "verdict",
        "wall",
    ]  # the run's order, not the dict's
    meaning = {row[0]: row[2] for row in rows[1:]}
    assert all(meaning[k] == TIMINGS[k] for k in steps)
    assert "summed over all shards and workers" in meaning["total"]
    assert "elapsed time, from the start of planning" in meaning["wall"]
    assert dict((row[0], row[1]) for row in rows[1:])["wall"] == "6.220 s"
    page = render_html(report)
    assert f'title="{TIMINGS["total"]}"' in page  # also a tooltip on the row
    assert "When shards run in parallel, total is\nlarger than wall" in page


def test_an_unknown_timing_is_listed_last_without_a_meaning():
    rows = _tables(render_html(_today_callers_report(timings={"zeta": 1, "wall": 2})))["Timings"]
    assert [row[0] for row in rows[1:]] == ["wall", "zeta"] and rows[2][2] == ""


def test_quarantine_reasons_are_counted_per_row_and_reason():
    report = _today_callers_report(
        rows_quarantined=5, quarantine_reasons={"a; b": 3, "a": 2, "(other combinations)": 0}
    )
    assert report["quarantine_reasons"] == {"a": 5, "b": 3, "(other combinations)": 0}
    assert reason_rows(report["quarantine_reasons"]) == report["quarantine_reasons"]  # idempotent
    page = render_html(report)
    rows = _tables(page)["Quarantine"]
    assert rows[0][:3] == ["Reason", "Rows", "Share of quarantined rows"]
    assert [r[:3] for r in rows[1:]] == [
        ["a", "5", "100.0%"],
        ["b", "3", "60.0%"],
        ["(other combinations)", "0", "0.0%"],
    ]
    assert "A row is counted once for each reason it has" in page


def test_a_gate_verdicts_joined_reasons_count_each_reason(report):
    rows = {r[0]: r[1:3] for r in _tables(render_html(report))["Quarantine"][1:]}
    assert rows == {  # row 0 has two reasons: it counts under both; shares are of 66 rows
        "expect_column_values_to_be_in_set(plan, {basic, plus, premium})": ["60", "90.9%"],
        "expect_column_values_to_be_between(age, 18..120)": ["6", "9.1%"],
        "expect_column_values_to_be_in_set(region, {north, south, east, west, central})": [
            "1",
            "1.5%",
        ],
    }
    assert not [k for k in report["quarantine_reasons"] if "; " in k]


@pytest.mark.skipif(not shutil.which("chromium"), reason="headless chromium not installed")
def test_render_with_headless_chromium(report, tmp_path):
    """Renders the real page in a browser; with SAVE_REPORT_SCREENSHOT=1 updates the docs image."""
    page = tmp_path / "quality.html"
    page.write_text(render_html(report), encoding="utf-8")
    png = tmp_path / "quality.png"
    subprocess.run(
        [
            shutil.which("chromium"),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1280,1700",
            f"--screenshot={png}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert png.stat().st_size > 10_000
    if os.environ.get("SAVE_REPORT_SCREENSHOT"):
        target = ROOT / "docs" / "img" / "quality-report.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, target)
