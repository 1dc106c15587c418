"""`batchscore generate`, `train` and `pull`: the demo's data and model, and a pinned input."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from pipelines.cli.options import SuggestingCommand, common_options, load_settings

log = logging.getLogger("batchscore")


@click.command(cls=SuggestingCommand)
@common_options
@click.option("--rows", type=int, help="rows in the score set (generate.score_rows)")
@click.option("--train-rows", type=int, help="rows in the train set (generate.train_rows)")
@click.option("--seed", type=int, help="generator seed (generate.seed)")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write only a score set, to this file",
)
@click.option(
    "--labels",
    "labels_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write the score set's true labels here (generate.labels_path)",
)
def generate(**options: Any) -> None:
    """Write the seeded demo data: a labelled train set and an unlabelled score set.

    The score set's true labels go to a separate file (generate.labels_path, or --labels), as
    if they arrived a week later: `batchscore labels add --labels` joins them to a run. The same
    seed writes the same rows on any machine (generate.train_path, score_path).

    \b
    Examples:
      batchscore generate
      batchscore generate --rows 10000000 --out big.parquet
      batchscore generate --labels data/score_labels.parquet
    """
    from pipelines.data.demo import write_dataset

    g = load_settings(options).generate
    out: Path | None = options.get("out")
    labels: Path | None = options.get("labels_path") or getattr(g, "labels_path", None)
    if out:
        labels = options.get("labels_path")  # with --out, labels only when asked for
        write_dataset(out, g.score_rows, g.seed + 1, g.row_group_rows, False, labels_path=labels)
        log.info("wrote %s rows to %s", f"{g.score_rows:,}", out)
        return
    write_dataset(g.train_path, g.train_rows, g.seed, g.row_group_rows, with_label=True)
    # The score set is later, unlabelled data from the same population: new ids, another seed.
    write_dataset(
        g.score_path, g.score_rows, g.seed + 1, g.row_group_rows, False, 10_000_001, labels
    )
    log.info("wrote %s train rows to %s", f"{g.train_rows:,}", g.train_path)
    log.info("wrote %s score rows to %s", f"{g.score_rows:,}", g.score_path)
    if labels:
        log.info("wrote the score set's %s true labels to %s", f"{g.score_rows:,}", labels)


@click.command(cls=SuggestingCommand)
@common_options
def train(**options: Any) -> None:
    """Fit the demo model; write models/model.skops and its card (sha256, features, metrics).

    Reproducible to the byte: the same data and params give the same sha256.

    \b
    Examples:
      batchscore train
      batchscore train --set train.model=logreg --set model.path=models/logreg.skops
    """
    from pipelines.model.train import train_model

    card = train_model(load_settings(options))
    click.echo(json.dumps({"model": card["name"], "sha256": card["sha256"], **card["metrics"]}))


@click.command(cls=SuggestingCommand)
@common_options
@click.option("--rev", help="git revision that pins the data (data.rev)")
@click.option("--repo", help="git URL or path of the DVC repo (data.repo; default: this one)")
def pull(**options: Any) -> None:
    """Fetch the input at a pinned git revision with DVC, then check its md5 itself.

    \b
    Examples:
      batchscore pull --rev v1.2
      batchscore pull --rev 3f2a9c1 --repo https://github.com/acme/churn-data
    """
    from pipelines.data.pull import pull_input

    pulled = pull_input(load_settings(options))
    click.echo(json.dumps(pulled.as_dict(), indent=2))
