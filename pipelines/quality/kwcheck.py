"""Our own check of a supported expectation's kwargs, so a suite loads without importing GX.

GX checks kwargs with its pydantic models (`ExpectationConfiguration.to_domain_obj`), but
importing GX costs ~2.6 s, which `validation.engine: fast` with `audit_rows: 0` never pays. The
allowed and required names below are GX 1.x's model fields for each supported type
(`tests/quality/test_engine_kwargs.py` compares them with GX's models); values are parsed with
the same pydantic (v1) field types, so they are coerced as GX coerces them (`coerced`).
"""

from __future__ import annotations

import datetime
from typing import Any

from pydantic.v1 import StrictStr, ValidationError, confloat, parse_obj_as

_ANY = frozenset({"batch_id", "result_format", "catch_exceptions"})
_MAP = _ANY | {"column", "mostly", "row_condition", "condition_parser"}
_RANGE = frozenset({"min_value", "max_value", "strict_min", "strict_max"})
_AGG = _ANY | {"column", "row_condition", "condition_parser"} | _RANGE
_SCHEMA_COLUMN = _ANY | {"column"}

# type -> (allowed kwargs, required kwargs)
KWARGS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "expect_table_columns_to_match_set": (_ANY | {"column_set", "exact_match"}, frozenset()),
    "expect_table_columns_to_match_ordered_list": (_ANY | {"column_list"}, frozenset()),
    "expect_column_to_exist": (_SCHEMA_COLUMN | {"column_index"}, frozenset({"column"})),
    "expect_table_column_count_to_equal": (_ANY | {"value"}, frozenset({"value"})),
    "expect_table_column_count_to_be_between": (_ANY | {"min_value", "max_value"}, frozenset()),
    "expect_column_values_to_be_of_type": (_MAP | {"type_"}, frozenset({"column", "type_"})),
    "expect_column_values_to_be_in_type_list": (_MAP | {"type_list"}, frozenset({"column"})),
    "expect_column_type_to_be": (_SCHEMA_COLUMN | {"type_"}, frozenset({"column", "type_"})),
    "expect_column_values_to_not_be_null": (_MAP, frozenset({"column"})),
    "expect_column_values_to_be_null": (_MAP, frozenset({"column"})),
    "expect_column_values_to_be_between": (_MAP | _RANGE, frozenset({"column"})),
    "expect_column_values_to_be_in_set": (_MAP | {"value_set"}, frozenset({"column", "value_set"})),
    "expect_column_values_to_not_be_in_set": (
        _MAP | {"value_set"},
        frozenset({"column", "value_set"}),
    ),
    "expect_column_values_to_match_regex": (_MAP | {"regex"}, frozenset({"column"})),
    "expect_column_values_to_not_match_regex": (_MAP | {"regex"}, frozenset({"column", "regex"})),
    "expect_column_value_lengths_to_be_between": (_MAP | _RANGE, frozenset({"column"})),
    "expect_column_value_lengths_to_equal": (_MAP | {"value"}, frozenset({"column", "value"})),
    "expect_table_row_count_to_be_between": (
        _ANY | _RANGE | {"row_condition", "condition_parser"},
        frozenset(),
    ),
    "expect_table_row_count_to_equal": (
        _ANY | {"value", "row_condition", "condition_parser"},
        frozenset({"value"}),
    ),
    "expect_column_values_to_be_unique": (_MAP, frozenset({"column"})),
    "expect_column_min_to_be_between": (_AGG, frozenset({"column"})),
    "expect_column_max_to_be_between": (_AGG, frozenset({"column"})),
    "expect_column_mean_to_be_between": (_AGG, frozenset({"column"})),
    "expect_column_sum_to_be_between": (_AGG, frozenset({"column"})),
    "expect_column_proportion_of_non_null_values_to_be_between": (_AGG, frozenset({"column"})),
}
# at least one bound, as GX's root validators require
NEEDS_A_BOUND = frozenset(
    {"expect_column_values_to_be_between", "expect_column_value_lengths_to_be_between"}
)
SEVERITIES = ("critical", "warning", "info")

# GX 1.x's core expectation types (without "expect_"): a valid type we do not support is told
# apart from a typo without importing GX (test_engine_kwargs checks GX registers every one).
_CORE_NAMES = """
    column_bootstrapped_ks_test_p_value_to_be_greater_than
    column_chisquare_test_p_value_to_be_greater_than column_distinct_values_to_be_in_set
    column_distinct_values_to_contain_set column_distinct_values_to_equal_set
    column_kl_divergence_to_be_less_than column_max_to_be_between column_mean_to_be_between
    column_median_to_be_between column_min_to_be_between
    column_most_common_value_to_be_in_set column_pair_cramers_phi_value_to_be_less_than
    column_pair_values_a_to_be_greater_than_b column_pair_values_to_be_equal
    column_pair_values_to_be_in_set
    column_parameterized_distribution_ks_test_p_value_to_be_greater_than
    column_proportion_of_non_null_values_to_be_between
    column_proportion_of_unique_values_to_be_between column_quantile_values_to_be_between
    column_stdev_to_be_between column_sum_to_be_between column_to_exist column_type_to_be
    column_unique_value_count_to_be_between column_value_lengths_to_be_between
    column_value_lengths_to_equal column_value_z_scores_to_be_less_than
    column_values_to_be_between column_values_to_be_dateutil_parseable
    column_values_to_be_decreasing column_values_to_be_in_set
    column_values_to_be_in_type_list column_values_to_be_increasing
    column_values_to_be_json_parseable column_values_to_be_null column_values_to_be_of_type
    column_values_to_be_unique column_values_to_match_json_schema
    column_values_to_match_like_pattern column_values_to_match_like_pattern_list
    column_values_to_match_regex column_values_to_match_regex_list
    column_values_to_match_strftime_format column_values_to_not_be_in_set
    column_values_to_not_be_null column_values_to_not_be_outliers
    column_values_to_not_match_like_pattern column_values_to_not_match_like_pattern_list
    column_values_to_not_match_regex column_values_to_not_match_regex_list
    compound_columns_to_be_unique multicolumn_sum_to_equal multicolumn_values_to_be_equal
    multicolumn_values_to_be_unique query_results_to_match_comparison
    select_column_values_to_be_unique_within_record table_column_count_to_be_between
    table_column_count_to_equal table_columns_to_match_ordered_list
    table_columns_to_match_set table_row_count_to_be_between table_row_count_to_equal
    table_row_count_to_equal_other_table
"""
GX_CORE_TYPES = frozenset("expect_" + name for name in _CORE_NAMES.split())


_COMPARABLE = float | dict | datetime.date | datetime.datetime | None
_BOUNDS: dict[str, Any] = {
    "expect_column_value_lengths_to_be_between": int | dict | None,
    "expect_column_proportion_of_non_null_values_to_be_between": float | dict | None,
    "expect_table_row_count_to_be_between": int | dict | datetime.datetime | None,
}
_VALUE: dict[str, Any] = {"expect_column_value_lengths_to_equal": float | dict}
_FIELDS: dict[str, Any] = {
    "column": StrictStr,
    "strict_min": bool | dict,
    "strict_max": bool | dict,
    "mostly": confloat(ge=0, le=1),
    "value_set": list | set | dict,
    "regex": str | dict,
    "type_": str | dict,
    "type_list": list[str] | dict | None,
    "column_index": int | dict | None,
    "exact_match": bool | dict | None,
    "column_set": list | set | dict | None,
    "column_list": list | set | dict | None,
    "catch_exceptions": bool,
    "result_format": str | dict,
    "batch_id": str,
    "row_condition": str | None,
    "condition_parser": str | None,
}


def _field_type(key: str, etype: str) -> Any:
    """The GX model's type of one kwarg (pydantic v1 coerces with it, as GX does)."""
    if key in ("min_value", "max_value"):
        return _BOUNDS.get(etype, _COMPARABLE)
    if key == "value":
        return _VALUE.get(etype, int | dict)
    return _FIELDS[key]


def coerced(etype: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The kwargs as GX's models hand them to its metrics: "2020-01-01" becomes a date,
    "2024-06-30 12:00" a datetime, 18 becomes 18.0 where the field is a float, 1.5 a length 1.
    Call after `kwargs_problem` found nothing."""
    return {k: parse_obj_as(_field_type(k, etype), v) for k, v in kwargs.items()}


def kwargs_problem(etype: str, kwargs: dict[str, Any], severity: Any = None) -> str | None:
    """Why these kwargs (and severity) cannot be used for this supported type, or None."""
    allowed, required = KWARGS[etype]
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        return f"unknown kwargs {unknown} (allowed: {sorted(allowed - _ANY)})"
    missing = sorted(required - set(kwargs))
    if missing:
        return f"missing required kwargs {missing}"
    for key, value in kwargs.items():
        try:
            parse_obj_as(_field_type(key, etype), value)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"] if exc.errors() else str(exc)
            return f"{key}={value!r} is not valid: {reason}"
    no_bound = kwargs.get("min_value") is None and kwargs.get("max_value") is None
    if etype in NEEDS_A_BOUND and no_bound:
        return "min_value and max_value cannot both be None"
    if severity is not None and severity not in SEVERITIES:
        return f"severity must be one of {list(SEVERITIES)}, not {severity!r}"
    return None
