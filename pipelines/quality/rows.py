"""Row masks: the same semantics as GX's pandas metrics, vectorized, returning WHICH rows fail.

GX counts; a mask locates, so the failing rows can be quarantined with a reason. Under
`validation.engine: gx` a mask is computed only where GX counted unexpected rows and must agree
with GX's count; under `fast` the masks are the engine (`pipelines.quality.fast`). Null-skipping
types see only the present values, as GX's column map metrics do. Nothing here imports GX.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from dateutil.parser import parse

from pipelines.quality.spec import ExpectationSpec

DEFAULT_REGEX = "(?s).*"  # GX's default for expect_column_values_to_match_regex


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
    etype, kw = spec.type, spec.values
    isnull = column.isna().to_numpy()
    if etype == "expect_column_values_to_not_be_null":
        return isnull, 0
    if etype == "expect_column_values_to_be_null":
        return ~isnull, 0
    missing = int(isnull.sum())
    present = ~isnull
    sub = column[present] if missing else column
    if etype == "expect_column_values_to_be_between":
        bad_sub = ~_inside(kw, sub)
    elif etype in ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set"):
        bad_sub = _set_bad(kw, etype, sub)
    elif etype.endswith("match_regex"):
        regex = kw.get("regex", DEFAULT_REGEX)
        hit = sub.astype(str).str.contains(regex).to_numpy(dtype=bool, na_value=False)
        bad_sub = hit if "not_match" in etype else ~hit
    else:  # value lengths
        lengths = sub.astype(str).str.len().to_numpy()
        if etype == "expect_column_value_lengths_to_equal":
            bad_sub = lengths != kw["value"]
        else:
            bad_sub = ~np.asarray(between(lengths, kw), dtype=bool)
    if not missing:
        return np.asarray(bad_sub, dtype=bool), 0
    out = np.zeros(len(column), bool)
    out[np.flatnonzero(present)[bad_sub]] = True  # positional: any index works
    return out, missing


def _inside(kw: dict[str, Any], sub: pd.Series) -> np.ndarray:
    """GX's `column_values.between` on the present values: vectorized for int64/float64 and
    ns / tz-aware datetimes (text bounds parsed), else value by value with GX's type rule."""
    lo, hi = kw.get("min_value"), kw.get("max_value")
    if lo is None and hi is None:
        raise ValueError("min_value and max_value cannot both be None")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError("min_value cannot be greater than max_value")
    dtype = sub.dtype
    if dtype in [int, float]:  # GX: numpy int64 and float64 only
        return np.asarray(between(sub.to_numpy(), kw), dtype=bool)
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_ns_dtype(dtype):
        kw = {**kw, "min_value": _when(lo), "max_value": _when(hi)}
        return between(sub, kw).to_numpy(dtype=bool, na_value=False)
    return _inside_each(kw, sub)


def _inside_each(kw: dict[str, Any], sub: pd.Series) -> np.ndarray:
    """GX's per-value `is_between`: a text value needs text bounds and the reverse (TypeError).
    Vectorized where that rule is decided by the dtype (text columns, numeric extension types)."""
    lo, hi = kw.get("min_value"), kw.get("max_value")
    bounds = [b for b in (lo, hi) if b is not None]
    text_bounds = [isinstance(b, str) for b in bounds]
    dtype = sub.dtype
    if isinstance(dtype, pd.StringDtype) and all(text_bounds):
        return between(sub, kw).to_numpy(dtype=bool, na_value=False)
    numeric = pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)
    if numeric and not any(text_bounds) and all(isinstance(b, int | float) for b in bounds):
        return np.asarray(between(sub.to_numpy(), kw), dtype=bool)
    out = np.empty(len(sub), bool)
    for i, val in enumerate(sub.tolist()):
        if any(isinstance(val, str) != t for t in text_bounds):
            raise TypeError(
                "Column values, min_value, and max_value must either be None or of the same type."
            )
        out[i] = bool(between(val, kw))
    return out


def _set_bad(kw: dict[str, Any], etype: str, sub: pd.Series) -> np.ndarray:
    """Present values outside (in-set) or inside (not-in-set) the expectation's value set."""
    value_set = kw.get("value_set")
    if value_set is None:
        return np.zeros(len(sub), bool)
    if etype.endswith("not_be_in_set") and pd.api.types.is_datetime64_any_dtype(sub):
        value_set = [parse(v) if isinstance(v, str) else v for v in value_set]  # GX's parsing
    inside = sub.isin(value_set).to_numpy(dtype=bool, na_value=False)
    return inside if etype.endswith("not_be_in_set") else ~inside


def _when(value: Any) -> Any:
    """A datetime bound written as text, parsed as GX parses it."""
    return parse(value) if isinstance(value, str) else value
