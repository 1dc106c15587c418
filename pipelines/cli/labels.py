"""`batchscore labels add`: delayed labels joined to published runs, and each run re-evaluated.

The work is `pipelines.outcomes.add.add_labels`; this module reads the flags and prints one
summary per run (or, with --json, the whole result).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import click

from pipelines.cli.options import SuggestingGroup, common_options, load_settings


@click.group(cls=SuggestingGroup)
def labels() -> None:
    """Labels that arrive after the scores: join them to published runs by ID.

    \b
    Examples:
      batchscore labels add --labels data/score_labels.parquet --run-key 2026-11-23
      batchscore labels add --labels chargebacks.csv --from 2026-11-01 --to 2026-11-30
    """


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expects a date YYYY-MM-DD, got {value!r}", ctx, param) from None


@labels.command()
@common_options
@click.option(
    "--labels",
    "labels_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="the label file (Parquet or CSV)",
)
@click.option("--id-column", "label_id_column", metavar="NAME", help="its ID column")
@click.option("--label-column", "label_column", metavar="NAME", help="its label column")
@click.option("--run-key", "label_run_key", metavar="KEY", help="the run the labels are for")
@click.option("--from", "date_from", metavar="DATE", callback=_date, help="runs dated from DATE")
@click.option("--to", "date_to", metavar="DATE", callback=_date, help="runs dated up to DATE")
@click.option("--output", metavar="URI", help="where runs are published (output.uri)")
@click.option("--model", "model_name", metavar="NAME", help="only this model's runs")
@click.option("--json", "as_json", is_flag=True, help="print JSON, for machines")
def add(**options: Any) -> None:
    """Join a label delivery to the published scores of runs, and re-evaluate those runs.

    Each delivery is stored beside the run (the run itself is never modified); adding the same
    file twice changes nothing. A run's evaluation (labels/evaluation.json and .html) is
    recomputed from all its deliveries. Without --run-key or --from/--to, every published run.

    \b
    Examples:
      batchscore labels add --labels data/score_labels.parquet --run-key 2026-11-23
      batchscore labels add --labels late.csv --id-column customer --label-column churned \\
        --from 2026-11-01 --to 2026-11-07 --output s3://scores/churn
    """
    from pipelines.outcomes.add import add_labels
    from pipelines.publish import keys
    from pipelines.storage.open import open_store

    if options["label_run_key"] and (options["date_from"] or options["date_to"]):
        raise click.UsageError("give either --run-key or --from/--to, not both")
    fixed = {
        f"labels.{key}": (options[name], f"--{key.replace('_', '-')} {options[name]}")
        for name, key in (("label_id_column", "id_column"), ("label_column", "label_column"))
        if options[name] is not None
    }
    cfg = load_settings(options, fixed)
    result = add_labels(
        open_store(cfg),
        keys,
        options["labels_file"],
        cfg.labels,
        model=options["model_name"],
        run_key=options["label_run_key"],
        date_from=options["date_from"],
        date_to=options["date_to"],
        segments=tuple(cfg.monitoring.segments),
    )
    if options["as_json"]:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo("\n".join(summary_lines(result)))


def summary_lines(result: dict[str, Any]) -> list[str]:
    """What a delivery held, then per run: stored or not, coverage, the realized metrics."""
    c = result["counts"]
    lines = [
        f"{result['file']}: {c.get('rows_read', 0):,} rows; unknown IDs "
        f"{c.get('unknown_id_rows', 0):,}, duplicate rows {c.get('duplicate_rows', 0):,}, "
        f"IDs with conflicting labels {c.get('conflicting_ids', 0):,}, no label "
        f"{c.get('missing_label_rows', 0):,}, unusable IDs {c.get('invalid_id_rows', 0):,}"
    ]
    for r in result["runs"]:
        e, rc = r["evaluation"], r["counts"]
        lines.append(
            f"run {r['run']}: {r['status']} ({r['rows_joined']:,} rows joined, "
            f"{rc.get('out_of_class_rows', 0):,} outside the model's classes); "
            f"labelled {e['labelled']:,} of {e['rows_scored']:,} ({_pct(e['coverage'])}) "
            f"from {e['deliveries']} delivery(ies), {e['conflicting_ids']:,} conflicting"
        )
        metrics = "  ".join(
            f"{k}={e[k]:.4f}" for k in ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy",
                                        "precision", "recall", "ece")
            if e.get(k) is not None
        )  # fmt: skip
        if metrics:
            lines.append(f"  realized   {metrics}")
        if ch := e.get("challenger"):
            lines.append(f"  challenger {_challenger_line(ch)}")
        if (est := e.get("estimated")) and est.get("auc") is not None:
            lines.append(f"  estimated  roc_auc={est['auc']:.4f}  accuracy={est['accuracy']:.4f}")
        if e.get("html"):
            lines.append(f"  evaluation {e['html']}")
    return lines


def _challenger_line(ch: dict[str, Any]) -> str:
    """The challenger's realized metrics on the same labelled rows (less those it left unscored)."""
    values = "  ".join(
        f"{k}={ch[k]:.4f}" for k in ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy",
                                     "precision", "recall", "ece")
        if ch.get(k) is not None
    )  # fmt: skip
    model = ch.get("model") or {}
    return (
        f"{values or 'no metrics'}  ({model.get('name')} {model.get('version')}: "
        f"{ch['rows']:,} rows, {ch['unscored']:,} unscored)"
    )


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{value:.2%}"
