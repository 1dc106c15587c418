"""The fast engine: every schema and row-level expectation of a batch, vectorized, without GX.

`validation.engine: fast` takes each batch's results from here instead of GX; GX checks a
deterministic sample of every shard as well (`pipelines.quality.audit`), and any disagreement
fails the run. Nothing here imports GX (importing it costs ~2.6 s): schema types are GX's pandas
logic ported (`fast_schema`), row-level types are our row masks (`rows`), which are written to
GX's pandas metrics. An exception is the engine's answer too ("could not evaluate"), as in GX.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipelines.quality.fast_schema import SCHEMA_CHECKS
from pipelines.quality.outcome import Outcome
from pipelines.quality.rows import row_mask
from pipelines.quality.spec import NULL_TYPES, ExpectationSpec
from pipelines.quality.suite import Suite


def evaluate(spec: ExpectationSpec, df: pd.DataFrame) -> Outcome:
    """One schema or row-level expectation on one batch."""
    try:
        if spec.kind == "schema":
            return SCHEMA_CHECKS[spec.type](spec.values, df)
        mask, missing = row_mask(spec, df[spec.column])
    except Exception as exc:  # the data cannot be checked this way: GX reports it, so do we
        first = (str(exc).strip().splitlines() or [""])[0]
        return Outcome(False, error=f"{type(exc).__name__}: {first}")
    count = int(mask.sum())
    return Outcome(count == 0, None, count, 0 if spec.type in NULL_TYPES else missing, mask)


def run_fast(suite: Suite, df: pd.DataFrame) -> dict[str, Any]:
    """Outcomes of the suite's schema and row-level expectations on one batch, by id.

    An expectation whose column is not in the batch gets no outcome (the gate says which
    column is missing, as it does under GX)."""
    return {
        s.id: evaluate(s, df) for s in suite.gx_specs if s.column is None or s.column in df.columns
    }
