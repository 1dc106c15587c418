"""`batchscore monitor`: the history of the published runs as an HTML page, JSON and a CSV.

The manifests are read as JSON documents (not as `RunManifest`, which would drop the
`monitoring` and `estimated_performance` blocks the history is made of); the table is
`pipelines.monitoring.history`, the page `pipelines.reports.history_page`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from pipelines.cli.options import SuggestingCommand, common_options, load_settings
from pipelines.errors import StorageError
from pipelines.storage.base import ObjectStore, writing

DEFAULT_OUT = Path("reports/monitor")
FILES = ("history.html", "history.json", "history.csv")


@click.command(cls=SuggestingCommand)
@common_options
@click.option("--output", metavar="URI", help="where runs are published (output.uri)")
@click.option("--last", type=click.IntRange(min=1), metavar="N", help="only the N latest runs")
@click.option("--model", "model_name", metavar="NAME", help="only this model's runs")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="folder for history.html, history.json, history.csv",
)
def monitor(out_dir: Path, **options: Any) -> None:
    """Write the history of the published runs: one row per run (rows, quarantined share,
    score mean, drift status, PSI per feature), as a page with plots over run keys, as JSON,
    and as a CSV for `dvc plots show`.

    \b
    Examples:
      batchscore monitor
      batchscore monitor --output s3://scores/churn --last 30 --out reports/monitor
      dvc plots show reports/monitor/history.csv -x run_key -y quarantine_share
    """
    from pipelines.monitoring.history import feature_names, history_rows, to_csv, to_json
    from pipelines.reports.history_page import render_history_html
    from pipelines.storage.open import open_store

    cfg = load_settings(options)
    store, uri = open_store(cfg), cfg.output.uri
    manifests = published_manifests(store, options["model_name"])
    pick = {"model": options["model_name"], "last": options["last"]}
    kept = history_rows(manifests, **pick)
    wanted = {f"{r['model']}/{r['run_key']}" for r in kept if r["score_mean"] is None}
    reports = published_reports(store, manifests, wanted)
    realized = realized_metrics(store, manifests, kept, cfg.monitoring.performance.max_drop)
    rows = history_rows(manifests, reports=reports, realized=realized, **pick)
    bodies = {
        "history.html": render_history_html(rows, source=uri, features=feature_names(rows)),
        "history.json": to_json(rows, source=uri),
        "history.csv": to_csv(rows),
    }
    with writing(str(out_dir)):
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, body in bodies.items():
            (out_dir / name).write_text(body, encoding="utf-8")
    what = f"{len(rows)} run(s)" if rows else "no published runs"
    click.echo(f"history of {what} under {uri}:")
    for name in FILES:
        click.echo(f"  {out_dir / name}")


def realized_metrics(
    store: ObjectStore,
    manifests: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    max_drop: float,
) -> dict[str, dict[str, Any]]:
    """Per kept run ("MODEL/KEY"): realized AUC, PR AUC and label coverage once labels exist,
    and `performance_flag` when the realized or estimated AUC fell more than
    monitoring.performance.max_drop below the baseline's held-out AUC."""
    from pipelines.outcomes.estimate import performance_flags
    from pipelines.outcomes.evaluate import realized_for_run
    from pipelines.publish import keys

    by_run = {f"{(m.get('model') or {}).get('name')}/{m.get('run_key')}": m for m in manifests}
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        run = f"{row['model']}/{row['run_key']}"
        evaluation = realized_for_run(store, keys, row["model"], row["run_key"]) or {}
        metrics = evaluation.get("metrics") or {}
        estimated = (by_run.get(run) or {}).get("estimated_performance") or {}
        flags = performance_flags(estimated, metrics, estimated.get("baseline_auc"), max_drop)
        found = {"auc": metrics.get("roc_auc"), "pr_auc": metrics.get("pr_auc")}
        found["coverage"] = evaluation.get("coverage")
        if flags["flagged"]:
            found["performance_flag"] = "; ".join(flags["reasons"])
        if any(v is not None for v in found.values()):
            out[run] = {k: v for k, v in found.items() if v is not None}
    return out


def published_manifests(store: ObjectStore, model_name: str | None = None) -> list[dict[str, Any]]:
    """Every published run's manifest as a dict, as the store holds it (extra blocks kept)."""
    from pipelines.publish.keys import manifest_run

    found = []
    for key in store.list_keys(""):
        run = manifest_run(key)
        if run is None or model_name not in (None, run[0]):
            continue
        body = store.get_bytes(key)
        if body is None:  # replaced or deleted since the listing
            continue
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise StorageError(
                f"the manifest of run {run[0]}/{run[1]} is not JSON ({exc})",
                where=store.url(key),
                fix="re-publish the run (batchscore score --overwrite) or remove that manifest",
            ) from None
        found.append(doc)
    return found


def published_reports(
    store: ObjectStore, manifests: list[dict[str, Any]], runs: set[str]
) -> dict[str, dict[str, Any]]:
    """The JSON quality reports of `runs` ("MODEL/KEY"), for their score histograms. Best
    effort: a run whose report is missing or unreadable has no score mean, nothing fails."""
    out: dict[str, dict[str, Any]] = {}
    for m in manifests:
        run = f"{(m.get('model') or {}).get('name')}/{m.get('run_key')}"
        if run not in runs:
            continue
        key = next(
            (
                p.get("key")
                for p in m.get("parts") or []
                if p.get("kind") == "report" and str(p.get("key", "")).endswith(".json")
            ),
            None,
        )
        body = store.get_bytes(key) if key else None
        try:
            report = json.loads(body) if body else None
        except ValueError:
            report = None
        if isinstance(report, dict):
            out[run] = report
    return out
