"""The challenger (shadow) model, scored in the champion's pass: the same rows, read once.

The challenger scores exactly the rows the champion scored, in the same order, so its part lines
up row by row with the champion's; a row it cannot take (a column it types differently, a missing
value it refuses) gets a null score and is counted, never dropped. Its scores are published under
their own part kind and never as the run's scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.data.contract import Contract, prepare_batch
from pipelines.errors import ConfigError
from pipelines.model.artifact import LoadedModel
from pipelines.run.scoring import (
    MissingValuesRefused,
    ScoreTarget,
    constant,
    missing_rows,
    output_columns,
    score_chunk,
    score_target,
)

PART_KIND = "challenger"


@dataclass(frozen=True)
class Challenger:
    model: LoadedModel
    contract: Contract
    target: ScoreTarget


def challenger_target(model: LoadedModel, champion: ScoreTarget) -> ScoreTarget:
    """The challenger's `score` means what the champion's does: P(the same positive class)."""
    if {str(c) for c in model.classes} != set(champion.classes):
        raise ConfigError(
            f"the challenger {model.name} has classes {[str(c) for c in model.classes]}, the "
            f"champion {list(champion.classes)}: their scores cannot be compared",
            where="model.challenger",
            fix="use a challenger trained for the same classes",
        )
    return score_target(model.classes, champion.positive_class)


def score_challenger(ch: Challenger, raw: pd.DataFrame, run_key: str) -> tuple[pa.Table, int]:
    """The challenger's scores for `raw` (the champion's scored rows, as read), in order, and how
    many of them it could not score (null)."""
    frame, reasons = prepare_batch(raw, ch.contract)
    usable = reasons == ""
    if usable.any():
        usable &= ~_refused(ch, frame, usable)
    table = _scored(ch, frame, usable, run_key)
    return table, int((~usable).sum())


def _refused(ch: Challenger, frame: pd.DataFrame, usable: np.ndarray) -> np.ndarray:
    """Rows with a missing value, if the challenger refuses missing values; else none."""
    nan = missing_rows(frame, ch.contract) & usable
    if not nan.any():
        return nan
    try:  # one row with a missing value tells whether the model takes them
        score_chunk(ch.model, frame.loc[nan].iloc[:1], ch.contract, "", ch.target)
    except MissingValuesRefused:
        return nan
    return np.zeros(len(frame), dtype=bool)


def _scored(ch: Challenger, frame: pd.DataFrame, usable: np.ndarray, run_key: str) -> pa.Table:
    """`score_chunk` on the usable rows, widened back to every row with nulls elsewhere."""
    if usable.all():
        return score_chunk(ch.model, frame, ch.contract, run_key, ch.target)
    n = len(frame)
    columns: dict[str, pa.Array] = {ch.contract.id_column: pa.array(frame[ch.contract.id_column])}
    part = score_chunk(ch.model, frame.loc[usable], ch.contract, run_key, ch.target)
    rows = pa.array(np.cumsum(usable) - 1, mask=~usable)  # null where the challenger did not score
    for name in output_columns(ch.target):
        if name in ("model_version", "run_key"):
            columns[name] = constant(ch.model.version if name == "model_version" else run_key, n)
        else:
            columns[name] = part.column(name).combine_chunks().take(rows)
    return pa.table(columns)
