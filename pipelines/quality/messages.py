"""Why an expectation failed, or could not be evaluated, on one batch: in words a person can act on.

GX's own results say "unexpected" or bury the exception in nested dicts; these name the missing
or renamed column and the observed type, which is what fixes the input or the suite.
"""

from __future__ import annotations

import difflib
from typing import Any

import pandas as pd

from pipelines.quality.spec import ExpectationSpec


def engine_error(
    spec: ExpectationSpec, outcome: Any, df: pd.DataFrame, engine: str = "gx"
) -> str | None:
    """Why the engine could not evaluate this expectation on this batch (an `Outcome`), or None."""
    if spec.column is not None and spec.column not in df.columns:
        return missing_column(spec, df)
    who = "GX" if engine == "gx" else "the fast engine"
    if outcome is None:
        return f"{spec.label}: {who} returned no result for it"
    if outcome.error is not None:
        return f"{spec.label}: {who} could not evaluate it: {outcome.error[:300]}"
    return None


def gx_exception(info: dict[str, Any]) -> str | None:
    """The exception message in a GX result, flat or keyed by failed metric (both occur)."""
    if info.get("raised_exception"):
        lines = str(info.get("exception_message") or "unknown error").strip().splitlines()
        return lines[0] if lines else "unknown error"
    for value in info.values():
        if isinstance(value, dict) and (found := gx_exception(value)) is not None:
            return found
    return None


def missing_column(spec: ExpectationSpec, df: pd.DataFrame) -> str:
    """The expectation's column is not in the batch; suggests the closest name (a typo)."""
    cols = [str(c) for c in df.columns]
    close = difflib.get_close_matches(str(spec.column), cols, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{spec.label}: column {spec.column!r} is not in the input{hint}"


def schema_message(spec: ExpectationSpec, outcome: Any, df: pd.DataFrame) -> str:
    """A failed schema expectation (an `Outcome`): the column diff (with likely renames) or the
    observed type."""
    kw, cols = spec.kwargs, [str(c) for c in df.columns]
    if spec.type == "expect_table_columns_to_match_set":
        return f"{spec.label}: {_column_diff(kw, cols)}"
    if spec.type == "expect_table_columns_to_match_ordered_list":
        return f"{spec.label}: columns are {cols}, expected {list(kw.get('column_list') or [])}"
    if spec.column is not None and "type" in spec.type:
        wanted = kw.get("type_") or kw.get("type_list")
        observed = outcome.observed or df[spec.column].dtype
        return (
            f"{spec.label}: column {spec.column!r} has type {observed} "
            f"(pandas dtype {df[spec.column].dtype}), expected {wanted}"
        )
    return f"{spec.label}: observed {outcome.observed!r}"


def _column_diff(kw: dict[str, Any], cols: list[str]) -> str:
    """Missing and unexpected columns of a column-set expectation, and renames they suggest."""
    expected = list(kw.get("column_set") or [])
    missing = [c for c in expected if c not in cols]
    extra = [c for c in cols if c not in expected] if kw.get("exact_match", True) else []
    parts = []
    if missing:
        parts.append(f"missing column(s) {missing}")
    if extra:
        parts.append(f"unexpected column(s) {extra}")
    renames = [
        f"{m!r} -> {c[0]!r}"
        for m in missing
        if (c := difflib.get_close_matches(m, extra, n=1, cutoff=0.6))
    ]
    if renames:
        parts.append(f"renamed? {', '.join(renames)}")
    return "; ".join(parts) or "columns differ"
