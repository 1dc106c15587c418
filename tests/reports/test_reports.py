"""Quality reports from real verdicts: the run's numbers, self-contained, escaped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.data.demo import make_frame
from pipelines.quality.gate import StreamingGate
from pipelines.quality.suite import load_suite
from pipelines.quality.verdict import merge_verdict
from pipelines.reports.build import build_report, render_json
from pipelines.reports.html import render_html
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


def _verdict(suite_path: Path, frames, max_q: float = 0.05, id_col: str = "customer_id"):
    suite = load_suite(suite_path)
    gate = StreamingGate(suite, id_col, fail_fast=False)
    for df in frames:
        gate.check_batch(df)
    return merge_verdict(suite, [gate.finish()], [gate.id_hashes()], max_q)


@pytest.fixture(scope="module")
def report() -> dict:
    df = make_frame(2_000, 5, with_label=False)
    df.loc[:59, "plan"] = "gold"  # 3% quarantined
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
    out = _verdict(ROOT / "validation" / "output_suite.json", [out_frame], 0.0, "id")
    counts, edges = np.histogram(scores, bins=20, range=(0, 1))
    return build_report(
        run_key="2026-11-23",
        model_name="churn-hgb",
        model_version="1.0.0",
        input_path="data/score.parquet",
        input_version={"git_rev": "abc1234", "dvc_md5": "0123456789abcdef"},
        rows_in=inp.rows_in,
        rows_scored=n,
        rows_quarantined=inp.rows_quarantined,
        input_verdict=inp.to_json(),
        output_verdict=out.to_json(),
        score_histogram=counts.tolist(),
        histogram_edges=edges.tolist(),
        quarantine_reasons=inp.reason_counts,
        timings={"plan": 0.42, "score": 1.7, "publish": 0.2},
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
