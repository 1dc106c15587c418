"""The streaming gate: a GX Core 1.x suite evaluated over one shard, batch by batch.

`StreamingGate` runs in each shard/worker and keeps only mergeable partial state (counts, sums,
min, max, sorted ID hashes); `pipelines.quality.verdict.merge_verdict` joins the shards' states
into one verdict. Schema and row-level results come from one of two engines:

* `engine="gx"`: GX on every batch; row-level failures are located by our own masks
  (`pipelines.quality.rows`), whose count must equal GX's `unexpected_count` for every
  expectation and batch, or the gate stops with `GateConsistencyError`.
* `engine="fast"`: the vectorized engine (`pipelines.quality.fast`) on every batch, and GX on a
  deterministic sample of the shard (`audit_rows`; `pipelines.quality.audit`) at `finish()`: any
  disagreement stops the gate with `EngineDisagreement`. GX is imported only for that audit.
  With `defer_audit` the gate only keeps the sample (`audit_sample`): a run audits every shard's
  sample in one GX pass when it finishes, so the processes that score never import GX.
 Column statistics describe the rows that will be scored (rows quarantined
by a row-level expectation, or by the caller, are left out), so one bad value is quarantined
rather than failing the table; row count and uniqueness cover every input row.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from pipelines.errors import ConfigError, QualityGateError
from pipelines.quality.audit import DEFAULT_AUDIT_ROWS, AuditSample, audit
from pipelines.quality.fast import run_fast
from pipelines.quality.gx import run_gx
from pipelines.quality.jsonsafe import jsonable
from pipelines.quality.messages import engine_error, missing_column, schema_message
from pipelines.quality.outcome import ENGINES, Outcome, from_gx
from pipelines.quality.rows import row_mask
from pipelines.quality.spec import COLUMN_STATS, NULL_TYPES, ExpectationSpec
from pipelines.quality.state import MAX_EXAMPLES, BatchOutcome, ExpectationState, GateState
from pipelines.quality.suite import Suite
from pipelines.quality.uniqueness import IdHashCollector
from pipelines.quality.verdict import gate_error

MAX_REASON_KINDS = 200  # distinct reason combinations counted by name; the rest are pooled

Flagged = list[tuple[ExpectationSpec, np.ndarray]]  # critical row expectations and their masks


class GateConsistencyError(QualityGateError):
    """Our row masks and GX disagree: a bug or a GX behaviour change, never a data problem."""


class StreamingGate:
    """Validates one shard batch by batch; `finish()` gives the shard's mergeable state.

    Call `check_batch` with batches of `validation.batch_rows` rows (GX costs a fixed ~0.2 s per
    call, whatever the size), after the data contract has typed the columns. Memory is one batch
    plus 8 bytes per ID seen (the sorted hashes of this shard), plus the audit sample under
    `engine="fast"` (at most `audit_rows` rows; 0: no audit, no GX cross-check at all).
    """

    def __init__(
        self,
        suite: Suite,
        id_column: str | None = None,
        *,
        fail_fast: bool = True,
        engine: str = "fast",
        audit_rows: int = DEFAULT_AUDIT_ROWS,
        defer_audit: bool = False,
    ):
        if engine not in ENGINES:
            raise ConfigError(f"unknown validation engine {engine!r}: one of {list(ENGINES)}")
        if id_column and suite.unique_column and suite.unique_column != id_column:
            raise ConfigError(
                f"suite {suite.name!r} checks uniqueness of {suite.unique_column!r} but the ID "
                f"column is {id_column!r}",
                where=suite.source,
                fix="make expect_column_values_to_be_unique name the ID column (data.id_column)",
            )
        self.suite = suite
        self.id_column = id_column or suite.unique_column
        self.fail_fast = fail_fast
        self.engine = engine
        self.audit_rows = audit_rows if engine == "fast" else 0
        self.defer_audit = defer_audit
        if engine == "gx" or (self.audit_rows and not defer_audit):
            suite.check_with_gx()  # GX's own kwargs check, once GX is needed anyway
        self._sample = AuditSample(self.audit_rows)
        self._ids = IdHashCollector()
        self._state = GateState(
            suite.name,
            suite.digest,
            self.id_column,
            expectations=[ExpectationState(s.index) for s in suite.specs],
            engine=engine,
            audit={"rows_limit": self.audit_rows},
        )
        self._finished = False

    # ---- per batch

    def check_batch(
        self, df: pd.DataFrame, already_quarantined: np.ndarray | None = None
    ) -> BatchOutcome:
        """Validate one batch. Rows the caller already quarantined (e.g. unparseable values)
        count toward the quarantined share and are left out of column statistics.

        Raises QualityGateError on a schema failure when `fail_fast` (the default), and
        GateConsistencyError if a mask disagrees with GX.
        """
        if self._finished:
            raise RuntimeError("check_batch after finish()")
        st, n = self._state, len(df)
        if already_quarantined is not None and already_quarantined.shape != (n,):
            raise ValueError(
                f"already_quarantined has shape {already_quarantined.shape}, not ({n},)"
            )
        if st.columns is None:
            st.columns = [str(c) for c in df.columns]
            st.dtypes = {str(c): str(t) for c, t in df.dtypes.items()}
        t0 = time.perf_counter()
        results = self._validate(df)
        t_gx = time.perf_counter() - t0
        self._sample.add(df)
        t1 = time.perf_counter()
        problems: list[str] = []
        flagged: Flagged = []
        for spec in self.suite.gx_specs:
            self._record(spec, results.get(spec.id), df, problems, flagged)
        if problems and self.fail_fast:
            raise gate_error(self.suite, problems, "batch")
        bad, reasons = self._quarantine(flagged, n)
        out_of_scoring = bad if already_quarantined is None else bad | already_quarantined
        self._aggregate(df, ~out_of_scoring if out_of_scoring.any() else None)
        t_mask = time.perf_counter() - t1
        st.rows += n
        st.batches += 1
        st.rows_flagged += int(bad.sum())
        st.rows_quarantined += int(out_of_scoring.sum())
        st.timings["gx_seconds" if self.engine == "gx" else "fast_seconds"] += t_gx
        st.timings["mask_seconds"] += t_mask
        return BatchOutcome(bad, reasons, n, t_gx, t_mask)

    def _validate(self, df: pd.DataFrame) -> dict[str, Outcome]:
        """The engine's outcomes for the batch; GX itself failing (not one expectation) says so."""
        if not self.suite.gx_specs:
            return {}
        if self.engine == "fast":
            return run_fast(self.suite, df)
        try:
            results = run_gx(self.suite, df)
        except Exception as exc:  # GX itself failed, not one expectation: say so, keep the cause
            raise QualityGateError(
                f"GX could not validate a batch of {len(df)} rows with suite "
                f"{self.suite.name!r}: {type(exc).__name__}: {exc}",
                where=self.suite.source,
                fix="check the batch's columns and dtypes (duplicate names, nested objects)",
            ) from exc
        return {key: out for key, res in results.items() if (out := from_gx(res)) is not None}

    def _record(
        self,
        spec: ExpectationSpec,
        res: Outcome | None,
        df: pd.DataFrame,
        problems: list[str],
        flagged: Flagged,
    ) -> None:
        """Add one outcome to the shard state; problems and critical masks go to the lists."""
        acc = self._state.expectations[spec.index]
        error = engine_error(spec, res, df, self.engine)
        if error:
            acc.add_error(error)
            problems.append(error)
            return
        acc.batches_evaluated += 1
        if spec.kind == "schema":
            if not res.success:
                acc.batches_failed += 1
                message = schema_message(spec, res, df)
                acc.observed = jsonable(res.observed)
                acc.add_error(message)
                if spec.critical:
                    problems.append(message)
            return
        mask, count, missing = self._locate(spec, res, df)
        acc.element_count += len(df)
        acc.unexpected_count += count
        acc.missing_count += missing
        acc.gx_unexpected_count += int(res.unexpected_count or 0)  # the engine's own count
        if mask is not None and count:
            acc.batches_failed += 1
            self._examples(acc, df, spec.column, mask)
            if spec.critical:
                flagged.append((spec, mask))

    def _locate(
        self, spec: ExpectationSpec, res: Outcome, df: pd.DataFrame
    ) -> tuple[np.ndarray | None, int, int]:
        """(mask, unexpected, missing) of a row expectation; no mask when GX found nothing.
        The fast engine's outcome carries its mask: it is the engine."""
        if res.mask is not None:
            count = int(res.unexpected_count or 0)
            return (res.mask if count else None), count, int(res.missing_count or 0)
        gx_count = res.unexpected_count
        gx_missing = 0 if spec.type in NULL_TYPES else res.missing_count
        if gx_count == 0 and gx_missing is not None:  # nothing to locate: skip the mask
            return None, 0, int(gx_missing)
        mask, missing = row_mask(spec, df[spec.column])
        count = int(mask.sum())
        if gx_count is None or count != int(gx_count):
            raise GateConsistencyError(
                f"{spec.label}: our mask flags {count} rows, GX counts {gx_count} "
                f"unexpected in this batch of {len(df)} rows "
                f"(column dtype {df[spec.column].dtype})",
                where=self.suite.source,
                fix="a bug in batchscore's gate or a GX behaviour change; pin "
                "great-expectations to the tested version and report it",
            )
        return mask, count, missing

    def _quarantine(self, flagged: Flagged, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(bad rows, their reasons) from the critical masks; counts rows per expectation."""
        bad = np.zeros(n, bool)
        reasons = np.empty(0, dtype=object)
        if flagged:
            bad = np.logical_or.reduce([m for _, m in flagged])
            reasons = self._reasons(flagged, bad)
            for spec, m in flagged:
                self._state.expectations[spec.index].rows_quarantined += int(m.sum())
        return bad, reasons

    def _examples(
        self, acc: ExpectationState, df: pd.DataFrame, col: str | None, mask: np.ndarray
    ) -> None:
        room = MAX_EXAMPLES - len(acc.examples)
        if room <= 0:
            return
        rows = np.flatnonzero(mask)[:room]
        acc.examples.extend(jsonable(v) for v in df[col].iloc[rows].tolist())
        if self.id_column and self.id_column in df.columns:
            acc.example_ids.extend(jsonable(v) for v in df[self.id_column].iloc[rows].tolist())

    def _reasons(self, flagged: Flagged, bad: np.ndarray) -> np.ndarray:
        """One "; "-joined reason per bad row, built once per distinct combination of failures."""
        rows = np.flatnonzero(bad)
        matrix = np.stack([m[rows] for _, m in flagged], axis=1)
        combos, inverse = np.unique(matrix, axis=0, return_inverse=True)
        labels = np.array(
            ["; ".join(flagged[j][0].label for j in np.flatnonzero(c)) for c in combos],
            dtype=object,
        )
        counts = np.bincount(inverse.ravel(), minlength=len(combos))
        rc = self._state.reason_counts
        for label, c in zip(labels, counts, strict=True):
            key = label if label in rc or len(rc) < MAX_REASON_KINDS else "(other combinations)"
            rc[key] = rc.get(key, 0) + int(c)
        return labels[inverse.ravel()]

    def _aggregate(self, df: pd.DataFrame, keep: np.ndarray | None) -> None:
        """Hash this batch's IDs and add its column statistics over the `keep` rows."""
        st = self._state
        if self.suite.unique_column:
            t = time.perf_counter()
            if self.suite.unique_column in df.columns:
                self._ids.add(df[self.suite.unique_column])
            st.timings["hash_seconds"] += time.perf_counter() - t
        stats: dict[str, tuple[int, int, Any, Any, Any] | str] = {}
        for spec in self.suite.specs:
            if spec.kind != "aggregate":
                continue
            acc = st.expectations[spec.index]
            col = spec.column
            if col is not None and col not in df.columns:
                acc.add_error(missing_column(spec, df))
                continue
            acc.batches_evaluated += 1
            if spec.type not in COLUMN_STATS:
                continue
            if col not in stats:
                stats[col] = _column_stats(df[col], keep)
            s = stats[col]
            if isinstance(s, str):
                acc.add_error(f"{spec.label}: {s}")
                continue
            rows, non_null, total, lo, hi = s
            acc.rows += rows
            acc.non_null += non_null
            acc.total = acc.total + total
            if lo is not None:
                acc.minimum = lo if acc.minimum is None else min(acc.minimum, lo)
                acc.maximum = hi if acc.maximum is None else max(acc.maximum, hi)

    # ---- end of shard

    def finish(self) -> GateState:
        """This shard's partial state (call once, after the last batch). Under the fast engine
        this is when GX audits the shard's sample: `EngineDisagreement` if the engines differ
        (with `defer_audit`, the sample waits in `audit_sample` for the run's one pass)."""
        st = self._state
        auditing = not self._finished and self.audit_rows > 0
        if auditing and self.defer_audit:
            st.audit.update(self._sample.describe())
        elif auditing:
            report = audit(self.suite, self._sample)
            self._sample = AuditSample(0)  # the sample's memory goes now
            st.audit.update(report.to_json())
            st.timings["audit_seconds"] = st.timings.get("audit_seconds", 0.0) + report.seconds
        self._finished = True
        if self.suite.unique_column:
            t = time.perf_counter()
            self._ids.sorted()
            st.timings["hash_seconds"] += time.perf_counter() - t
            st.id_kind = self._ids.kind
        return st

    @property
    def audit_sample(self) -> AuditSample:
        """The shard's audit sample (empty unless the fast engine audits)."""
        return self._sample

    def id_hashes(self) -> np.ndarray:
        """Sorted uint64 hashes of this shard's non-null IDs (empty if the suite has no
        uniqueness expectation); save with `uniqueness.save_part`."""
        return self._ids.sorted()


def _column_stats(
    column: pd.Series, keep: np.ndarray | None
) -> tuple[int, int, Any, Any, Any] | str:
    """(rows, non-null, sum, min, max) over the kept rows, or a reason it cannot be computed."""
    if column.dtype.kind not in "iufb":
        return f"column {column.name!r} has dtype {column.dtype}, not numeric"
    values = column.to_numpy()
    if keep is not None:
        values = values[keep]
    rows = len(values)
    if values.dtype.kind == "f":
        values = values[~np.isnan(values)]
    if not len(values):
        return rows, 0, 0, None, None
    if values.dtype.kind in "iub":
        lo, hi = int(values.min()), int(values.max())
        if max(abs(lo), abs(hi)) * len(values) < 2**63:  # an int64 sum cannot overflow
            total = int(values.sum(dtype=np.int64))
        else:  # values near the ends of int64/uint64: exact, in Python integers
            total = sum(values.tolist())
        return rows, len(values), total, lo, hi
    return rows, len(values), float(values.sum()), float(values.min()), float(values.max())
