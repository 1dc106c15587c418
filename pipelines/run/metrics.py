"""A run's short metrics and score distribution, as files `dvc metrics` and `dvc plots` read.

The manifest is the whole truth of a run; these are its few numbers a person compares across runs
(`dvc metrics diff`), and the histogram `dvc plots show` draws. Pure functions; the CLI writes them.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from pipelines.publish.manifest import RunManifest
from pipelines.run.compare import suite_verdicts

DISTRIBUTION_FIELDS = ("score_from", "score_to", "rows")


def run_metrics(manifest: RunManifest) -> dict[str, Any]:
    """Rows in, scored, quarantined, the quarantined share, the rate and each gate's status."""
    counts = manifest.counts
    share = counts.rows_quarantined / counts.rows_in if counts.rows_in else 0.0
    gates = {name: v["verdict"] for name, v in suite_verdicts(manifest.quality).items()}
    return {
        "run_key": manifest.run_key,
        "rows_in": counts.rows_in,
        "rows_scored": counts.rows_scored,
        "rows_quarantined": counts.rows_quarantined,
        "quarantine_share": round(share, 6),
        "rows_per_s": manifest.rows_per_s,
        "gate": gates or {"input": "off", "output": "off"},
        "drift": (manifest.quality.get("drift") or {}).get("status", "not monitored"),
        "dry_run": manifest.dry_run,
    }


def render_metrics(manifest: RunManifest) -> str:
    """The metrics as stable JSON (sorted keys): one small file per run."""
    return json.dumps(run_metrics(manifest), indent=2, sort_keys=True) + "\n"


def render_distribution(report: dict[str, Any]) -> str:
    """The report's score histogram as CSV, one row per bin: what `dvc plots` draws."""
    hist = report.get("score_histogram") or {}
    edges, counts = list(hist.get("bin_edges") or []), list(hist.get("counts") or [])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(DISTRIBUTION_FIELDS)
    for i, rows in enumerate(counts):
        if i + 1 < len(edges):
            writer.writerow([f"{edges[i]:g}", f"{edges[i + 1]:g}", int(rows)])
    return out.getvalue()
