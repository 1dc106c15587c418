"""One expectation's result over the whole input, merged exactly from every shard's partial state.

GX-run expectations add up their per-batch counts; aggregates are computed here, once, from the
shards' column statistics and sorted ID hashes, so they are exact whatever the sharding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.quality.labels import format_value, range_text
from pipelines.quality.rows import between
from pipelines.quality.spec import ExpectationSpec
from pipelines.quality.state import MAX_EXAMPLES, ExpectationState, GateState
from pipelines.quality.uniqueness import find_duplicates, unmix64

ROW_COUNT_TYPES = ("expect_table_row_count_to_be_between", "expect_table_row_count_to_equal")


@dataclass
class ExpectationResult:
    """One expectation's result over the whole input."""

    index: int
    id: str
    type: str
    kwargs: dict[str, Any]
    column: str | None
    kind: str
    severity: str
    how: str  # "gx-per-batch" | "exact-merged"
    label: str
    evaluated: bool
    success: bool
    element_count: int = 0
    unexpected_count: int = 0
    missing_count: int = 0
    unexpected_percent: float = 0.0
    rows_quarantined: int = 0
    gx_unexpected_count: int | None = None
    observed_value: Any = None
    examples: list[Any] = field(default_factory=list)
    example_ids: list[Any] = field(default_factory=list)
    message: str | None = None


def _base(spec: ExpectationSpec, evaluated: bool, success: bool, **kw: Any) -> ExpectationResult:
    return ExpectationResult(
        spec.index,
        spec.id,
        spec.type,
        spec.kwargs,
        spec.column,
        spec.kind,
        spec.severity,
        spec.how,
        spec.label,
        evaluated,
        success,
        **kw,
    )


def merge_gx(
    spec: ExpectationSpec, accs: list[ExpectationState], batches: int
) -> ExpectationResult:
    """A schema or row-level expectation: evaluated only if GX evaluated it on every batch."""
    errors = [e for a in accs for e in a.errors]
    evaluated_batches = sum(a.batches_evaluated for a in accs)
    evaluated = batches > 0 and evaluated_batches == batches
    if spec.kind == "schema":
        return _merge_schema(spec, accs, evaluated, errors)
    element = sum(a.element_count for a in accs)
    unexpected = sum(a.unexpected_count for a in accs)
    missing = sum(a.missing_count for a in accs)
    examples = [x for a in accs for x in a.examples][:MAX_EXAMPLES]
    ids = [x for a in accs for x in a.example_ids][:MAX_EXAMPLES]
    pct = 100.0 * unexpected / (element - missing) if element - missing > 0 else 0.0
    if not evaluated:
        message = errors[0] if errors else f"{spec.label}: no batch was validated"
    elif unexpected:
        message = f"{spec.label}: {unexpected} unexpected row(s), e.g. {examples[:5]}"
    else:
        message = None
    return _base(
        spec,
        evaluated,
        evaluated and unexpected == 0,
        element_count=element,
        unexpected_count=unexpected,
        missing_count=missing,
        unexpected_percent=pct,
        rows_quarantined=sum(a.rows_quarantined for a in accs),
        gx_unexpected_count=sum(a.gx_unexpected_count for a in accs),
        examples=examples,
        example_ids=ids,
        message=message,
    )


def _merge_schema(
    spec: ExpectationSpec, accs: list[ExpectationState], evaluated: bool, errors: list[str]
) -> ExpectationResult:
    """A schema expectation fails the input if it failed on any batch."""
    failed = sum(a.batches_failed for a in accs)
    observed = next((a.observed for a in accs if a.observed is not None), None)
    message = None
    if not evaluated:
        message = errors[0] if errors else f"{spec.label}: no batch was validated"
    elif failed:
        message = errors[0] if errors else spec.label
    return _base(
        spec,
        evaluated,
        evaluated and not failed,
        observed_value=observed,
        message=message,
        unexpected_count=failed,
    )


def _in_range(value: float | None, kw: dict[str, Any]) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    ok = between(value, kw)
    return True if ok is None else bool(ok)


def merge_aggregate(
    spec: ExpectationSpec,
    accs: list[ExpectationState],
    states: list[GateState],
    rows: int,
    id_hash_arrays: Sequence[np.ndarray],
) -> ExpectationResult:
    """An aggregate, computed exactly: row count over `rows`, uniqueness over every ID hash
    part (one per shard state), column statistics over the shards' scored rows."""
    errors = [e for a in accs for e in a.errors]
    if errors:
        return _base(spec, False, False, message=errors[0])
    if spec.type in ROW_COUNT_TYPES:
        return _merge_row_count(spec, rows)
    if spec.type == "expect_column_values_to_be_unique":
        return _merge_unique(spec, states, id_hash_arrays)
    return _merge_column_stat(spec, accs)


def _merge_row_count(spec: ExpectationSpec, rows: int) -> ExpectationResult:
    kw = spec.kwargs
    ok = rows == kw["value"] if "value" in kw else _in_range(rows, spec.values)
    expected = f"exactly {format_value(kw['value'])}" if "value" in kw else range_text(kw)
    return _base(
        spec,
        True,
        ok,
        element_count=rows,
        observed_value=rows,
        message=None if ok else f"{spec.label}: the input has {rows} rows, expected {expected}",
    )


def _merge_unique(
    spec: ExpectationSpec, states: list[GateState], id_hash_arrays: Sequence[np.ndarray]
) -> ExpectationResult:
    """Duplicates across all shards' sorted ID hashes; integer IDs are reported as themselves."""
    parts = list(id_hash_arrays)
    if len(parts) != len(states):
        raise ValueError(
            f"merge_verdict got {len(parts)} ID hash parts for {len(states)} shard states"
        )
    report = find_duplicates(parts)
    exact = all(s.id_kind in ("int", "none") for s in states)
    examples: list[Any] = (
        [int(v) for v in unmix64(np.array(report.examples, np.uint64)).view(np.int64)]
        if exact
        else [f"hash:{h:016x}" for h in report.examples]
    )
    message = None
    if not report.ok:
        message = (
            f"{spec.label}: {report.values} duplicated value(s) on {report.rows} rows, "
            f"e.g. {examples[:10]}"
        )
    return _base(
        spec,
        True,
        report.ok,
        element_count=report.total,
        unexpected_count=report.rows,
        observed_value=report.values,
        unexpected_percent=100.0 * report.rows / report.total if report.total else 0.0,
        examples=examples,
        message=message,
    )


def _merge_column_stat(spec: ExpectationSpec, accs: list[ExpectationState]) -> ExpectationResult:
    """Min, max, mean, sum or non-null share of a column, over every shard's scored rows."""
    n_rows = sum(a.rows for a in accs)
    non_null = sum(a.non_null for a in accs)
    observed = _observed(spec.type, accs, n_rows, non_null)
    ok = _in_range(observed, spec.values)
    message = None
    if not ok:
        shown = "no values" if observed is None else f"{observed:.6g}"
        message = (
            f"{spec.label}: observed {shown} over {n_rows} scored rows "
            f"({non_null} non-null), expected {range_text(spec.kwargs)}"
        )
    return _base(
        spec,
        True,
        ok,
        element_count=n_rows,
        missing_count=n_rows - non_null,
        observed_value=observed,
        message=message,
    )


def _observed(
    etype: str, accs: list[ExpectationState], n_rows: int, non_null: int
) -> float | int | None:
    """The merged statistic; integer sums stay exact integers, float sums use `math.fsum`."""
    mins = [a.minimum for a in accs if a.minimum is not None]
    maxs = [a.maximum for a in accs if a.maximum is not None]
    totals = [a.total for a in accs]
    total: float | int = (
        sum(totals) if all(isinstance(t, int) for t in totals) else math.fsum(totals)
    )
    if etype == "expect_column_proportion_of_non_null_values_to_be_between":
        return non_null / n_rows if n_rows else None
    if not non_null:
        return None
    if etype == "expect_column_min_to_be_between":
        return min(mins)
    if etype == "expect_column_max_to_be_between":
        return max(maxs)
    if etype == "expect_column_sum_to_be_between":
        return total
    return total / non_null
