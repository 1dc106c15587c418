"""Scoring: one vectorized `predict_proba` per chunk, as an Arrow table ready to write.

`score_chunk` is pure (frame in, Arrow table out) and row-independent, so scores do not depend on
where chunk boundaries fall: they equal `model.predict_proba` on the same rows, exactly. The ID
column is published under the input's name for it (`data.id_column`), its values as read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import sklearn

from pipelines.data.contract import Contract
from pipelines.errors import ConfigError, ModelIntegrityError, SchemaMismatchError
from pipelines.model.artifact import LoadedModel

HISTOGRAM_BINS = 20
SUITE_ID = "id"  # what an output suite calls the ID column (see `suite_view`)


NAN_REASON = "missing value the model cannot take"


class MissingValuesRefused(SchemaMismatchError):
    """The model refused NaN (no imputer): the caller quarantines those rows, scores the rest."""


def missing_rows(frame: pd.DataFrame, contract: Contract) -> np.ndarray:
    """Rows with a missing value in any feature (what a model without an imputer refuses)."""
    return frame.loc[:, list(contract.features)].isna().any(axis=1).to_numpy()


@dataclass(frozen=True)
class ScoreTarget:
    """What the published `score` means, fixed at plan time and recorded in the manifest.

    Binary: `score` is the probability of `positive_class` (by default the model's second class,
    as scikit-learn orders them; set model.positive_class to name it, e.g. "churn" when the
    classes are ["churn", "stay"]). Multiclass: `score` is the probability of the predicted class
    and every class's probability is published as `proba_<class>`.
    """

    kind: str  # binary | multiclass
    classes: tuple[str, ...]  # as text, in the model's order
    positive_index: int | None  # binary only

    @property
    def positive_class(self) -> str | None:
        return None if self.positive_index is None else self.classes[self.positive_index]

    @property
    def proba_columns(self) -> tuple[str, ...]:
        return tuple(f"proba_{c}" for c in self.classes) if self.kind == "multiclass" else ()

    def describe(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "classes": list(self.classes),
            "score_is": f"P({self.positive_class})"
            if self.kind == "binary"
            else "P(predicted_class)",
            "positive_class": self.positive_class,
            "proba_columns": list(self.proba_columns),
        }


def score_target(classes: Sequence[object], positive_class: object | None) -> ScoreTarget:
    """The meaning of `score` for a model with these classes (see ScoreTarget)."""
    names = tuple(str(c) for c in classes)
    if len(names) < 2:
        raise ModelIntegrityError(
            f"the model has {len(names)} class(es) {list(names)}; a classifier needs two or more",
            fix="retrain it on data with at least two classes",
        )
    if len(set(names)) != len(names):
        raise ModelIntegrityError(f"the model's classes {list(names)} repeat as text")
    if len(names) > 2:
        if positive_class is not None:
            raise ConfigError(
                f"model.positive_class={positive_class!r} is for binary models; this one has "
                f"{len(names)} classes {list(names)}",
                fix="remove model.positive_class: every class's probability is published",
            )
        return ScoreTarget("multiclass", names, None)
    if positive_class is None:
        return ScoreTarget("binary", names, 1)
    if str(positive_class) not in names:
        raise ConfigError(
            f"model.positive_class={positive_class!r} is not one of the model's classes "
            f"{list(names)}",
            fix="set it to one of those classes (the one the score should be the probability of)",
        )
    return ScoreTarget("binary", names, names.index(str(positive_class)))


def output_columns(target: ScoreTarget) -> tuple[str, ...]:
    """The columns published beside the ID column, in order."""
    return ("score", "predicted_class", *target.proba_columns, "model_version", "run_key")


def check_id_column(id_column: str, target: ScoreTarget) -> None:
    """Refuse an ID column named like a column published beside it: the parts would hold two."""
    if id_column in output_columns(target):
        raise SchemaMismatchError(
            f"the ID column {id_column!r} has the name of a column the scores are published "
            f"with ({', '.join(output_columns(target))}), so the scores parts would hold two "
            f"{id_column!r} columns",
            where="data.id_column",
            fix="rename the input's ID column upstream (e.g. to record_id) and set data.id_column "
            "to the new name",
        )


def suite_view(table: pa.Table, id_column: str) -> pd.DataFrame:
    """Scores as an output suite sees them: the ID column called `id`, values untouched.

    The published parts keep the input's name for the ID column; a suite names it `id` so that
    one suite (the built-in one) fits every input. Renaming an Arrow column copies no data.
    """
    names = [SUITE_ID if c == id_column else c for c in table.column_names]
    return table.rename_columns(names).to_pandas()


def score_chunk(
    model: LoadedModel,
    frame: pd.DataFrame,
    contract: Contract,
    run_key: str,
    target: ScoreTarget | None = None,
) -> pa.Table:
    """Score rows that passed the contract and the gate; columns are taken in the model's order.

    The ID column is published under its input name, exactly as read (value and a type that
    holds it).
    """
    target = target or score_target(model.classes, None)
    x = frame.loc[:, list(contract.features)]
    numeric = x.loc[:, list(contract.numeric)].to_numpy(dtype="float64", na_value=np.nan)
    # Skip sklearn's own finiteness scan only when we have just proven there is nothing to find:
    # every numeric feature was checked for ±inf by the contract and holds no NaN here.
    with sklearn.config_context(assume_finite=not np.isnan(numeric).any()):
        try:
            proba = model.estimator.predict_proba(x)
        except ValueError as exc:
            if "NaN" in str(exc):
                raise MissingValuesRefused(
                    f"model {model.name} cannot take missing values: {exc}"
                ) from None
            raise SchemaMismatchError(
                f"model {model.name} rejected the input: {exc}",
                fix="if it cannot handle missing values, add expect_column_values_to_not_be_null "
                "for those columns to the input suite so such rows are quarantined",
            ) from None
    best = proba.argmax(axis=1)
    if target.kind == "binary":
        score = proba[:, target.positive_index]
    else:
        score = proba[np.arange(len(best)), best]
    classes = np.asarray(model.classes)
    n = len(frame)
    columns: dict[str, pa.Array] = {
        contract.id_column: pa.array(frame[contract.id_column]),
        "score": pa.array(score, pa.float64()),
        "predicted_class": pa.array(classes[best]),
    }
    for k, name in enumerate(target.proba_columns):
        columns[name] = pa.array(proba[:, k], pa.float64())
    columns["model_version"] = constant(model.version, n)
    columns["run_key"] = constant(run_key, n)
    return pa.table(columns)


def constant(value: str, n: int) -> pa.DictionaryArray:
    """A column holding one string n times, stored once (dictionary-encoded)."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([value]))


def histogram(scores: np.ndarray) -> list[int]:
    """Counts of scores in 20 equal bins over [0, 1]: summable across chunks and shards."""
    counts, _ = np.histogram(scores, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    return counts.tolist()
