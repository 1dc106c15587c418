"""`batchscore model register|list|promote|rollback|history`: the MLflow registry, by alias.

The work is `pipelines.registry`; this module reads the registry settings, says which registry
it talks to (on stderr, secrets redacted, so --json output stays clean) and formats results.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pipelines.cli.options import SuggestingGroup, common_options, load_settings
from pipelines.cli.runs import _table
from pipelines.config import Settings
from pipelines.registry.settings import RegistrySettings

F = TypeVar("F", bound=Callable[..., Any])
QUIET_LOGGERS = ("mlflow", "alembic", "skops")


@click.group(cls=SuggestingGroup)
def model() -> None:
    """Model versions and aliases in the MLflow registry: register, list, promote, roll back.

    The registry is $MLFLOW_TRACKING_URI, else registry.uri in params.yaml, else the embedded
    sqlite:///<params folder>/mlflow.db (artifacts in mlartifacts/ beside it); --registry-uri
    overrides all three. Score a registry model with model.uri: models:/NAME@ALIAS.

    \b
    Examples:
      batchscore model register models/model.skops --name churn
      batchscore model promote churn 2 --reason "better AUC on November"
      batchscore model rollback churn
      batchscore model history churn
    """
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _registry_options(func: F) -> F:
    func = click.option(
        "--registry-uri",
        metavar="URI",
        help="MLflow tracking URI, e.g. http://mlflow:5000 (wins over $MLFLOW_TRACKING_URI "
        "and registry.uri)",
    )(func)
    return common_options(func)


def registry_settings(
    options: dict[str, Any], cfg: Settings | None = None
) -> tuple[RegistrySettings, Path]:
    """The registry settings and params folder for a command; prints which registry it is.

    --registry-uri acts as $MLFLOW_TRACKING_URI would, for this process only.
    """
    from pipelines.registry.client import REGISTRY_ENV, TRACKING_ENV, endpoint_for

    cfg = cfg or load_settings(options)
    if options.get("registry_uri"):
        os.environ[TRACKING_ENV] = options["registry_uri"]
        os.environ.pop(REGISTRY_ENV, None)
    settings = cfg.registry
    click.echo(f"registry: {endpoint_for(settings, cfg.root).shown}", err=True)
    return settings, cfg.root


@model.command()
@_registry_options
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="registered model name, e.g. churn")
@click.option("--description", help="what this version is (shown in `model list`)")
@click.option("--card", type=click.Path(dir_okay=False, path_type=Path), help="model card JSON")
@click.option(
    "--baseline", type=click.Path(dir_okay=False, path_type=Path), help="monitoring baseline"
)
@click.option("--trust", multiple=True, metavar="TYPE", help="also trust this type (repeatable)")
def register(path: Path, **options: Any) -> None:
    """Register a skops model file as a new version of NAME.

    Its card (<stem>.card.json) and baseline (<stem>.baseline.json) beside it are uploaded
    with it; sha256, scikit-learn version and training-data hash become version tags. A
    pickle, or a skops file with types nobody trusted (model.trusted_types, --trust), is
    refused. Registering the same bytes again prints the existing version.

    \b
    Examples:
      batchscore model register models/model.skops --name churn
      batchscore model register m.skops --name churn --description "Nov retrain"
    """
    from pipelines.model.artifact import DEFAULT_TRUSTED_TYPES
    from pipelines.registry.versions import register as register_version

    cfg = load_settings(options)
    settings, root = registry_settings(options, cfg)
    trusted = [*DEFAULT_TRUSTED_TYPES, *cfg.model.trusted_types, *options["trust"]]
    info = register_version(
        path.resolve(),
        options["name"],
        settings,
        root,
        card=options["card"],
        baseline=options["baseline"],
        description=options["description"],
        trusted_types=trusted,
    )
    sidecars = ", ".join(f for f in (info.card, info.baseline) if f) or "no card or baseline"
    click.echo(f"{info.name} version {info.version}: {info.file} sha256={info.sha256} ({sidecars})")
    click.echo(f"promote it: batchscore model promote {info.name} {info.version}")


@model.command("list")
@_registry_options
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="print JSON, for machines")
def list_(name: str, **options: Any) -> None:
    """List the versions of NAME, oldest first, with the aliases each holds.

    \b
    Examples:
      batchscore model list churn
      batchscore model list churn --json
    """
    from pipelines.registry.versions import list_versions

    settings, root = registry_settings(options)
    found = list_versions(name, settings, root)
    if options["as_json"]:
        click.echo(json.dumps([v.to_dict() for v in found], indent=2))
        return
    header = ["VERSION", "ALIASES", "CREATED", "SHA256", "SKLEARN", "FILE", "DESCRIPTION"]
    rows = [
        [str(v.version), ",".join(v.aliases) or "-", v.created_at, (v.sha256 or "?")[:16]]
        + [v.sklearn_version or "?", v.file or "?", v.description or ""]
        for v in found
    ]
    click.echo(_table(header, rows, numeric={0}) if rows else f"{name} has no versions yet")


@model.command()
@_registry_options
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@click.option("--alias", default="champion", show_default=True, help="the alias to move")
@click.option("--reason", metavar="TEXT", help="why (kept in the history)")
@click.option(
    "--expect-current",
    type=click.IntRange(min=1),
    metavar="VERSION",
    help="only move the alias if it still points at VERSION (safe in scripts)",
)
def promote(name: str, version: int, **options: Any) -> None:
    """Point ALIAS (default champion) of NAME at VERSION, and record the move.

    \b
    Examples:
      batchscore model promote churn 3
      batchscore model promote churn 4 --alias challenger --reason "shadow for a week"
    """
    from pipelines.registry.aliases import promote as promote_alias

    settings, root = registry_settings(options)
    expected = options["expect_current"]
    move = promote_alias(
        name,
        version,
        settings,
        root,
        alias=options["alias"],
        reason=options["reason"],
        expected_from="any" if expected is None else expected,
    )
    if move is None:
        click.echo(f"{options['alias']} of {name} already points at version {version}")
        return
    click.echo(_moved(name, move))


@model.command()
@_registry_options
@click.argument("name")
@click.option("--alias", default="champion", show_default=True, help="the alias to move back")
@click.option("--reason", metavar="TEXT", help="why (kept in the history)")
def rollback(name: str, **options: Any) -> None:
    """Point ALIAS (default champion) of NAME back at its previous holder.

    Each rollback undoes one earlier promotion, per `model history`.

    \b
    Examples:
      batchscore model rollback churn --reason "scores drifted after v4"
    """
    from pipelines.registry.aliases import rollback as rollback_alias

    settings, root = registry_settings(options)
    move = rollback_alias(name, settings, root, alias=options["alias"], reason=options["reason"])
    click.echo(_moved(name, move))


@model.command()
@_registry_options
@click.argument("name")
@click.option("--alias", help="only this alias's moves")
@click.option("--json", "as_json", is_flag=True, help="print JSON, for machines")
def history(name: str, **options: Any) -> None:
    """Every alias move of NAME: when, who, from, to, why.

    \b
    Examples:
      batchscore model history churn
      batchscore model history churn --alias champion --json
    """
    from pipelines.registry.aliases import history as read_history

    settings, root = registry_settings(options)
    moves = read_history(name, settings, root, alias=options["alias"])
    if options["as_json"]:
        click.echo(json.dumps([m.to_dict() for m in moves], indent=2))
        return
    header = ["SEQ", "AT", "WHO", "ALIAS", "ACTION", "FROM", "TO", "WHY"]
    rows = [
        [str(m.seq), m.at, m.who, m.alias, m.action, _v(m.from_), _v(m.to), m.why or ""]
        for m in moves
    ]
    click.echo(_table(header, rows, numeric={0}) if rows else f"no alias moves of {name} yet")


def _moved(name: str, move: Any) -> str:
    return (
        f"{move.alias} of {name}: {_v(move.from_)} -> {_v(move.to)} "
        f"({move.action} #{move.seq} by {move.who} at {move.at})"
    )


def _v(version: int | None) -> str:
    return "-" if version is None else f"v{version}"
