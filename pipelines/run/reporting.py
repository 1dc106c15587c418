"""A run's quality report: built from the manifest and the shards, staged with the run's parts.

Failed and dry runs publish nothing, but a person still wants their report: it is kept on local
disk and, for a failed run, uploaded beside the run where operators can reach it.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.config import Settings
from pipelines.publish.keys import failed_report_key, report_key
from pipelines.publish.manifest import PartInfo, RunManifest
from pipelines.publish.parts import stage_part
from pipelines.run.plan import RunPlan, ShardResult
from pipelines.storage.base import ObjectStore

log = logging.getLogger(__name__)
HTML, JSON = "quality.html", "quality.json"  # the report's two files


def write_reports(
    store: ObjectStore, plan: RunPlan, manifest: RunManifest, results: list[ShardResult]
) -> list[PartInfo]:
    """Stage the report's files with the run's parts; they are published by the same commit."""
    parts = []
    with tempfile.TemporaryDirectory(prefix="batchscore-report-") as tmp:
        for name, body in render_report(run_report(manifest, results)).items():
            key = report_key(plan.staging_prefix, name)
            path = store.local_path(key) or Path(tmp) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            parts.append(stage_part(store, path, key, "report", None, None))
    return parts


def run_report(manifest: RunManifest, results: list[ShardResult]) -> dict[str, Any]:
    """Everything a person (HTML) or a machine (JSON) needs to judge this run."""
    from pipelines.reports.build import build_report

    reasons: Counter[str] = Counter()
    for r in results:
        reasons.update(r.quarantine_reasons)
    c = manifest.counts
    return build_report(
        run_key=manifest.run_key,
        model_name=manifest.model.name,
        model_version=manifest.model.version,
        input_path=manifest.input.path,
        rows_in=c.rows_in,
        rows_scored=c.rows_scored,
        rows_quarantined=c.rows_quarantined,
        input_verdict=manifest.quality.get("input"),
        output_verdict=manifest.quality.get("output"),
        score_histogram=np.sum([r.histogram for r in results], axis=0).astype(int).tolist(),
        quarantine_reasons=dict(reasons.most_common(50)),
        timings=manifest.timings,
        status="dry run" if manifest.dry_run else None,
        scores=manifest.scores,
        input_version={
            "sha256": manifest.input.sha256,
            "git_rev": manifest.input.git_rev,
            "dvc_md5": manifest.input.dvc_md5,
        },
        rows_per_s=manifest.rows_per_s,  # the run's one rate (`plan.rows_per_s`)
        attempt_id=manifest.attempt_id,
        monitoring=manifest.monitoring,
        challenger=manifest.challenger,
        estimated_performance=manifest.estimated_performance,
    )


def render_report(report: dict[str, Any]) -> dict[str, bytes]:
    """The report for machines (JSON) and for people (HTML), by file name."""
    from pipelines.reports.build import render_json
    from pipelines.reports.html import render_html

    return {JSON: render_json(report).encode(), HTML: render_html(report).encode()}


def save_local_report(cfg: Settings, manifest: RunManifest, html: bytes, kind: str) -> Path:
    """Failed and dry runs publish nothing, but a person still wants their report: keep it here."""
    folder = cfg.root / "reports" / kind
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{manifest.model.name}-{manifest.run_key}-{manifest.attempt_id}.html"
    path.write_bytes(html)
    return path


def upload_failed_report(
    store: ObjectStore, manifest: RunManifest, files: dict[str, bytes]
) -> str | None:
    """Put a failed run's report where its operators can reach it: the worker's disk may not be.

    Best effort: the gate's verdict is the error to show, not a failure to upload its report.
    """
    keys = {
        name: failed_report_key(manifest.model.name, manifest.run_key, manifest.attempt_id, name)
        for name in files
    }
    try:
        for name, body in files.items():
            store.put_bytes(keys[name], body)
    except Exception:
        log.warning("could not upload the failed run's report", exc_info=True)
        return None
    return store.url(keys[HTML])
