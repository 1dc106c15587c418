"""The GX audit of the fast engine: a deterministic sample of every shard validated by both.

Under `validation.engine: fast` each shard keeps evenly spaced rows across its batches (every
`stride`-th row of the shard, the stride doubling whenever the sample would exceed
`validation.audit_rows`, so it holds between half and all of that many rows once the shard is
larger). GX validates the sample (counts for every expectation, and the failing rows for those
where either engine found any) and so does the fast engine; every schema and row-level
expectation must agree on success, unexpected and missing counts, the failing rows, the observed
schema fact and whether it could be evaluated at all. Any difference fails the run with both
answers (`EngineDisagreement`).

A gate on its own audits its shard at `finish()` (`audit`). A run stages every shard's sample
and audits them all in one GX pass when it finishes (`audit_samples`): GX's cost is a fixed
~0.2 s per call and per suite whatever the rows, so one pass instead of one per shard, and the
processes that score never import GX.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.errors import QualityGateError
from pipelines.quality.fast import run_fast
from pipelines.quality.jsonsafe import json_safe
from pipelines.quality.outcome import Outcome, from_gx
from pipelines.quality.spec import NULL_TYPES, ExpectationSpec
from pipelines.quality.suite import Suite

DEFAULT_AUDIT_ROWS = 10_000  # ValidationParams.audit_rows' default
SHOWN_ROWS = 10  # failing row positions shown per engine in a disagreement
POSITION = "__batchscore_audit_position__"  # a staged sample's column: each row's shard position


class EngineDisagreement(QualityGateError):
    """The fast engine and GX gave different answers on the audit sample: a bug, not the data."""


class AuditSample:
    """Evenly spaced rows of one shard, bounded by `limit`, whatever the number of batches."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.stride = 1
        self.seen = 0  # rows of the shard offered so far
        self._parts: list[tuple[np.ndarray, pd.DataFrame]] = []  # (shard positions, rows)

    def add(self, df: pd.DataFrame) -> None:
        """Offer one batch (its rows are positions `seen .. seen + len(df) - 1` of the shard)."""
        if self.limit <= 0 or not len(df):
            self.seen += len(df)
            return
        while self._kept(self.stride) + self._new(len(df), self.stride) > self.limit:
            self.stride *= 2
        self._parts = [
            (p[p % self.stride == 0], f.iloc[np.flatnonzero(p % self.stride == 0)])
            for p, f in self._parts
        ]
        local = np.arange((-self.seen) % self.stride, len(df), self.stride)
        if len(local):
            self._parts.append((self.seen + local, df.iloc[local]))
        self.seen += len(df)

    def _kept(self, stride: int) -> int:
        return sum(int((p % stride == 0).sum()) for p, _ in self._parts)

    def _new(self, n: int, stride: int) -> int:
        start = (-self.seen) % stride
        return 0 if start >= n else (n - 1 - start) // stride + 1

    def frame(self) -> pd.DataFrame | None:
        """The sample as one frame indexed 0..n-1 (None when nothing was sampled)."""
        if not self._parts:
            return None
        frames = [f for _, f in self._parts]
        df = frames[0] if len(frames) == 1 else pd.concat(frames)
        return df.reset_index(drop=True)

    def positions(self) -> np.ndarray:
        """Each sampled row's position in the shard, in `frame()`'s order."""
        return np.concatenate([p for p, _ in self._parts]) if self._parts else np.empty(0, int)

    def describe(self) -> dict[str, int]:
        """What was sampled, for the shard's gate state (the audit's results come later)."""
        return {"rows": len(self.positions()), "shard_rows": self.seen, "stride": self.stride}


def sample_table(sample: AuditSample) -> pa.Table | None:
    """The sample to stage: its rows as Arrow (pandas dtypes kept in the schema's metadata) and
    each row's shard position (None when nothing was sampled)."""
    df = sample.frame()
    if df is None:
        return None
    if POSITION in df.columns:
        raise ValueError(f"the input has a column named {POSITION!r}, reserved by the audit")
    table = pa.Table.from_pandas(df, preserve_index=False)
    return table.append_column(POSITION, pa.array(sample.positions(), pa.int64()))


def sample_frame(table: pa.Table) -> tuple[np.ndarray, pd.DataFrame]:
    """A staged sample back as (shard positions, the frame the shard's gate saw)."""
    positions = table.column(POSITION).to_numpy()
    return positions, table.drop_columns([POSITION]).to_pandas()


@dataclass
class AuditReport:
    """What the audit of one shard checked: JSON in the gate state and the verdict."""

    rows: int = 0
    shard_rows: int = 0
    stride: int = 1
    expectations: int = 0  # compared (schema and row-level expectations with their column)
    agreed: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return json_safe(self.__dict__)


def audit(suite: Suite, sample: AuditSample) -> AuditReport:
    """Validate one shard's sample with GX and with the fast engine; raise if they differ."""
    report = AuditReport(shard_rows=sample.seen, stride=sample.stride)
    return _audit_frame(suite, sample.frame(), report, lambda rows: "")


def audit_samples(
    suite: Suite, samples: Sequence[tuple[int, np.ndarray, pd.DataFrame]]
) -> AuditReport:
    """Every shard's staged sample, (shard, positions, frame), audited in one pass: GX's fixed
    cost is paid once per run. A disagreement names the shards and rows it was found on."""
    samples = [s for s in samples if len(s[2])]
    report = AuditReport()  # of the run: rows, expectations, agreed, seconds
    if not samples:
        return report
    df = pd.concat([f for _, _, f in samples], ignore_index=True)
    shard = np.concatenate([np.full(len(f), i, np.int64) for i, _, f in samples])
    position = np.concatenate([p for _, p, _ in samples])

    def locate(rows: list[int]) -> str:
        where = [f"shard {shard[r]} row {position[r]:,}" for r in rows[:SHOWN_ROWS]]
        return f"\n  sample rows in the input: {', '.join(where)}" if where else ""

    return _audit_frame(suite, df, report, locate)


def _audit_frame(
    suite: Suite, df: pd.DataFrame | None, report: AuditReport, locate: Callable[[list[int]], str]
) -> AuditReport:
    t0 = time.perf_counter()
    if df is None or not suite.gx_specs:
        return report
    from pipelines.quality.gx import run_gx  # imports GX on first use: only when auditing

    # GX's cost is per expectation: counts (BASIC) for all of them, then the failing rows'
    # index (COMPLETE, a third dearer) only for those where either engine found some.
    fast = run_fast(suite, df)
    gx = {k: from_gx(v) for k, v in run_gx(suite, df, result_format="BASIC").items()}
    found = frozenset(
        k for k, g in gx.items() if g.unexpected_count or (k in fast and len(failing_rows(fast[k])))
    )
    if found:
        listed = run_gx(suite, df, result_format="COMPLETE", only=found)
        gx.update({k: from_gx(v) for k, v in listed.items()})
    report.rows = len(df)
    for spec in suite.gx_specs:
        if spec.column is not None and spec.column not in df.columns:
            continue  # not evaluated by either engine: the gate reports the missing column
        report.expectations += 1
        g, f = gx.get(spec.id), fast.get(spec.id)
        diff = differences(spec, g, f)
        if diff:
            rows = sorted(set(_rows(g)) ^ set(_rows(f))) or _rows(g) or _rows(f)
            raise disagreement(suite, spec, df, diff, g, f, locate(rows))
        report.agreed += 1
    report.seconds = time.perf_counter() - t0
    return report


def _rows(outcome: Outcome | None) -> list[int]:
    """The sample rows an engine found failing (none when it gave no row answer)."""
    if outcome is None or outcome.error is not None:
        return []
    if outcome.unexpected_index is not None:
        return list(outcome.unexpected_index)
    return failing_rows(outcome)


def differences(spec: ExpectationSpec, gx: Outcome | None, fast: Outcome | None) -> list[str]:
    """What differs between the two engines' answers for one expectation on one frame."""
    if gx is None or fast is None:
        return [] if gx is fast else ["one engine gave no result"]
    if (gx.error is None) != (fast.error is None):
        return ["one engine could not evaluate it"]
    if gx.error is not None:
        return []  # both refuse the data: the gate reports it as not evaluated either way
    out = []
    if gx.success != fast.success:
        out.append("success")
    if spec.kind == "schema" and json_safe([gx.observed]) != json_safe([fast.observed]):
        out.append("observed value")
    if gx.unexpected_count != fast.unexpected_count:
        out.append("unexpected count")
    if (
        spec.type not in NULL_TYPES
        and (gx.unexpected_count is not None)
        and (gx.missing_count != fast.missing_count)
    ):
        out.append("missing count")
    if gx.unexpected_index is not None and gx.unexpected_index != failing_rows(fast):
        out.append("failing rows")
    return out


def failing_rows(outcome: Outcome) -> list[int]:
    return [] if outcome.mask is None else np.flatnonzero(outcome.mask).tolist()


def answer(outcome: Outcome | None) -> str:
    """One engine's answer, in words."""
    if outcome is None:
        return "no result"
    if outcome.error is not None:
        return f"could not evaluate it ({outcome.error[:200]})"
    rows = _rows(outcome)
    parts = [f"success={outcome.success}"]
    if outcome.observed is not None:
        parts.append(f"observed={json_safe([outcome.observed])[0]!r}")
    if outcome.unexpected_count is not None:
        parts.append(f"unexpected={outcome.unexpected_count}, missing={outcome.missing_count}")
        more = " ..." if len(rows) > SHOWN_ROWS else ""
        parts.append(f"rows={rows[:SHOWN_ROWS]}{more}")
    return ", ".join(parts)


def disagreement(
    suite: Suite,
    spec: ExpectationSpec,
    df: pd.DataFrame,
    diff: list[str],
    gx: Outcome | None,
    fast: Outcome | None,
    located: str = "",
) -> EngineDisagreement:
    dtype = f" (column dtype {df[spec.column].dtype})" if spec.column in df.columns else ""
    return EngineDisagreement(
        f"validation engines disagree on {spec.label}{dtype} over an audit sample of "
        f"{len(df)} rows ({', '.join(diff)} differ):\n  GX:   {answer(gx)}\n"
        f"  fast: {answer(fast)}{located}",
        where=suite.source,
        fix="set validation.engine: gx in params.yaml (GX on every row) and report this as a "
        "bug in batchscore's fast engine",
    )
