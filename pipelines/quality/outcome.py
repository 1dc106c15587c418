"""One expectation's answer on one batch, whichever engine gave it: what the gate records.

GX answers with an `ExpectationValidationResult`; the fast engine (`pipelines.quality.fast`)
answers directly. Both become an `Outcome`, so the streaming gate and the audit read one shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.quality.messages import gx_exception

ENGINES = ("fast", "gx")


@dataclass
class Outcome:
    """success, observed schema fact, row counts, failing rows (positions) and any error."""

    success: bool
    observed: Any = None  # observed_value of a schema expectation (dtype name, columns...)
    unexpected_count: int | None = None  # row-level (and per-value type checks on object)
    missing_count: int | None = None
    mask: np.ndarray | None = None  # the unexpected rows, when the engine located them
    error: str | None = None  # the engine could not evaluate it (GX's exception text)
    unexpected_index: list[int] | None = None  # GX with result_format COMPLETE (audit)


def from_gx(res: Any) -> Outcome | None:
    """GX's validation result as an Outcome (None when GX returned nothing for it)."""
    if res is None:
        return None
    result = res.result or {}
    count = result.get("unexpected_count")
    missing = result.get("missing_count")
    index = result.get("unexpected_index_list")
    return Outcome(
        success=bool(res.success),
        observed=result.get("observed_value"),
        unexpected_count=None if count is None else int(count),
        missing_count=None if missing is None else int(missing),
        error=gx_exception(res.exception_info or {}),
        unexpected_index=None if index is None else [int(i) for i in index],
    )
