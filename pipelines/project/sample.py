"""Reading a data sample typed as the gate will see it, and guessing which column is the ID.

A starter suite must pass on the data the gate checks, which is the input *after* the data
contract has typed it: so the sample is read with the pipeline's own reader (`data/read`) and,
when the model is known, typed by the pipeline's own contract (`data/contract`). Without a model a
CSV's numeric-looking columns are parsed as numbers, as the contract does for model features.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import pandas as pd

from pipelines.config import card_path_for
from pipelines.data.contract import check_contract, prepare_batch
from pipelines.data.read import BadLines, read_batches
from pipelines.data.source import InputInfo, Shard, inspect_input
from pipelines.errors import ConfigError, InputDataError, ModelIntegrityError
from pipelines.model.artifact import LoadedModel, load_model
from pipelines.project.starter_suite import require_column
from pipelines.storage.hashing import sha256_file

DEFAULT_SAMPLE_ROWS = 100_000
NULL_VALUES = ("",)  # data.csv_null_values' default: an empty CSV field is missing
_ID_WORDS = {"id", "uuid", "guid", "key", "identifier"}


def data_format(path: Path, option: str = "--from") -> Literal["parquet", "csv"]:
    """Parquet if the file starts with Parquet's magic bytes, else CSV (whatever its name)."""
    if not path.is_file():
        raise InputDataError(
            f"data file {path} not found" + (" (it is a folder)" if path.is_dir() else ""),
            where=option,
            fix="give the path of one Parquet or CSV file",
        )
    with open(path, "rb") as fh:
        return "parquet" if fh.read(4) == b"PAR1" else "csv"


def read_sample(
    path: Path,
    rows: int = DEFAULT_SAMPLE_ROWS,
    id_column: str | None = None,
    model: LoadedModel | None = None,
    option: str = "--from",
    typed: bool = True,
) -> pd.DataFrame:
    """The first `rows` rows of a Parquet/CSV file, typed as the gate will see them.

    `typed=False` leaves a CSV as text (to look for an ID column: "0042" is not a number there).
    """
    if rows < 1:
        raise ConfigError(f"--sample-rows must be at least 1, got {rows}", where="--sample-rows")
    info = inspect_input(path, data_format(path, option))
    if id_column is not None:
        require_column(id_column, info.columns, "--id-column")
    batches = read_batches(info, Shard(0, None, None), rows, BadLines(), id_column)
    frame = next(batches, None)
    batches.close()  # reads no further than the sample
    if frame is None or len(frame) == 0:
        raise InputDataError(
            f"data file {path} has no rows", where=option, fix="point it at a file with rows"
        )
    if not typed:
        return frame
    if model is not None and id_column is not None:
        contract = check_contract(info, model, id_column, NULL_VALUES)
        return prepare_batch(frame, contract)[0]
    return _parse_csv_numbers(frame, info, id_column)


def _parse_csv_numbers(frame: pd.DataFrame, info: InputInfo, id_column: str | None) -> pd.DataFrame:
    """CSV columns (other than the ID) whose every present value is a number, as float64."""
    if info.format != "csv":
        return frame
    frame = frame.copy(deep=False)
    for column in frame.columns:
        if column == id_column:
            continue  # the contract never converts IDs: "007" stays "007"
        text = frame[column].str.strip()
        missing = frame[column].isna() | text.isin(NULL_VALUES)
        parsed = pd.to_numeric(text.mask(missing, None), errors="coerce")
        if parsed.notna().any() and bool((parsed.notna() | missing).all()):
            frame[column] = parsed.astype("float64")
    return frame


def looks_like_id(name: str) -> bool:
    """`customer_id`, `ID`, `orderId`, `uuid`, `id-number`: an id word first or last."""
    words = re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower())
    words = [w for w in words if w]
    return bool(words) and (words[0] in _ID_WORDS or words[-1] in _ID_WORDS)


def guess_id_column(frame: pd.DataFrame, features: set[str]) -> str:
    """The one column the model does not use that is named like an ID and unique in the sample."""
    others = [str(c) for c in frame.columns if c not in features]
    candidates = [
        c
        for c in others
        if looks_like_id(c)
        and not pd.api.types.is_float_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
        and frame[c].notna().all()
        and frame[c].is_unique
    ]
    if len(candidates) == 1:
        return candidates[0]
    found = (
        f"several columns could be the ID: {', '.join(candidates)}"
        if candidates
        else "no column the model does not use is named like an ID with unique values in the "
        f"sample (those columns: {', '.join(others) or 'none'})"
    )
    raise ConfigError(
        f"cannot tell which column is the ID: {found}",
        where="--id-column",
        fix="pass --id-column COLUMN (the column that identifies a row; it is not scored)",
    )


def load_project_model(path: Path, trusted_types: list[str] | None = None) -> LoadedModel:
    """The model, pinned to the file's sha256 as it is now; a card pinning another file is refused.

    It is loaded the way a run loads it (allow-list, scikit-learn version check), so a model that
    `init` accepts is one that `score` can load.
    """
    if not path.is_file():
        raise ModelIntegrityError(
            f"model file {path} not found",
            where="--model",
            fix="give the path of a fitted classifier saved with skops (`skops.io.dump`)",
        )
    card = card_path_for(path)
    model = load_model(
        path,
        pinned_sha256=sha256_file(path),
        card_path=card if card.is_file() else None,
        trusted_types=trusted_types,
    )
    pinned = model.card.get("sha256")
    if pinned and pinned != model.sha256:
        raise ModelIntegrityError(
            f"the model card {card} pins sha256 {pinned}, but {path.name} has {model.sha256}",
            where="--model",
            fix="the card describes another file: re-save the model with its card, or remove "
            "the stale card",
        )
    return model
