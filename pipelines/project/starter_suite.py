"""A starter input suite derived from a data sample: a first gate that passes on it, to be edited.

`starter_suite` is pure (a frame in, a GX ExpectationSuite dict out, in the form of
validation/input_suite.json) and only writes types the streaming gate supports
(`pipelines.quality.spec`). Each expectation's `notes` says how its bound was derived from the
sample, so whoever reviews it can tighten or loosen it knowingly.
"""

from __future__ import annotations

import difflib
import math
import uuid
from collections.abc import Iterable
from importlib.metadata import version
from typing import Any

import numpy as np
import pandas as pd

from pipelines.errors import ConfigError

QUANTILES = (0.001, 0.999)  # robust ends: a handful of outliers does not set the range
MARGIN = 0.10  # the range between the quantiles is widened by this share on each side
MAX_CATEGORIES = 50  # a text column with at most this many distinct values gets a value set,
MAX_CATEGORY_SHARE = 0.10  # if they are also few for its rows (free text and IDs are not sets)
# As validation/input_suite.json: integers or text, never float (float64 rounds IDs above 2**53).
ID_TYPES = ["int64", "Int64Dtype", "str", "string", "object"]
# An integer column with one missing value is read as float64: both, so that does not fail.
NUMERIC_TYPES = ["int64", "float64"]

Check = tuple[str, dict[str, Any], str]  # expectation type, kwargs, notes


def starter_suite(frame: pd.DataFrame, id_column: str | None, name: str) -> dict[str, Any]:
    """A GX suite dict for data like `frame`, passing on `frame`.

    `frame` is typed as the gate will see it (`pipelines.project.sample.read_sample`: text IDs are
    objects, CSV features parsed as the data contract parses them).

    Columns and their types, not-null where the sample has no missing value, numeric ranges from
    robust quantiles, value sets for low-cardinality text, the ID column typed, not null and
    unique, and at least one row. Refuses (ConfigError) an empty sample, an `id_column` that is
    not a column, and an ID column that is not unique in the sample.
    """
    if len(frame) == 0:
        raise ConfigError(
            "the data sample has no rows: a starter suite is derived from data",
            fix="point --from at a file with rows",
        )
    columns = [str(c) for c in frame.columns]
    if id_column is not None:
        require_column(id_column, columns, "--id-column")
    checks: list[Check] = [
        (
            "expect_table_columns_to_match_set",
            {"column_set": columns, "exact_match": True},
            f"The sample's {len(columns)} columns, in any order. Extra columns fail the run "
            "(exact_match); set exact_match to false to ignore them.",
        ),
        (
            "expect_table_row_count_to_be_between",
            {"min_value": 1, "max_value": None},
            "An empty input never publishes an empty 'success'. Set max_value to catch a "
            "duplicated export.",
        ),
    ]
    if id_column is not None:
        checks += _id_checks(frame[id_column], id_column)
    for column in columns:
        if column != id_column:
            checks += _column_checks(frame[column], column)
    return {
        "name": name,
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
        "expectations": [_entry(name, check) for check in checks],
        "meta": {
            "great_expectations_version": version("great_expectations"),
            "generated_by": "batchscore suite init",
            "sample_rows": len(frame),
        },
        "notes": f"Starter suite derived from a sample of {len(frame):,} rows; it passes on that "
        "sample. Review each bound (its notes say how it was derived) before trusting the gate. "
        "See validation/README.md for how each expectation is evaluated.",
    }


def require_column(name: str, columns: Iterable[str], option: str) -> None:
    """Refuse a column name the data does not have, suggesting the closest one."""
    columns = list(columns)
    if name in columns:
        return
    close = difflib.get_close_matches(name, columns, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(
        f"{option} {name!r} is not a column of the data",
        where=option,
        fix=f"{hint}the columns are: {', '.join(columns)}",
    )


def _entry(suite: str, check: Check) -> dict[str, Any]:
    """One expectation in GX's JSON form; its id stays stable when columns are added or moved."""
    etype, kwargs, notes = check
    key = f"{suite}/{etype}/{kwargs.get('column', '')}"
    return {
        "type": etype,
        "kwargs": kwargs,
        "meta": {},
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
        "notes": notes,
    }


def _id_checks(ids: pd.Series, column: str) -> list[Check]:
    """The ID column: integer or text, never missing, unique (exact, over the whole input)."""
    present = ids[ids.notna()]
    repeated = present[present.duplicated(keep=False)]
    if len(repeated):
        first = repeated.iloc[0]
        raise ConfigError(
            f"--id-column {column!r} is not unique in the sample: {first!r} appears "
            f"{int((present == first).sum())} times ({repeated.nunique():,} repeated values)",
            where="--id-column",
            fix="name the column that identifies a row, or de-duplicate the export",
        )
    missing = len(ids) - len(present)
    return [
        (
            "expect_column_values_to_be_in_type_list",
            {"column": column, "type_list": ID_TYPES},
            "IDs are integers or text, never float: float64 would round IDs above 2**53.",
        ),
        (
            "expect_column_values_to_not_be_null",
            {"column": column},
            "A row without an ID is quarantined."
            + (f" The sample has {missing:,} such rows." if missing else ""),
        ),
        (
            "expect_column_values_to_be_unique",
            {"column": column},
            "Exact over the whole input (all shards), not per batch; unique in the sample.",
        ),
    ]


def _column_checks(values: pd.Series, column: str) -> list[Check]:
    """Type, not-null, and a range or a value set, depending on what the column holds."""
    kind = _kind(values)
    checks: list[Check] = []
    type_check = _type_check(values, column, kind)
    if type_check:
        checks.append(type_check)
    missing = values.isna()
    if kind == "text":  # a CSV's empty field is missing for a feature and "" for any other
        missing = missing | (values == "")
    if not missing.any():
        checks.append(
            (
                "expect_column_values_to_not_be_null",
                {"column": column},
                f"No missing value in the sample's {len(values):,} rows.",
            )
        )
    if kind == "number":
        checks += _numeric_checks(values, column)
    elif kind == "text":
        checks += _category_checks(values, column)
    return checks


def _kind(values: pd.Series) -> str:
    """'number', 'bool', 'datetime', 'text' (every value a str) or 'other'."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    present = values.dropna()
    if len(present) and all(isinstance(v, str) for v in present):
        return "text"
    return "other"


def _type_check(values: pd.Series, column: str, kind: str) -> Check | None:
    """The column's type as GX names it (numbers also float64, for when a value is missing)."""
    dtype = values.dtype
    name = dtype.name if isinstance(dtype, np.dtype) else type(dtype).__name__
    if kind == "text":
        return ("expect_column_values_to_be_of_type", {"column": column, "type_": "str"}, "Text.")
    if kind == "number":
        types = [*NUMERIC_TYPES, *([name] if name not in NUMERIC_TYPES else [])]
        note = f"A number ({name} in the sample); float64 too, which is how missing values read."
        return (
            "expect_column_values_to_be_in_type_list",
            {"column": column, "type_list": types},
            note,
        )
    if kind in ("bool", "datetime") and isinstance(dtype, np.dtype):
        note = f"{name} in the sample."
        return (
            "expect_column_values_to_be_in_type_list",
            {"column": column, "type_list": [name]},
            note,
        )
    return None  # mixed objects or an extension type: the column set still names it


def _numeric_checks(values: pd.Series, column: str) -> list[Check]:
    """A two-sided range (so ±inf is caught too) and, if values are missing, their share."""
    numbers = values.to_numpy(dtype="float64", na_value=np.nan)
    finite = numbers[np.isfinite(numbers)]
    checks: list[Check] = []
    if len(finite):
        lo, hi, note = numeric_range(finite)
        if (n_inf := int(np.isinf(numbers).sum())) > 0:
            note += f" {n_inf:,} infinite sample values are outside it (quarantined)."
        kwargs = {"column": column, "min_value": lo, "max_value": hi}
        checks.append(("expect_column_values_to_be_between", kwargs, note))
    share = float(np.mean(~np.isnan(numbers)))
    if share < 1.0:
        low = math.floor(max(0.0, share - max(0.05, 1.0 - share)) * 100) / 100
        note = (
            f"{1 - share:.1%} of the sample is missing; this tolerates up to twice that share "
            "(at least 5 points more). The model must handle missing values."
        )
        kwargs = {"column": column, "min_value": low, "max_value": 1.0}
        checks.append(("expect_column_proportion_of_non_null_values_to_be_between", kwargs, note))
    return checks


def numeric_range(finite: np.ndarray) -> tuple[int | float, int | float, str]:
    """Bounds from robust quantiles widened by a margin, never inside the sample's min..max.

    Whole numbers get integer bounds; others are rounded outward to 3 significant digits of the
    range. A column with no negative value keeps its lower bound at 0 at the lowest.
    """
    q_lo, q_hi = (float(q) for q in np.quantile(finite, QUANTILES))
    low, high = float(finite.min()), float(finite.max())
    margin = MARGIN * (q_hi - q_lo) if q_hi > q_lo else MARGIN * max(abs(q_hi), 1.0)
    lo, hi = min(q_lo - margin, low), max(q_hi + margin, high)
    clamped = low >= 0 > lo
    if clamped:
        lo = 0.0
    integral = bool(np.all(finite == np.round(finite)))
    lo_out, hi_out = _round_out(lo, hi, integral)
    note = (
        f"Sample ({len(finite):,} values): min {low:.6g}, 0.1% {q_lo:.6g}, 99.9% {q_hi:.6g}, "
        f"max {high:.6g}. Bounds: the 0.1%..99.9% quantiles widened by {MARGIN:.0%} of their "
        f"range ({margin:.6g}) each side, never inside the sample's min..max"
        + (", the lower kept at 0 (no negative value in the sample)" if clamped else "")
        + ", rounded outward."
    )
    return lo_out, hi_out, note


def _round_out(lo: float, hi: float, integral: bool) -> tuple[int | float, int | float]:
    """Readable bounds containing [lo, hi]: whole numbers, or 3 significant digits of the range."""
    if integral:
        return math.floor(lo), math.ceil(hi)
    scale = hi - lo or abs(hi) or 1.0
    step = 10.0 ** (math.floor(math.log10(scale)) - 2)
    digits = max(0, -math.floor(math.log10(step)))
    lo_out = round(math.floor(lo / step) * step, digits)
    hi_out = round(math.ceil(hi / step) * step, digits)
    if lo_out > lo:  # float rounding may step inward: one more step out
        lo_out = round(lo_out - step, digits)
    if hi_out < hi:
        hi_out = round(hi_out + step, digits)
    return lo_out, hi_out


def _category_checks(values: pd.Series, column: str) -> list[Check]:
    """A value set when the column has few distinct values for its rows, else nothing."""
    present = values.dropna()
    distinct = sorted({str(v) for v in present})
    if len(distinct) > MAX_CATEGORIES or len(distinct) > MAX_CATEGORY_SHARE * len(present):
        return []
    note = (
        f"The {len(distinct)} distinct values of the sample's {len(present):,} (at most "
        f"{MAX_CATEGORIES}, and at most {MAX_CATEGORY_SHARE:.0%} of the rows: categories, not "
        "free text). A new value quarantines its row: add it here when it is legitimate."
    )
    return [("expect_column_values_to_be_in_set", {"column": column, "value_set": distinct}, note)]
