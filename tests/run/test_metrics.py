"""The per-run metrics and score distribution files: from a real run's manifest and report."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable

from pipelines.config import Settings
from pipelines.run.compare import published_report
from pipelines.run.metrics import render_distribution, render_metrics, run_metrics
from pipelines.run.pipeline import run_pipeline
from pipelines.storage.open import open_store


def test_metrics_and_distribution_agree_with_the_published_run(
    make_cfg: Callable[..., Settings],
) -> None:
    cfg = make_cfg()
    manifest = run_pipeline(cfg)
    metrics = run_metrics(manifest)
    assert metrics["rows_in"] == 5_003 == metrics["rows_scored"] + metrics["rows_quarantined"]
    assert metrics["quarantine_share"] == round(manifest.counts.rows_quarantined / 5_003, 6)
    assert metrics["rows_per_s"] == manifest.rows_per_s > 0
    assert metrics["gate"] == {"input": "passed", "output": "passed"}
    assert json.loads(render_metrics(manifest)) == metrics

    report = published_report(open_store(cfg), manifest)
    assert report is not None
    rows = list(csv.DictReader(io.StringIO(render_distribution(report))))
    assert len(rows) == len(report["score_histogram"]["counts"])
    assert sum(int(r["rows"]) for r in rows) == manifest.counts.rows_scored
    assert float(rows[0]["score_from"]) == 0.0 and float(rows[-1]["score_to"]) == 1.0


def test_a_run_without_gates_says_so(make_cfg: Callable[..., Settings]) -> None:
    manifest = run_pipeline(make_cfg(**{"validation.enabled": False}))
    assert run_metrics(manifest)["gate"] == {"input": "off", "output": "off"}
