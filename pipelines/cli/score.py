"""`batchscore score` and `batchscore validate`: one run of the pipeline, and its dry run.

The run itself is `pipelines.run.pipeline.run_pipeline` (the DAG calls the same steps); this
module only checks the extra output files can be written, runs it, and says what happened.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from pipelines.cli.options import (
    SuggestingCommand,
    check_writable,
    common_options,
    load_settings,
    scoring_options,
)
from pipelines.config import Settings

log = logging.getLogger("batchscore")
EXTRA_FILES = {"summary": "--summary", "metrics": "--metrics", "distribution": "--distribution"}


@click.command(cls=SuggestingCommand)
@common_options
@scoring_options(dry_run_flag=True)
def score(**options: Any) -> None:
    """Validate, score and publish one run: the main job.

    Reads the input in bounded batches, quarantines bad rows with a reason, scores the rest in
    chunks, checks the output and publishes scores, quarantine, the quality report and the
    manifest to --output, all or nothing. Without a params file, built-in defaults fill in
    everything the flags do not say.

    \b
    Examples:
      batchscore score
      batchscore score --input data.parquet --model model.skops --model-sha256 SHA \\
        --id-column patient_id --output file://out
      batchscore score --output s3://bucket/scores --workers 0 --run-key 2026-11-23
    """
    _run(options, {})


@click.command(cls=SuggestingCommand)
@common_options
@scoring_options(dry_run_flag=False)
def validate(**options: Any) -> None:
    """Validate and score without publishing: a dry run of `score`.

    Shows what the quality gate does to the input (quarantined rows, failed checks) and writes
    the report on local disk (reports/dry-run/); nothing goes to the output store.

    \b
    Examples:
      batchscore validate --input suspicious.csv
      batchscore validate --input-suite my_suite.json --summary reports/validate.json
    """
    _run(options, {"run.dry_run": (True, "`validate`, always a dry run")})


def _run(options: dict[str, Any], fixed: dict[str, tuple[Any, str]]) -> None:
    from pipelines.run.pipeline import run_pipeline

    cfg = load_settings(options, fixed)
    files: dict[str, Path] = {name: options[name] for name in EXTRA_FILES if options.get(name)}
    for name, path in files.items():
        check_writable(path, EXTRA_FILES[name])  # before the run: afterwards it must not fail
    manifest = run_pipeline(cfg)
    for name, path in files.items():
        try:
            _write_extra(cfg, manifest, name, path)
        except Exception as exc:  # the run is published: a side file must not fail it
            log.warning("run done, but %s %s was not written: %s", EXTRA_FILES[name], path, exc)
    c = manifest.counts
    where = "not published (dry run)" if manifest.dry_run else f"published to {cfg.output.uri}"
    if manifest.shards_reused:
        where += f"; {manifest.shards_reused} of {manifest.shards} shard(s) reused from the "
        where += "interrupted attempt"
    click.echo(
        f"run {manifest.run_key}: {c.rows_in:,} rows in, {c.rows_scored:,} scored, "
        f"{c.rows_quarantined:,} quarantined, {manifest.rows_per_s:,.0f} rows/s; {where}"
    )
    for part in manifest.parts:
        if part.kind == "report" and part.key.endswith(".html") and not manifest.dry_run:
            click.echo(f"quality report: {cfg.output.uri}/{part.key}")


def _write_extra(cfg: Settings, manifest: Any, name: str, path: Path) -> None:
    """One of the files a run can leave beside it: manifest, metrics, score distribution."""
    if name == "summary":
        path.write_text(manifest.model_dump_json(indent=2) + "\n")
        return
    from pipelines.run.metrics import render_distribution, render_metrics

    if name == "metrics":
        path.write_text(render_metrics(manifest))
        return
    from pipelines.run.compare import published_report
    from pipelines.storage.open import open_store

    report = published_report(open_store(cfg), manifest)
    if report is None:
        raise FileNotFoundError("the run's JSON report is not published (a dry run?)")
    path.write_text(render_distribution(report))
