"""Running GX on one batch: one ephemeral GX context per process, shared by its threads.

Building the context costs seconds, so it is built once, under a lock: worker threads of one
process may validate batches at the same time and must not build two. GX's own INFO chatter is
silenced where it starts (`quiet_gx_logs`), in every process that uses GX: CLI, pool worker or
Airflow task alike.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

import pandas as pd

from pipelines.quality.spec import NULL_TYPES
from pipelines.quality.suite import Suite

RESULT_FORMAT = "BASIC"  # unexpected_count per expectation; cheapest format that has it

_GX_LOCK = threading.Lock()
_GX_BATCH_DEFINITION: Any = None
GX_LOGGER = "great_expectations"


def quiet_gx_logs() -> None:
    """GX's loggers pass on warnings and errors only, never its INFO chatter.

    GX logs "Created temporary directory ... for ephemeral docs site", "Loading 'datasources'"
    and dozens of import-time lines at INFO, which a console or an Airflow task log at INFO would
    show. Call it before GX is imported (its import logs) and again after: some GX modules set
    their logger's level themselves as they are imported (`data_context.types.base`: INFO).
    """
    logging.getLogger(GX_LOGGER).setLevel(logging.WARNING)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if (
            name.startswith(f"{GX_LOGGER}.")
            and isinstance(logger, logging.Logger)
            and logging.NOTSET < logger.level < logging.WARNING
        ):
            logger.setLevel(logging.WARNING)


def _gx_batch_definition() -> Any:
    """The process's GX batch definition over an in-memory dataframe asset (built once)."""
    global _GX_BATCH_DEFINITION
    with _GX_LOCK:
        if _GX_BATCH_DEFINITION is None:
            quiet_gx_logs()  # before the import: it logs too
            import great_expectations as gx
            import great_expectations.execution_engine.pandas_execution_engine as gx_pandas
            from great_expectations.data_context.types.base import ProgressBarsConfig

            # GX fingerprints every batch (hash_pandas_object + md5 over all cells, twice per
            # `Batch.validate`): ~0.35 s per 500k rows, for metadata we never read. Frames above
            # this size threshold skip it; 0 skips it always. Validation results are unchanged.
            if hasattr(gx_pandas, "HASH_THRESHOLD"):
                gx_pandas.HASH_THRESHOLD = 0
            quiet_gx_logs()  # after it: some GX modules set their own level when imported
            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(
                globally=False, metric_calculations=False
            )
            with contextlib.suppress(Exception):  # analytics may be absent from this build
                context.enable_analytics(False)
            source = context.data_sources.add_pandas("batchscore")
            asset = source.add_dataframe_asset("batch")
            _GX_BATCH_DEFINITION = asset.add_batch_definition_whole_dataframe("whole")
            quiet_gx_logs()  # and any logger the context's modules made
        return _GX_BATCH_DEFINITION


def run_gx(
    suite: Suite,
    df: pd.DataFrame,
    result_format: str = RESULT_FORMAT,
    only: frozenset[str] | None = None,
) -> dict[str, Any]:
    """Validate one batch with GX; results keyed by expectation id (GX reorders them).

    `result_format="COMPLETE"` (the fast engine's audit) also lists the failing rows' index;
    `only` limits the call to those expectation ids (GX's cost is mostly per expectation).
    GX drops the nulls of a column before a null-skipping map expectation by filtering the
    *whole* frame (every column copied, ~0.2 us per row and column with nulls). So expectations
    on columns that hold nulls in this batch run in a second call on just those columns: same
    values, same GX code, a fraction of the copying. Everything else runs on the full batch.
    """
    specs = [s for s in suite.gx_specs if only is None or s.id in only]
    narrow_cols = sorted(
        {
            s.column
            for s in specs
            if s.kind == "row"
            and s.type not in NULL_TYPES
            and s.column in df.columns
            and df[s.column].hasnans
        }
    )
    narrow = tuple(
        s.id
        for s in specs
        if s.kind == "row" and s.type not in NULL_TYPES and s.column in narrow_cols
    )
    wide = tuple(s.id for s in specs if s.id not in narrow)
    results: dict[str, Any] = {}
    for ids, frame in ((wide, df), (narrow, df[narrow_cols] if narrow else None)):
        if not ids:
            continue
        batch = _gx_batch_definition().get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(suite.gx_suite(ids), result_format=result_format)
        results.update({r.expectation_config.id: r for r in result.results})
    return results
