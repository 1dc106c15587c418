"""Row masks: the same semantics as GX's pandas metrics, vectorized, returning WHICH rows fail.

GX counts; a mask locates, so the failing rows can be quarantined with a reason. A mask is computed
only where GX counted unexpected rows (clean data pays for GX alone) and must agree with GX's count.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipelines.quality.spec import ExpectationSpec


def between(values: Any, kw: dict[str, Any]) -> Any:
    """Elementwise "inside the expectation's bounds" (None when it sets no bound)."""
    lo, hi = kw.get("min_value"), kw.get("max_value")
    ok = None
    if lo is not None:
        ok = (values > lo) if kw.get("strict_min") else (values >= lo)
    if hi is not None:
        upper = (values < hi) if kw.get("strict_max") else (values <= hi)
        ok = upper if ok is None else ok & upper
    return ok


def row_mask(spec: ExpectationSpec, column: pd.Series) -> tuple[np.ndarray, int]:
    """(unexpected rows, missing count) for one routed expectation on one column."""
    etype = spec.type
    isnull = column.isna().to_numpy()
    if etype == "expect_column_values_to_not_be_null":
        return isnull, 0
    if etype == "expect_column_values_to_be_null":
        return ~isnull, 0
    missing = int(isnull.sum())
    present = ~isnull
    if etype == "expect_column_values_to_be_between":
        return _outside(spec.kwargs, column, present), missing
    if etype in ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set"):
        return _set_mask(spec.kwargs, etype, column, present), missing
    sub = column[present].astype(str)
    if etype in ("expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex"):
        hit = sub.str.contains(spec.kwargs["regex"]).to_numpy(dtype=bool, na_value=False)
        bad_sub = hit if "not_match" in etype else ~hit
    else:  # value lengths
        lengths = sub.str.len().to_numpy()
        if etype == "expect_column_value_lengths_to_equal":
            bad_sub = lengths != spec.kwargs["value"]
        else:
            bad_sub = ~np.asarray(between(lengths, spec.kwargs), dtype=bool)
    out = np.zeros(len(column), bool)
    out[np.flatnonzero(present)[bad_sub]] = True
    return out, missing


def _outside(kw: dict[str, Any], column: pd.Series, present: np.ndarray) -> np.ndarray:
    """Present values outside the bounds, numbers, datetimes (bounds as text) or others."""
    if column.dtype.kind in "iuf":  # numpy numbers: NaN compares False, masked by `present`
        ok = between(column.to_numpy(), kw)
        return present & ~np.asarray(ok, dtype=bool)
    lo, hi = kw.get("min_value"), kw.get("max_value")
    if isinstance(column.dtype, pd.DatetimeTZDtype) or column.dtype.kind == "M":
        kw = {**kw, "min_value": _when(lo), "max_value": _when(hi)}
    inside = between(column[present], kw).to_numpy(dtype=bool, na_value=True)
    out = np.zeros(len(column), bool)
    out[np.flatnonzero(present)[~inside]] = True  # positional: any index works
    return out


def _set_mask(kw: dict[str, Any], etype: str, column: pd.Series, present: np.ndarray) -> np.ndarray:
    """Present values outside (in-set) or inside (not-in-set) the expectation's value set."""
    value_set = kw.get("value_set")
    if value_set is None:
        return np.zeros(len(column), bool)
    if etype.endswith("not_be_in_set") and pd.api.types.is_datetime64_any_dtype(column):
        from great_expectations.expectations.metrics.util import parse_value_set

        value_set = parse_value_set(value_set)
    inside = column.isin(value_set).to_numpy(dtype=bool, na_value=False)
    return present & (inside if etype.endswith("not_be_in_set") else ~inside)


def _when(value: Any) -> Any:
    """A datetime bound written as text, parsed as GX parses it."""
    if isinstance(value, str):
        from dateutil.parser import parse

        return parse(value)
    return value
