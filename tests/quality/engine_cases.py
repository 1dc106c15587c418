"""Seeded frames and expectation cases for the engine differential suite (fast vs GX).

Frames mix what breaks naive checks: nulls of every kind (None, NaN, NaT, pd.NA), +-inf, values at
the ends of their types, tz-aware and naive datetimes, text (empty, unicode, long), categoricals,
mixed-type object columns and bools. Cases cover every supported type and its kwargs variants.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd

N = 48  # rows per frame: every kind of value several times, GX stays fast


def make_frame(seed: int) -> pd.DataFrame:
    """One frame of N rows; `seed` shuffles values and where the nulls fall."""
    rng = np.random.default_rng(seed)

    def pick(values: list[Any]) -> list[Any]:
        return [values[i] for i in rng.integers(0, len(values), N)]

    i64 = np.iinfo(np.int64)
    floats = [0.0, -1.5, 2.5, 17.0, 18.0, 120.0, 120.5, 1e308, -1e308, np.inf, -np.inf, np.nan]
    texts = ["north", "south", "", "Ünïcødé", "x" * 300, "12", "a1", "NORTH", " north"]
    stamps = pd.to_datetime(
        ["2020-01-01", "2024-06-30 12:00", "1970-01-01", "2262-04-11", "2000-02-29"], format="mixed"
    )
    mixed = [1, 2.5, "text", None, True, b"raw", np.nan, 10**20, -3, "2024-01-01"]
    frame = pd.DataFrame(
        {
            "f64": pick(floats),
            "f32": np.array(pick(floats[:6] + [np.nan]), dtype=np.float32),
            "i64": np.array(pick([0, 1, 18, 120, 121, -5, i64.max, i64.min + 1]), np.int64),
            "i32": np.array(pick([0, 18, 50, 120, 500, -7]), np.int32),
            "u8": np.array(pick([0, 18, 255, 100]), np.uint8),
            "Int64": pd.array(pick([0, 18, 120, 121, None, -9]), dtype="Int64"),
            "Float64": pd.array(pick([0.5, 18.0, 130.0, None]), dtype="Float64"),
            "b": np.array(pick([True, False]), bool),
            "boolean": pd.array(pick([True, False, None]), dtype="boolean"),
            "s": pd.array(pick(texts + [None]), dtype="str"),
            "string": pd.array(pick(texts + [None]), dtype="string"),
            "obj_str": pd.Series(pick(texts + [None]), dtype=object),
            "obj_mixed": pd.Series(pick(mixed), dtype=object),
            "cat": pd.Categorical(pick(["north", "south", "east", None])),
            "dt": pd.Series(pick(list(stamps) + [pd.NaT])).astype("datetime64[us]"),
            "dt_ns": pd.Series(pick(list(stamps) + [pd.NaT])).astype("datetime64[ns]"),
            "dt_tz": pd.Series(pick(list(stamps) + [pd.NaT])).dt.tz_localize("UTC"),
        }
    )
    if seed % 2:  # column order varies too
        frame = frame[list(reversed(frame.columns))]
    return frame


COLUMNS = list(make_frame(0).columns)
NUMERIC = ["f64", "f32", "i64", "i32", "u8", "Int64", "Float64", "b", "boolean"]
TYPE_NAMES = [
    "int64", "int32", "float64", "float", "int", "str", "string", "object", "bool", "boolean",
    "Int64Dtype", "Int64", "StringDtype", "CategoricalDtype", "category", "datetime64",
    "datetime64[ns]", "datetime64[us]", "datetime64[us, UTC]", "DatetimeTZDtype", "Timestamp",
    "bytes", "uint8", "Float64Dtype", "O", "float32", "notatype",
]  # fmt: skip
TIMES = ["2020-01-01", "2024-06-30 12:00:00", "2000-01-01T00:00:00+00:00"]


def _ranges(lo: Any, hi: Any) -> list[dict[str, Any]]:
    """Bounds with every strictness, and one-sided."""
    out: list[dict[str, Any]] = [{"min_value": lo}, {"max_value": hi}]
    for smin, smax in itertools.product([False, True], repeat=2):
        out.append({"min_value": lo, "max_value": hi, "strict_min": smin, "strict_max": smax})
    out.append({"max_value": hi, "strict_max": True})
    out.append({"min_value": lo, "strict_min": True})
    return out


def schema_cases(columns: list[str]) -> list[tuple[str, dict[str, Any]]]:
    cases: list[tuple[str, dict[str, Any]]] = []
    shuffled = list(reversed(columns))
    for cs, exact in itertools.product(
        [columns, shuffled, columns[:-1], columns + ["extra"], ["f64"], None], [True, False, None]
    ):
        kw: dict[str, Any] = {"column_set": cs}
        if exact is not None:
            kw["exact_match"] = exact
        cases.append(("expect_table_columns_to_match_set", kw))
    for cl in [COLUMNS, list(reversed(COLUMNS)), COLUMNS[:-1], None]:
        cases.append(("expect_table_columns_to_match_ordered_list", {"column_list": cl}))
    for col, index in [("f64", None), ("f64", 0), ("s", 3), ("dt", 16), ("f64", 99)]:
        kw = {"column": col} if index is None else {"column": col, "column_index": index}
        cases.append(("expect_column_to_exist", kw))
    for value in [len(COLUMNS), len(COLUMNS) - 1, 0]:
        cases.append(("expect_table_column_count_to_equal", {"value": value}))
    for kw in [{"min_value": 1}, {"max_value": 5}, {"min_value": 17, "max_value": 17}, {}]:
        cases.append(("expect_table_column_count_to_be_between", kw))
    for j, col in enumerate(COLUMNS):
        for name in TYPE_NAMES[j % 2 :: 2]:  # every name on about half of the columns
            cases.append(("expect_column_values_to_be_of_type", {"column": col, "type_": name}))
            cases.append(("expect_column_type_to_be", {"column": col, "type_": name}))
        for names in [["int64", "float64"], ["str", "string", "object"], ["Int64Dtype", "int64"],
                      ["bool", "category", "datetime64[us]", "DatetimeTZDtype"], ["notatype"],
                      ["int", "float", "str", "bytes"], None]:  # fmt: skip
            kw = {"column": col, "type_list": names}
            cases.append(("expect_column_values_to_be_in_type_list", kw))
    return cases


def row_cases() -> list[tuple[str, dict[str, Any]]]:
    cases: list[tuple[str, dict[str, Any]]] = []
    for col in COLUMNS:
        c = {"column": col}
        cases += [
            ("expect_column_values_to_not_be_null", c),
            ("expect_column_values_to_be_null", c),
            ("expect_column_values_to_be_in_set", {**c, "value_set": ["north", "", 18, 1.5]}),
            ("expect_column_values_to_be_in_set", {**c, "value_set": [0, 18, 120.0, True]}),
            ("expect_column_values_to_be_in_set", {**c, "value_set": ["2020-01-01"]}),
            ("expect_column_values_to_not_be_in_set", {**c, "value_set": ["north", 0, 18]}),
            ("expect_column_values_to_not_be_in_set", {**c, "value_set": ["2020-01-01", 255]}),
            ("expect_column_values_to_match_regex", {**c, "regex": "^[a-z]+$"}),
            ("expect_column_values_to_match_regex", {**c, "regex": r"\d"}),
            ("expect_column_values_to_match_regex", c),  # GX's default regex
            ("expect_column_values_to_not_match_regex", {**c, "regex": "^n"}),
            ("expect_column_value_lengths_to_equal", {**c, "value": 5}),
            ("expect_column_value_lengths_to_be_between", {**c, "min_value": 1, "max_value": 5}),
            (
                "expect_column_value_lengths_to_be_between",
                {**c, "max_value": 4, "strict_max": True},
            ),
            (
                "expect_column_value_lengths_to_be_between",
                {**c, "min_value": 3, "strict_min": True},
            ),
        ]
        between = _ranges(18, 120) + [{"min_value": -1e308, "max_value": 1e308}]
        between += [{"min_value": 0.5, "max_value": 0.5}, {"min_value": "north"}]
        between += _ranges(TIMES[0], TIMES[1])[:4] + [{"min_value": TIMES[2]}]
        cases += [("expect_column_values_to_be_between", {**c, **kw}) for kw in between]
    return cases


def aggregate_cases() -> list[tuple[str, dict[str, Any]]]:
    cases: list[tuple[str, dict[str, Any]]] = []
    for kw in _ranges(N - 1, N) + [{"min_value": 1, "max_value": None}]:
        cases.append(("expect_table_row_count_to_be_between", kw))
    cases += [("expect_table_row_count_to_equal", {"value": v}) for v in (N, N + 1)]
    stats = [
        "expect_column_min_to_be_between",
        "expect_column_max_to_be_between",
        "expect_column_mean_to_be_between",
        "expect_column_sum_to_be_between",
    ]
    for col in ["f64", "i64", "i32", "u8", "b"]:
        for etype in stats:
            for kw in _ranges(0, 200) + [{"min_value": -np.inf}]:
                cases.append((etype, {"column": col, **kw}))
        for kw in _ranges(0.5, 1.0):
            etype = "expect_column_proportion_of_non_null_values_to_be_between"
            cases.append((etype, {"column": col, **kw}))
    return cases
