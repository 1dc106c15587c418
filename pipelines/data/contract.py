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

from pipelines.data.source import InputInfo
from pipelines.errors import SchemaMismatchError
from pipelines.model.artifact import LoadedModel

_NUMERIC = ("int", "uint", "float", "double", "decimal", "bool", "halffloat")
_TEXT = ("string", "large_string", "utf8", "large_utf8", "dictionary")


@dataclass(frozen=True)
class Contract:
    """How to turn raw batches of this input into rows the model can score."""

    id_column: str
    features: tuple[str, ...]  # in the model's order
    numeric: tuple[str, ...]  # features that must be finite numbers
    parse: dict[str, str]  # column -> target kind ("float", "text") for text input
    null_values: tuple[str, ...] = ("",)  # CSV text that means "missing" in a feature


def check_contract(
    info: InputInfo, model: LoadedModel, id_column: str, null_values: tuple[str, ...] = ("",)
) -> Contract:
    """Fail fast, with a column diff, if this input cannot be scored by this model.

    Features without a declared kind (a model with no card) take their kind from the input:
    numbers are numeric (so NaN/inf checks apply to them exactly as with a card), text is
    categorical. IDs are never converted: a CSV ID stays the text it is ("007" stays "007").
    """
    cols = info.columns
    names = [f.name for f in model.features]
    _refuse_missing(info, model, names, id_column)
    csv = info.format == "csv"
    inferred = _csv_targets(info.path) if csv else {}
    parse: dict[str, str] = {}
    numeric: list[str] = []
    mistyped = []
    for feature in model.features:
        kind = _kind(cols[feature.name])
        wanted = feature.kind
        if wanted == "any":  # no card: the data says what it is
            if csv:
                wanted = "numeric" if inferred.get(feature.name) in ("int", "float") else "text"
            else:
                wanted = {"number": "numeric", "text": "categorical"}.get(kind, "any")
        if wanted == "numeric":
            numeric.append(feature.name)
        if csv:  # CSV is all text: type features by what the model needs, per row
            parse[feature.name] = "float" if wanted == "numeric" else "text"
        elif wanted == "numeric" and kind == "text":
            parse[feature.name] = "float"  # numbers stored as text: parse, quarantine failures
        elif wanted == "numeric" and kind != "number":
            mistyped.append(f"{feature.name}: {cols[feature.name]} (model expects numbers)")
        elif wanted == "categorical" and kind != "text":
            mistyped.append(f"{feature.name}: {cols[feature.name]} (model expects text)")
    if not csv and (
        _kind(cols[id_column]) == "other"
        or cols[id_column].startswith(("float", "double", "halffloat", "bool", "decimal"))
    ):
        mistyped.append(f"{id_column}: {cols[id_column]} (IDs must be integers or text)")
    if mistyped:
        raise SchemaMismatchError(
            f"input column(s) have the wrong type: {'; '.join(mistyped)}",
            where=str(info.path),
            fix="cast the columns in the export to the types the model was trained on",
        )
    return Contract(id_column, tuple(names), tuple(numeric), parse, tuple(null_values))


def _refuse_missing(info: InputInfo, model: LoadedModel, names: list[str], id_column: str) -> None:
    """The column diff: what the model needs and the input lacks, with likely renames."""
    cols = info.columns
    missing = [n for n in names if n not in cols]
    if id_column not in cols:
        missing.insert(0, id_column)
    if not missing:
        return
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


def prepare_batch(frame: pd.DataFrame, contract: Contract) -> tuple[pd.DataFrame, np.ndarray]:
    """Type the batch; return it with a per-row reason ('' = usable) for unscorable rows.

    The input frame is left as read, so quarantined rows can be kept with their original values.
    """
    frame = frame.copy(deep=False)  # copy-on-write: replaced columns leave the caller's intact
    reasons = np.full(len(frame), "", dtype=object)
    nulls = list(contract.null_values)
    for col, target in contract.parse.items():
        if col not in frame.columns:
            continue
        raw = frame[col]
        is_null = raw.isna() | raw.isin(nulls) if nulls else raw.isna()
        if target == "text":
            if is_null.any():
                frame[col] = raw.mask(is_null, None)
            continue
        text = raw.dtype == object or pd.api.types.is_string_dtype(raw)
        stripped = raw.str.strip() if text else raw
        is_null = is_null | (stripped == "") if nulls and "" in nulls else is_null
        parsed = pd.to_numeric(stripped.mask(is_null, None), errors="coerce")
        bad = (parsed.isna() & ~is_null).to_numpy()
        if bad.any():
            _add(reasons, bad, lambda i, c=col, r=raw: f"{c}: cannot parse {r.iloc[i]!r}")
        frame[col] = parsed.astype("float64")
    for col in contract.numeric:
        values = frame[col].to_numpy(dtype="float64", na_value=np.nan)
        inf = np.isinf(values)
        if inf.any():
            _add(
                reasons,
                inf,
                lambda i, c=col, v=values: f"{c}: non-finite value (inf or -inf): {v[i]}",
            )
    ids = frame[contract.id_column]
    missing_id = ids.isna().to_numpy()
    if nulls and (ids.dtype == object or pd.api.types.is_string_dtype(ids)):
        missing_id = missing_id | ids.isin(nulls).to_numpy()
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
    """Infer CSV column kinds once from the first block, so every batch is typed the same way.

    Only used for features whose kind nobody declared (a model without a card). A column is
    numeric when most of its non-empty values in the first MiB parse as numbers: a few stray
    values ("1,234", "abc") are then quarantined row by row instead of turning the whole
    column into text that the model would choke on. A card makes this explicit.
    """
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    if len(head) == 1 << 20:
        head = head[: head.rfind(b"\n") + 1] or head
    try:
        table = pacsv.read_csv(
            io.BytesIO(head),
            parse_options=pacsv.ParseOptions(invalid_row_handler=lambda _: "skip"),
            convert_options=pacsv.ConvertOptions(
                column_types={}, strings_can_be_null=True, auto_dict_encode=False
            ),
        )
    except pa.ArrowInvalid:
        return {}
    kinds = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            kinds[name] = "float"
            continue
        values = pd.Series(col.to_pylist(), dtype=object).dropna()
        values = values[values.astype(str).str.strip() != ""]
        parsed = pd.to_numeric(values, errors="coerce")
        numeric = len(values) > 0 and parsed.notna().mean() > 0.5
        kinds[name] = "float" if numeric else "text"
    return kinds
