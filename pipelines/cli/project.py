"""`batchscore init` and `batchscore suite init`: a project of one's own, from a model and data.

Exports `init` (a command) and `suite` (a group with `init`) for the CLI to register. Neither
reads params.yaml: they write it. A refusal (a missing file, an unknown ID column, a file that
exists) prints `batchscore: error: ...` with where and how to fix it, and exits 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import click

from pipelines.cli.options import SuggestingCommand, SuggestingGroup
from pipelines.errors import BatchscoreError
from pipelines.project.init import init_project, write_starter_suite
from pipelines.project.sample import DEFAULT_SAMPLE_ROWS

_SAMPLE_HELP = "rows read from the start of the data to derive the suite from"


class Refused(click.ClickException):
    """A BatchscoreError as click reports it: our message, exit code 2 (as the rest of the CLI)."""

    exit_code = 2

    def __init__(self, error: BatchscoreError) -> None:
        super().__init__(str(error))
        self.error = error

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"batchscore: error: {self.format_message()}", file=file, err=file is None)


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except BatchscoreError as exc:
        raise Refused(exc) from exc


@click.command("init", cls=SuggestingCommand)
@click.argument(
    "directory", default=".", metavar="[DIR]", type=click.Path(path_type=Path, file_okay=False)
)
@click.option(
    "--model",
    "model_path",
    required=True,
    metavar="FILE",
    type=click.Path(path_type=Path),
    help="the fitted classifier (.skops); its sha256 is pinned in params.yaml",
)
@click.option(
    "--data",
    "data_path",
    required=True,
    metavar="FILE",
    type=click.Path(path_type=Path),
    help="a sample of the data to score (Parquet or CSV)",
)
@click.option(
    "--id-column", metavar="COLUMN", help="the column that identifies a row (default: guessed)"
)
@click.option(
    "--output", metavar="URI", help="where runs are published (default: file://out inside DIR)"
)
@click.option(
    "--sample-rows",
    type=click.IntRange(min=1),
    metavar="N",
    default=DEFAULT_SAMPLE_ROWS,
    show_default=True,
    help=_SAMPLE_HELP,
)
@click.option(
    "--trusted-type",
    "trusted_types",
    multiple=True,
    metavar="TYPE",
    help="a type skops may load beyond the defaults (repeatable)",
)
@click.option("--force", is_flag=True, help="overwrite DIR/params.yaml and its suite")
def init(
    directory: Path,
    model_path: Path,
    data_path: Path,
    id_column: str | None,
    output: str | None,
    sample_rows: int,
    trusted_types: tuple[str, ...],
    force: bool,
) -> None:
    """Start a project: DIR/params.yaml and a starter input suite for your model and data.

    The model's sha256 is pinned, paths are relative to DIR, and the input suite
    (DIR/validation/input_suite.json) is derived from a sample of the data. The ID column,
    unless given, is the one column the model does not use that is named like an ID and unique
    in the sample.

    \b
    Examples:
      batchscore init churn --model model.skops --data customers.parquet
      batchscore init . --model model.skops --data export.csv --id-column record_id
    """
    with _refusals():
        project = init_project(
            directory,
            model_path,
            data_path,
            id_column,
            output=output,
            sample_rows=sample_rows,
            trusted_types=list(trusted_types),
            force=force,
        )
    how = "guessed; pass --id-column to choose" if project.id_guessed else "given"
    click.echo(f"wrote {project.params} (ID column {project.id_column!r}: {how})")
    click.echo(f"wrote {project.suite} ({project.expectations} expectations from the sample)")
    click.echo(f"next: {project.next_command}")


@click.group("suite", cls=SuggestingGroup)
def suite() -> None:
    """GX expectation suites for your data."""


@suite.command("init")
@click.option(
    "--from",
    "data_path",
    required=True,
    metavar="FILE",
    type=click.Path(path_type=Path),
    help="the data to derive the suite from (Parquet or CSV)",
)
@click.option("--id-column", metavar="COLUMN", help="the ID column: checked not null and unique")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    default="suite.json",
    show_default=True,
    help="the suite file to write",
)
@click.option(
    "--sample-rows",
    type=click.IntRange(min=1),
    metavar="N",
    default=DEFAULT_SAMPLE_ROWS,
    show_default=True,
    help=_SAMPLE_HELP,
)
@click.option("--force", is_flag=True, help="overwrite --out if it exists")
def suite_init(
    data_path: Path, id_column: str | None, out: Path, sample_rows: int, force: bool
) -> None:
    """Write a starter input suite derived from a sample of the data; it passes on that sample.

    Columns and types, not-null where the sample has no missing value, numeric ranges from the
    0.1%..99.9% quantiles widened by 10%, value sets for low-cardinality text, the ID not null
    and unique, at least one row. Each expectation's notes say how it was derived: review them.

    \b
    Examples:
      batchscore suite init --from customers.parquet --id-column customer_id
      batchscore suite init --from export.csv --out validation/input_suite.json --force
    """
    with _refusals():
        raw = write_starter_suite(data_path, out, id_column, sample_rows=sample_rows, force=force)
    rows = raw["meta"]["sample_rows"]
    click.echo(f"wrote {out}: {len(raw['expectations'])} expectations from {rows:,} sample rows")
    if id_column is None:
        click.echo("no --id-column: the suite checks no ID for nulls and duplicates")
    click.echo(f"next: review its bounds, then set validation.input_suite: {out} in params.yaml")
