"""The contract between an input and a model: which columns, which types, which rows are usable.

`check_contract` runs once on the file's schema, before any row is read, and fails the run with a
column diff when the input cannot be scored at all. `prepare_batch` runs per batch and marks the
rows that cannot be scored (a number that does not parse, ±inf, a missing ID) with a reason, so
they are quarantined instead of crashing `predict_proba` or producing silently wrong scores.
"""

from __future__ import annotations

import difflib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from pipelines.datasource import InputInfo
from pipelines.errors import SchemaMismatchError
from pipelines.models import LoadedModel

_NUMERIC = ("int", "uint", "float", "double", "decimal", "bool", "halffloat")
_TEXT = ("string", "large_string", "utf8", "large_utf8", "dictionary")


@dataclass(frozen=True)
class Contract:
    """How to turn raw batches of this input into rows the model can score."""

    id_column: str
    features: tuple[str, ...]  # in the model's order
    numeric: tuple[str, ...]  # features that must be finite numbers
    parse: dict[str, str]  # column -> target kind ("float", "int", "timestamp") for text input


def check_contract(info: InputInfo, model: LoadedModel, id_column: str) -> Contract:
    """Fail fast, with a column diff, if this input cannot be scored by this model."""
    cols = info.columns
    names = [f.name for f in model.features]
    missing = [n for n in names if n not in cols]
    if id_column not in cols:
        missing.insert(0, id_column)
    if missing:
        extra = [c for c in cols if c not in names and c != id_column]
        hints = []
        for name in missing:
            close = difflib.get_close_matches(name, extra, n=1, cutoff=0.6)
            if close:
                hints.append(f"{name!r} (renamed to {close[0]!r}?)")
        raise SchemaMismatchError(
            f"input is missing column(s) {missing} that the model {model.name} needs"
            + (f"; possible renames: {', '.join(hints)}" if hints else "")
            + (f"; columns the model does not use: {extra}" if extra else ""),
            where=str(info.path),
            fix="fix the export, or point model.path at a model trained on these columns",
        )
    csv = info.format == "csv"
    parse = _csv_targets(info.path) if csv else {}
    mistyped = []
    for feature in model.features:
        kind = _kind(cols[feature.name])
        if csv:  # CSV is all text: type features by what the model needs, per row
            parse[feature.name] = "float" if feature.kind == "numeric" else "text"
        elif feature.kind == "numeric" and kind == "text":
            parse[feature.name] = "float"  # numbers stored as text: parse, quarantine failures
        elif feature.kind == "numeric" and kind != "number":
            mistyped.append(f"{feature.name}: {cols[feature.name]} (model expects numbers)")
        elif feature.kind == "categorical" and kind != "text":
            mistyped.append(f"{feature.name}: {cols[feature.name]} (model expects text)")
    id_kind = parse.get(id_column) if csv else _kind(cols[id_column])
    id_type = cols[id_column] if not csv else f"CSV values inferred as {id_kind}"
    if id_kind in ("float", "timestamp", "other") or (
        not csv and cols[id_column].startswith(("float", "double", "halffloat", "bool"))
    ):
        mistyped.append(f"{id_column}: {id_type} (IDs must be integers or text)")
    if mistyped:
        raise SchemaMismatchError(
            f"input column(s) have the wrong type: {'; '.join(mistyped)}",
            where=str(info.path),
            fix="cast the columns in the export to the types the model was trained on",
        )
    numeric = tuple(f.name for f in model.features if f.kind == "numeric")
    return Contract(id_column, tuple(names), numeric, parse)


def prepare_batch(frame: pd.DataFrame, contract: Contract) -> tuple[pd.DataFrame, np.ndarray]:
    """Type the batch; return it with a per-row reason ('' = usable) for unscorable rows.

    The input frame is left as read, so quarantined rows can be kept with their original values.
    """
    frame = frame.copy(deep=False)  # copy-on-write: replaced columns leave the caller's intact
    reasons = np.full(len(frame), "", dtype=object)
    for col, target in contract.parse.items():
        if col not in frame.columns or target == "text":
            continue
        raw = frame[col]
        if target == "timestamp":
            parsed = pd.to_datetime(raw, errors="coerce", utc=True)
        else:
            parsed = pd.to_numeric(raw, errors="coerce")
        bad = (parsed.isna() & raw.notna()).to_numpy()
        if target == "int" and not bad.any():
            whole = parsed.dropna()
            if (whole % 1 == 0).all() and not parsed.isna().any():
                parsed = parsed.astype("int64")
        if bad.any():
            _add(reasons, bad, lambda i, c=col, r=raw: f"{c}: cannot parse {r.iloc[i]!r}")
        frame[col] = parsed
    for col in contract.numeric:
        values = frame[col].to_numpy(dtype="float64", na_value=np.nan)
        inf = np.isinf(values)
        if inf.any():
            _add(reasons, inf, lambda i, c=col, v=values: f"{c}: non-finite value {v[i]}")
    missing_id = frame[contract.id_column].isna().to_numpy()
    if missing_id.any():
        _add(reasons, missing_id, lambda i, c=contract.id_column: f"{c}: missing ID")
    return frame, reasons


def _add(reasons: np.ndarray, mask: np.ndarray, describe) -> None:  # type: ignore[no-untyped-def]
    for i in np.flatnonzero(mask):
        reasons[i] = f"{reasons[i]}; {describe(i)}" if reasons[i] else describe(i)


def _kind(arrow_type: str) -> str:
    if arrow_type.startswith(_NUMERIC):
        return "number"
    if arrow_type.startswith(_TEXT):
        return "text"
    return "other"


def _csv_targets(path: Path) -> dict[str, str]:
    """Infer CSV column kinds once from the first block, so every batch is typed the same way."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    if len(head) == 1 << 20:
        head = head[: head.rfind(b"\n") + 1] or head
    try:
        schema = pacsv.read_csv(
            io.BytesIO(head),
            parse_options=pacsv.ParseOptions(invalid_row_handler=lambda _: "skip"),
        ).schema
    except pa.ArrowInvalid:
        return {}
    kinds = {}
    for f in schema:
        if pa.types.is_integer(f.type):
            kinds[f.name] = "int"
        elif pa.types.is_floating(f.type):
            kinds[f.name] = "float"
        elif pa.types.is_timestamp(f.type):
            kinds[f.name] = "timestamp"
        else:
            kinds[f.name] = "text"
    return kinds
