"""Schema expectations without GX: GX Core 1.x's own pandas logic, ported line for line.

The final word is GX's source (`great_expectations/expectations/core/expect_*.py` and the
`column_values.of_type` / `in_type_list` map metrics); the differential suite
(`tests/quality/test_engine_differential.py`) holds this module to it. Quirks kept on purpose:
a column of numpy `object` dtype is checked value by value (nulls skipped), any other dtype by its
dtype; `type_list` compares the dtype itself, `type_` only its scalar type.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from dateutil.parser import parse

from pipelines.quality.outcome import Outcome

OBJECT_NAMES = ("object", "object_", "O", None)


def native_type_type_map(type_: str) -> tuple[type, ...] | None:
    """GX's `type_comparison.native_type_type_map`: a type name's Python types."""
    name = type_.lower()
    table: dict[str, tuple[type, ...]] = {
        "none": (type(None),),
        "bool": (bool,),
        "int": (int,),
        "long": (int,),
        "float": (float,),
        "bytes": (bytes,),
        "complex": (complex,),
        "str": (str,),
        "string_types": (str,),
        "list": (list,),
        "dict": (dict,),
    }
    return table.get(name)


def _named_types(type_: str, comp: list[Any], *, instances: bool = False) -> None:
    """The pandas classes (and, for type lists, ExtensionDtype instances) a name stands for."""
    try:
        pd_type = getattr(pd, type_)
    except AttributeError:
        pass
    else:
        if isinstance(pd_type, type):
            comp.append(pd_type)
            if instances:
                try:
                    if isinstance(pd_type(), pd.core.dtypes.base.ExtensionDtype):
                        comp.append(pd_type())
                except TypeError:
                    pass
    try:
        pd_type = getattr(pd.core.dtypes.dtypes, type_)
        if isinstance(pd_type, type):
            comp.append(pd_type)
    except AttributeError:
        pass


def value_types(type_: str) -> list[Any]:
    """What one type name matches, as GX's of_type metric and `_validate_pandas` build it."""
    comp: list[Any] = []
    try:
        comp.append(np.dtype(type_).type)
    except TypeError:
        _named_types(type_, comp)
    native = native_type_type_map(type_)
    if native is not None:
        comp.extend(native)
    return comp


def _list_types(type_list: list[str]) -> list[Any]:
    """What a type list matches at dtype level (`in_type_list._validate_pandas`)."""
    comp: list[Any] = []
    for type_ in type_list:
        try:
            comp.append(np.dtype(type_).type)
            comp.append(np.dtype(type_))
        except TypeError:
            _named_types(type_, comp, instances=True)
        native = native_type_type_map(type_)
        if native is not None:
            comp.extend(native)
    return comp


def _per_value(column: pd.Series, comp: list[Any]) -> Outcome:
    """An object column: every non-null value must be an instance of one of `comp`."""
    present = ~column.isna().to_numpy()
    values = column.to_numpy()[present]
    kinds = tuple(comp)
    bad = np.fromiter((not isinstance(v, kinds) for v in values), bool, len(values))
    mask = np.zeros(len(column), bool)
    mask[np.flatnonzero(present)[bad]] = True
    count = int(bad.sum())
    return Outcome(count == 0, None, count, int((~present).sum()), mask)


def of_type(kw: dict[str, Any], df: pd.DataFrame) -> Outcome:
    column = df[kw["column"]]
    dtype, type_ = column.dtype, kw.get("type_")
    if dtype.type.__name__ == "object_" and type_ not in OBJECT_NAMES:
        comp = value_types(type_)
        if not comp:
            raise ValueError(f"Unrecognized numpy/python type: {type_}")
        return _per_value(column, comp)
    success = True if type_ is None else dtype.type in value_types(type_)
    return Outcome(success, dtype.type.__name__)


def in_type_list(kw: dict[str, Any], df: pd.DataFrame) -> Outcome:
    column = df[kw["column"]]
    dtype, type_list = column.dtype, kw.get("type_list")
    if dtype.type.__name__ == "object_" and type_list is not None:
        comp: list[Any] = []
        for type_ in type_list:
            comp.extend(value_types(type_))
        if not comp:
            raise ValueError(f"No recognized numpy/python type in list: {type_list}")
        return _per_value(column, comp)
    success = True if type_list is None else dtype in _list_types(type_list)
    return Outcome(success, dtype.type.__name__)


def column_type(kw: dict[str, Any], df: pd.DataFrame) -> Outcome:
    """`expect_column_type_to_be._validate_pandas`."""
    actual, expected = df[kw["column"]].dtype, kw["type_"]
    try:
        parsed = pd.api.types.pandas_dtype(expected)
    except Exception as exc:  # as GX: whatever pandas raises means it cannot build the type
        raise ValueError(f"Unrecognized pandas type: {expected} ({exc})") from exc
    if (
        isinstance(parsed, np.dtype)
        and parsed.kind in "mM"
        and np.datetime_data(parsed)[0] == ("generic")
    ):
        success = isinstance(actual, np.dtype) and actual.kind == parsed.kind
    elif isinstance(actual, pd.StringDtype) and isinstance(parsed, pd.StringDtype):
        success = str(actual) == str(parsed)
    else:
        success = actual in (parsed, expected)
    return Outcome(bool(success), str(actual))


def columns_match_set(kw: dict[str, Any], df: pd.DataFrame) -> Outcome:
    expected_list = kw.get("column_set")
    expected = set(expected_list) if expected_list is not None else set()
    actual = set(df.columns)
    observed = sorted(str(c) for c in actual)
    extra, missing = actual - expected, expected - actual
    if not extra and not missing:
        return Outcome(True, observed)
    exact = kw.get("exact_match", True)
    return Outcome(not exact and not missing, observed)


def columns_match_list(kw: dict[str, Any], df: pd.DataFrame) -> Outcome:
    expected, actual = kw.get("column_list"), list(df.columns)
    if expected is None or actual == list(expected):
        return Outcome(True, actual)
    return Outcome(False, actual)


def column_exists(kw: dict[str, Any], df: pd.DataFrame) -> Outcome:
    actual, name, index = list(df.columns), kw["column"], kw.get("column_index")
    if index:
        try:
            return Outcome(actual[index] == name)
        except IndexError:
            return Outcome(False)
    return Outcome(name in actual)


def column_count_equal(kw: dict[str, Any], df: pd.DataFrame) -> Outcome:
    count = len(df.columns)
    return Outcome(count == kw.get("value"), count)


def column_count_between(kw: dict[str, Any], df: pd.DataFrame) -> Outcome:
    """`Expectation._validate_metric_value_between` on the column count (an int)."""
    value: Any = len(df.columns)
    lo, hi = kw.get("min_value"), kw.get("max_value")
    if isinstance(lo, datetime.datetime) or isinstance(hi, datetime.datetime):
        value = parse(value)  # raises, as GX does: a count is no datetime
    above = True if lo is None else (value > lo if kw.get("strict_min") else value >= lo)
    below = True if hi is None else (value < hi if kw.get("strict_max") else value <= hi)
    return Outcome(bool(above and below), value)


SCHEMA_CHECKS: dict[str, Callable[[dict[str, Any], pd.DataFrame], Outcome]] = {
    "expect_table_columns_to_match_set": columns_match_set,
    "expect_table_columns_to_match_ordered_list": columns_match_list,
    "expect_column_to_exist": column_exists,
    "expect_table_column_count_to_equal": column_count_equal,
    "expect_table_column_count_to_be_between": column_count_between,
    "expect_column_values_to_be_of_type": of_type,
    "expect_column_values_to_be_in_type_list": in_type_list,
    "expect_column_type_to_be": column_type,
}
