"""What the commands share: --params/--set/-v, the flags that are params keys, and loading them.

A flag such as `--input` is a shortcut for one params key (`FLAG_KEYS`); the config is told where
each value came from, so a bad one is reported as `(from --set score.chunk_size=abc)`. Paths typed
here are relative to the current folder, whatever params file is read.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from pipelines.config import PARAMS_ENV, Settings, load_config

F = TypeVar("F", bound=Callable[..., Any])

# Each flag that is a shortcut for a params key: the click parameter name -> the key.
FLAG_KEYS = {
    "input": "data.path",
    "id_column": "data.id_column",
    "model": "model.path",
    "model_sha256": "model.sha256",
    "card": "model.card",
    "output": "output.uri",
    "run_key": "run.key",
    "chunk_size": "score.chunk_size",
    "workers": "score.workers",
    "input_suite": "validation.input_suite",
    "rows": "generate.score_rows",
    "train_rows": "generate.train_rows",
    "seed": "generate.seed",
    "rev": "data.rev",
    "repo": "data.repo",
}
# Switches: the click parameter name -> (key, the value it sets when given).
SWITCH_KEYS = {
    "no_validation": ("validation.enabled", False),
    "overwrite": ("run.overwrite", True),
    "dry_run": ("run.dry_run", True),
}


class SuggestingCommand(click.Command):
    """A command that answers a mistyped flag with the closest ones (`--inptu` -> `--input`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            if not exc.possibilities:
                raise
            close = " or ".join(exc.possibilities[:2])
            hint = f"No such option {exc.option_name}. Did you mean {close}?"
            raise click.NoSuchOption(exc.option_name, hint, ctx=ctx) from None


class SuggestingGroup(SuggestingCommand, click.Group):
    """A group that answers a mistyped command with the closest ones (`scroe` -> `score`);
    its subcommands answer mistyped flags the same way."""

    command_class = SuggestingCommand

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            known = self.list_commands(ctx)
            close = difflib.get_close_matches(name, known, n=2, cutoff=0.5)
            hint = (
                f"Did you mean {' or '.join(close)}?" if close else f"Commands: {', '.join(known)}."
            )
            ctx.fail(f"No such command {name!r}. {hint}")
        return super().resolve_command(ctx, args)


def _check_sets(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> Any:
    """A `--set` without `=` is a usage error (exit 2), caught before anything is loaded."""
    for item in values:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(
                f"expects KEY=VALUE, e.g. score.chunk_size=5000; got {item!r}", ctx, param
            )
    return values


def _verbose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        logging.getLogger().setLevel(logging.DEBUG)


def common_options(func: F) -> F:
    """--params, --set and -v on a command (they follow the command name: `score --set ...`)."""
    options = [
        click.option(
            "--params",
            type=click.Path(dir_okay=False, path_type=Path),
            help=f"params file (default: ${PARAMS_ENV}, else ./params.yaml if there is one, "
            "else built-in defaults)",
        ),
        click.option(
            "--set",
            "sets",
            multiple=True,
            metavar="KEY=VALUE",
            callback=_check_sets,
            help="override a param, repeatable: --set score.chunk_size=5000",
        ),
        click.option(
            "-v",
            "--verbose",
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_verbose,
            help="debug logging",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def scoring_options(dry_run_flag: bool) -> Callable[[F], F]:
    """The flags `score` and `validate` share, each a params key (FLAG_KEYS, SWITCH_KEYS)."""

    def decorate(func: F) -> F:
        options = [
            click.option("--input", metavar="FILE", help="input Parquet/CSV file (data.path)"),
            click.option(
                "--id-column", metavar="NAME", help="the input's ID column (data.id_column)"
            ),
            click.option(
                "--model",
                metavar="FILE|URI",
                help="model .skops file (model.path), or a registry model models:/NAME@ALIAS "
                "or models:/NAME/VERSION (model.uri)",
            ),
            click.option("--model-sha256", metavar="SHA", help="the model file's pinned sha256"),
            click.option("--card", metavar="FILE", help="model card JSON (model.card)"),
            click.option("--output", metavar="URI", help="file://folder or s3://bucket/prefix"),
            click.option("--run-key", metavar="KEY", help="partition key (default: today, UTC)"),
            click.option("--chunk-size", type=int, help="rows per predict_proba call"),
            click.option("--workers", type=int, help="processes (0 = all cores)"),
            click.option("--input-suite", metavar="FILE", help="GX suite JSON for the input"),
            click.option("--no-validation", is_flag=True, help="skip the GX gates"),
            click.option("--overwrite", is_flag=True, help="replace a published run"),
            click.option(
                "--summary",
                type=click.Path(dir_okay=False, path_type=Path),
                help="also write the run manifest here (JSON)",
            ),
            click.option(
                "--metrics",
                type=click.Path(dir_okay=False, path_type=Path),
                help="also write the run's few numbers here (JSON, for `dvc metrics`)",
            ),
            click.option(
                "--distribution",
                type=click.Path(dir_okay=False, path_type=Path),
                help="also write the score histogram here (CSV, for `dvc plots`)",
            ),
        ]
        if dry_run_flag:
            options.append(click.option("--dry-run", is_flag=True, help="publish nothing"))
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def load_settings(
    options: Mapping[str, Any], fixed: Mapping[str, tuple[Any, str]] | None = None
) -> Settings:
    """The config for a command: its params file, then env, `--set`, flags, then `fixed`
    (key -> (value, why), e.g. `validate` is always a dry run).

    Every override carries where it came from (`--set k=v`, `--input x`) for error messages;
    relative paths in them are relative to the current folder.
    """
    overrides: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for item in options.get("sets") or ():
        key, _, value = item.partition("=")
        overrides[key.strip()], origins[key.strip()] = value, f"--set {item}"
    for name, key in FLAG_KEYS.items():
        if (value := options.get(name)) is not None:
            if name == "model" and str(value).startswith("models:/"):
                key = "model.uri"  # a registry model, pinned at plan time
            overrides[key], origins[key] = value, f"--{name.replace('_', '-')} {value}"
    for name, (key, value) in SWITCH_KEYS.items():
        if options.get(name):
            overrides[key], origins[key] = value, f"--{name.replace('_', '-')}"
    for key, (value, why) in (fixed or {}).items():
        overrides[key], origins[key] = value, why
    return load_config(options.get("params"), overrides, origins=origins, relative_to=Path.cwd())


def check_writable(path: Path, flag: str) -> None:
    """Refuse an output file we could not write, before a run publishes anything."""
    from pipelines.errors import BatchscoreError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        with open(path, "a"):
            pass
        if not existed:
            path.unlink()
    except OSError as exc:
        raise BatchscoreError(
            f"{flag} {path} cannot be written ({exc.strerror or exc})",
            fix="give a path in a folder you can write to; nothing was run",
        ) from None
