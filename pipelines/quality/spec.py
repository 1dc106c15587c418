"""Classifying a suite's expectations: what kind each is, and refusing what the gate cannot run.

Each expectation is one of three kinds, decided when the suite is loaded (anything else is refused,
so nothing is silently skipped):

* **schema** (columns, column types): run by GX on every batch; failing in any batch fails the
  run (`check_batch` raises at once unless `fail_fast=False`).
* **row** (not-null, between, in-set, regex, lengths): run by GX on every batch *and* by our own
  vectorized masks (`pipelines.quality.rows`), which say *which* rows failed so they can be
  quarantined with a reason; the mask's count must equal GX's.
* **aggregate** (row count, ID uniqueness, column min/max/mean/sum, share of non-null values):
  computed exactly over the whole input from per-shard partial state, never per batch.
"""

from __future__ import annotations

import difflib
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from pipelines.errors import ConfigError
from pipelines.quality.kwcheck import GX_CORE_TYPES, coerced, kwargs_problem
from pipelines.quality.labels import expectation_label

Kind = Literal["schema", "row", "aggregate"]

SCHEMA_TYPES = frozenset(
    {
        "expect_table_columns_to_match_set",
        "expect_table_columns_to_match_ordered_list",
        "expect_column_to_exist",
        "expect_table_column_count_to_equal",
        "expect_table_column_count_to_be_between",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_be_in_type_list",
        "expect_column_type_to_be",
    }
)
ROW_TYPES = frozenset(
    {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_null",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_in_set",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_not_match_regex",
        "expect_column_value_lengths_to_be_between",
        "expect_column_value_lengths_to_equal",
    }
)
AGGREGATE_TYPES = frozenset(
    {
        "expect_table_row_count_to_be_between",
        "expect_table_row_count_to_equal",
        "expect_column_values_to_be_unique",
        "expect_column_min_to_be_between",
        "expect_column_max_to_be_between",
        "expect_column_mean_to_be_between",
        "expect_column_sum_to_be_between",
        "expect_column_proportion_of_non_null_values_to_be_between",
    }
)
# Aggregates computed from per-column statistics (rows, non-null, sum, min, max) of scored rows.
COLUMN_STATS = AGGREGATE_TYPES - {
    "expect_table_row_count_to_be_between",
    "expect_table_row_count_to_equal",
    "expect_column_values_to_be_unique",
}
# Row-level types GX evaluates without dropping the column's nulls first.
NULL_TYPES = frozenset({"expect_column_values_to_not_be_null", "expect_column_values_to_be_null"})

SUPPORTED_HINT = (
    "see validation/README.md for the supported expectation types "
    f"(schema: {len(SCHEMA_TYPES)}, row-level: {len(ROW_TYPES)}, aggregate: {len(AGGREGATE_TYPES)})"
)


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation of a suite, with how the gate evaluates it."""

    index: int
    id: str
    type: str
    kwargs: dict[str, Any]  # as written in the suite file
    kind: Kind
    severity: str  # "critical" fails/quarantines; "warning"/"info" are only reported
    label: str  # e.g. "expect_column_values_to_be_between(age, 18..120)": the quarantine reason
    # the kwargs as GX's models coerce them (dates parsed, floats): what the checks compare with
    values: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column")

    @property
    def critical(self) -> bool:
        return self.severity == "critical"

    @property
    def how(self) -> str:
        return "exact-merged" if self.kind == "aggregate" else "gx-per-batch"


def expectation_items(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The suite's expectation dicts, each with an id (stable: derived from name and position)."""
    items = []
    for i, item in enumerate(raw["expectations"]):
        item = dict(item)
        item.setdefault("id", str(uuid.uuid5(uuid.NAMESPACE_URL, f"{raw['name']}#{i}")))
        items.append(item)
    return items


def classify(
    raw: dict[str, Any], source: str, *, gx_check: bool = False
) -> tuple[ExpectationSpec, ...]:
    """Every expectation of a suite, classified; one ConfigError lists all that cannot be used.

    Our own kwargs checks always run (`kwcheck`); `gx_check` also runs GX's models over each
    expectation, which imports GX (~2.6 s): done when GX will run anyway (`Suite.check_with_gx`).
    """
    specs = []
    problems: list[ConfigError] = []
    seen_ids: set[str] = set()
    for i, item in enumerate(expectation_items(raw)):
        try:
            specs.append(_spec(i, item, source, seen_ids, gx_check))
        except ConfigError as exc:  # keep going: one message lists every expectation to fix
            problems.append(exc)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        lines = [f"  {p.where.removeprefix(source + ', ')}: {p.what}" for p in problems]
        raise ConfigError(
            f"{len(problems)} of {len(specs) + len(problems)} expectations cannot be used:\n"
            + "\n".join(lines)
            + "\n",
            where=source,
            fix=SUPPORTED_HINT,
        )
    return tuple(specs)


def _bad(problem: str, where: str) -> ConfigError:
    return ConfigError(problem, where=where, fix=SUPPORTED_HINT)


def _spec(
    i: int, item: dict[str, Any], source: str, seen_ids: set[str], gx_check: bool
) -> ExpectationSpec:
    """One expectation, checked and classified, or a ConfigError saying why it cannot be used."""
    if not isinstance(item.get("type"), str) or not isinstance(item.get("kwargs"), dict):
        raise _bad(
            'each expectation needs a "type" string and a "kwargs" object',
            f"{source}, expectation #{i}",
        )
    etype, kwargs = item["type"], item["kwargs"]
    where = f"{source}, expectation #{i} ({etype})"
    if item["id"] in seen_ids:
        raise _bad(f"duplicate expectation id {item['id']!r}", where)
    seen_ids.add(item["id"])
    if _has_parameter(kwargs):
        raise _bad("suite parameters ($PARAMETER) are not supported: write the values", where)
    if gx_check:
        _gx_expectation(item, where)
    kind = _kind(etype, where)
    if (problem := kwargs_problem(etype, kwargs, item.get("severity"))) is not None:
        raise _bad(problem, where)
    _check_streamable(etype, kwargs, where)
    severity = str(item.get("severity") or "critical")
    label = expectation_label(etype, kwargs)
    values = coerced(etype, kwargs)
    return ExpectationSpec(i, item["id"], etype, kwargs, kind, severity, label, values)


def _gx_expectation(item: dict[str, Any], where: str) -> Any:
    """The GX expectation object, so GX's own models check the kwargs; unknown types get a hint."""
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )
    from great_expectations.expectations.registry import list_registered_expectation_implementations

    etype = item["type"]
    try:
        config = ExpectationConfiguration(**{k: v for k, v in item.items() if k != "id"})
        return config.to_domain_obj()
    except Exception as exc:  # GX raises pydantic, KeyError, its own types...
        message = getattr(exc, "message", None) or str(exc)
        if "not found" in message and etype in message:
            known = list_registered_expectation_implementations()
            close = difflib.get_close_matches(etype, known, n=1, cutoff=0.8)
            message = f"unknown expectation type {etype!r}" + (
                f" (did you mean {close[0]!r}?)" if close else ""
            )
        raise _bad(f"GX rejects this expectation: {message}", where) from None


def _kind(etype: str, where: str) -> Kind:
    """How the streaming gate evaluates this type, or a ConfigError if it cannot."""
    if etype in SCHEMA_TYPES:
        return "schema"
    if etype in ROW_TYPES:
        return "row"
    if etype in AGGREGATE_TYPES:
        return "aggregate"
    close = difflib.get_close_matches(
        etype, sorted(SCHEMA_TYPES | ROW_TYPES | AGGREGATE_TYPES), n=1, cutoff=0.8
    )
    if close and etype not in GX_CORE_TYPES:
        raise _bad(f"unknown expectation type {etype!r} (did you mean {close[0]!r}?)", where)
    raise _bad(
        f"{etype!r} is not supported by the streaming gate: neither a row-level check "
        "it can route to quarantine nor an aggregate it can merge exactly across batches",
        where,
    )


def _check_streamable(etype: str, kwargs: dict[str, Any], where: str) -> None:
    """Refuse what GX accepts but the gate cannot route or merge exactly, or what is a typo."""
    if kwargs.get("row_condition"):
        raise _bad("row_condition is not supported by the streaming gate", where)
    mostly = kwargs.get("mostly", 1.0)
    if mostly is not None and mostly < 1.0:
        raise _bad(
            f"mostly={mostly} is not supported: every unexpected row is quarantined; tolerate "
            "bad rows with validation.max_quarantine_fraction instead",
            where,
        )
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    if isinstance(lo, int | float) and isinstance(hi, int | float) and lo > hi:
        raise _bad(f"min_value {lo} is greater than max_value {hi}", where)
    if etype in ROW_TYPES | COLUMN_STATS and not kwargs.get("column"):
        raise _bad("a column expectation needs kwargs.column", where)


def _has_parameter(value: Any) -> bool:
    if isinstance(value, dict):
        return "$PARAMETER" in value or any(_has_parameter(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_parameter(v) for v in value)
    return False
