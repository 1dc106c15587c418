"""`batchscore baseline`: the drift baseline of a user's own model, from its training data."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from pipelines.cli.options import SuggestingCommand, common_options, load_settings
from pipelines.errors import InputDataError, SchemaMismatchError

log = logging.getLogger("batchscore")


def read_frame(path: Path) -> pd.DataFrame:
    """The whole training file (Parquet or CSV by suffix) as a frame, or one clear error."""
    if not path.is_file():
        raise InputDataError(f"training data {path} not found", fix="pass --data FILE")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pandas()
    except Exception as exc:  # corrupt, truncated, not that format
        raise InputDataError(
            f"cannot read {path.name}: {type(exc).__name__}: {exc}",
            where=str(path),
            fix="pass a readable Parquet or CSV file",
        ) from None
    raise InputDataError(
        f"--data {path} is neither .parquet nor .csv", fix="export the data as Parquet or CSV"
    )


def _check_columns(frame: pd.DataFrame, needed: list[str], what: str, path: Path) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise SchemaMismatchError(
            f"the training data lacks {what} {missing}",
            where=str(path),
            fix=f"pass data that has them; it has {list(frame.columns)}",
        )


def _labels(frame: pd.DataFrame, column: str, classes: tuple[Any, ...], path: Path) -> np.ndarray:
    """The label column as text; values outside the model's classes are refused."""
    raw = frame[column]
    if raw.isna().any():
        raise InputDataError(
            f"label column {column!r} has {int(raw.isna().sum())} missing value(s)",
            where=str(path),
            fix="drop unlabelled rows, or leave out --label-column",
        )
    text = raw.astype(str).to_numpy()
    known = {str(c) for c in classes}
    strange = sorted(set(text) - known)
    if strange:
        raise InputDataError(
            f"label column {column!r} holds {strange[:5]}, which are not the model's classes "
            f"{sorted(known)}",
            where=str(path),
            fix="pass the column holding the true class, or leave out --label-column",
        )
    return text


def _scores(model: Any, x: pd.DataFrame, chunk: int, positive: int | None) -> np.ndarray:
    """The score as a run publishes it, in chunks (bounded memory beyond the frame)."""
    parts = []
    for start in range(0, len(x), chunk):
        try:
            proba = model.estimator.predict_proba(x.iloc[start : start + chunk])
        except ValueError as exc:
            raise SchemaMismatchError(
                f"the model rejected the training data: {exc}",
                fix="pass the data in the form the model was trained on",
            ) from None
        parts.append(proba[:, positive] if positive is not None else proba.max(axis=1))
    return np.concatenate(parts) if parts else np.zeros(0)


def make_baseline(
    cfg: Any, options: dict[str, Any], frame: pd.DataFrame
) -> tuple[Any, dict[str, Any]]:
    """Load the model as a run does, profile `frame`, write the baseline; return it + a summary."""
    from pipelines.config import card_path_for
    from pipelines.model.artifact import load_model
    from pipelines.monitoring.baseline import baseline_path_for, write_baseline
    from pipelines.monitoring.build import build_baseline
    from pipelines.run.scoring import score_target

    path: Path = options["data"]
    model = load_model(
        cfg.model.path,
        pinned_sha256=cfg.model.sha256,
        card_path=cfg.model.card or card_path_for(cfg.model.path),
        trusted_types=cfg.model.trusted_types,
    )
    names = [f.name for f in model.features]
    _check_columns(frame, names, "the model's feature column(s)", path)
    kinds = {f.name: f.kind for f in model.features if f.kind in ("numeric", "categorical")}
    label = options.get("label_column")
    if label:
        _check_columns(frame, [label], "the label column", path)
    elif cfg.train.label_column in frame.columns and cfg.train.label_column not in names:
        label = cfg.train.label_column
    segments = list(options.get("segments") or ())
    if segments:
        _check_columns(frame, segments, "the segment column(s)", path)
    else:
        segments = [c for c in cfg.monitoring.segments if c in frame.columns]
    target = score_target(model.classes, cfg.model.positive_class)
    x = frame.loc[:, names]
    score = _scores(model, x, cfg.score.chunk_size, target.positive_index)
    positive = labels = None
    if target.kind == "binary":
        # the predicted class is the argmax, which takes the first class on a tie
        positive = score > 0.5 if target.positive_index == 1 else score >= 0.5
        if label:
            labels = _labels(frame, label, model.classes, path)
    settings = cfg.monitoring.model_copy(update={"segments": segments})
    built = build_baseline(
        x,
        kinds,
        score=score,
        labels=labels,
        positive=positive,
        segments=frame.loc[:, segments] if segments else None,
        settings=settings,
        positive_label=target.positive_class,
    )
    out = options.get("out") or cfg.monitoring.baseline or baseline_path_for(cfg.model.path)
    written = write_baseline(built, out)
    perf = built.performance or {}
    summary = {"rows": built.rows, "features": len(built.features), "segments": segments}
    summary.update({k: perf[k] for k in ("auc", "accuracy", "ece", "calibrated") if k in perf})
    return written, summary


@click.command(cls=SuggestingCommand)
@common_options
@click.option(
    "--data",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="the model's training (or held-out) data, Parquet or CSV",
)
@click.option("--model", metavar="FILE", help="model .skops file (model.path)")
@click.option("--model-sha256", metavar="SHA", help="the model file's pinned sha256")
@click.option("--card", metavar="FILE", help="model card JSON (model.card)")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="where to write it (default: monitoring.baseline, else <model>.baseline.json beside it)",
)
@click.option(
    "--label-column",
    metavar="NAME",
    help="true labels: adds AUC, accuracy and calibration (default: train.label_column if present)",
)
@click.option(
    "--segment",
    "segments",
    multiple=True,
    metavar="COLUMN",
    help="a segment column, repeatable (default: monitoring.segments found in the data)",
)
def baseline(**options: Any) -> None:
    """Write the drift baseline of a model: its training data's profile and score distribution.

    Feature kinds come from the model card, else from the data's types (numbers: numeric; text,
    bools, categories: categorical). The data is scored with the model (verified against its
    sha256 first) for the score distribution; with labels, a performance block is added. A run
    finds the baseline beside the model with no further setting.

    \b
    Examples:
      batchscore baseline --data train.parquet --model model.skops
      batchscore baseline --data train.csv --model m.skops --model-sha256 SHA \\
        --label-column churned --segment region --out m.baseline.json
    """
    cfg = load_settings(options)
    written, summary = make_baseline(cfg, options, read_frame(options["data"]))
    log.info("baseline written: %s", written.path)
    click.echo(json.dumps({"baseline": str(written.path), "sha256": written.sha256, **summary}))
