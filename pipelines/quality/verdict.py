"""The gate's answer for a whole input: every shard's `GateState` joined into one `QualityVerdict`.

The verdict fails on any schema or aggregate failure, an empty input, a quarantined share above the
threshold, or when fewer expectations were evaluated than the suite holds (a misconfigured suite
must not pass by checking nothing).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.errors import QualityGateError
from pipelines.quality.jsonsafe import json_safe
from pipelines.quality.merge import ExpectationResult, merge_aggregate, merge_gx
from pipelines.quality.spec import COLUMN_STATS
from pipelines.quality.state import GateState
from pipelines.quality.suite import Suite


@dataclass
class QualityVerdict:
    """The gate's answer for a whole input: `success`, and why not."""

    suite_name: str
    suite_source: str
    success: bool
    table_failures: list[str]
    warnings: list[str]
    expectations: list[ExpectationResult]
    rows_in: int
    rows_quarantined: int
    max_quarantine_fraction: float
    evaluated_expectations: int
    suite_size: int
    batches: int
    reason_counts: dict[str, int]
    timings: dict[str, float]
    engine: str = "gx"  # "fast" or "gx" (or "mixed": shards ran different engines)
    audit: dict[str, Any] = dataclasses.field(default_factory=dict)  # see `audit_summary`

    @property
    def quarantine_fraction(self) -> float:
        return self.rows_quarantined / self.rows_in if self.rows_in else 0.0

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["quarantine_fraction"] = self.quarantine_fraction
        return json_safe(data)

    def raise_for_failure(self) -> None:
        """Raise one QualityGateError listing every table-level problem, if any."""
        if not self.success:
            raise gate_error(self.suite_source, self.table_failures, "input", self)


def merge_verdict(
    suite: Suite,
    states: Sequence[GateState | dict[str, Any]],
    id_hash_arrays: Sequence[np.ndarray] = (),
    max_quarantine_fraction: float = 0.05,
    *,
    extra_quarantined: int = 0,
    run_audit: dict[str, Any] | None = None,
) -> QualityVerdict:
    """Join shard states into one verdict; aggregates are computed exactly here.

    `id_hash_arrays`: each shard's `gate.id_hashes()` (arrays or `np.memmap`s from
    `uniqueness.load_parts`); needed when the suite checks uniqueness. `extra_quarantined`:
    rows rejected before they reached the gate (e.g. malformed CSV lines); they count in
    rows_in and in the quarantined share. `run_audit`: the run's one audit pass over every
    shard's sample (`audit.audit_samples`), when the shards deferred theirs.
    """
    sts = [s if isinstance(s, GateState) else GateState.from_json(s) for s in states]
    failures: list[str] = _stale(suite, sts)
    warnings: list[str] = []
    rows_in = sum(s.rows for s in sts) + extra_quarantined
    rows_q = sum(s.rows_quarantined for s in sts) + extra_quarantined
    batches = sum(s.batches for s in sts)
    if rows_in == 0:
        failures.append(
            "the input has 0 rows: nothing to score (every row-level expectation passes "
            "vacuously on an empty table, so this is checked on its own)"
        )
    rows_gated = rows_in - extra_quarantined
    results = _results(suite, sts, rows_gated, id_hash_arrays, batches, failures, warnings)
    evaluated = sum(r.evaluated for r in results)
    if evaluated != len(suite):
        failures.append(_not_evaluated(suite, results, evaluated))
    reason_counts = _summed([s.reason_counts for s in sts], {}, 0)
    if rows_in and rows_q / rows_in > max_quarantine_fraction:
        failures.append(
            _too_many_quarantined(rows_q, rows_in, max_quarantine_fraction, reason_counts)
        )
    zero = {k: 0.0 for k in ("gx_seconds", "fast_seconds", "mask_seconds", "hash_seconds")}
    timings = _with_audit(_summed([s.timings for s in sts], zero, 0.0), run_audit)
    engine = _engine(sts, results)
    return QualityVerdict(
        suite.name,
        suite.source,
        not failures,
        failures,
        warnings,
        results,
        rows_in,
        rows_q,
        max_quarantine_fraction,
        evaluated,
        len(suite),
        batches,
        dict(sorted(reason_counts.items(), key=lambda kv: -kv[1])),
        timings,
        engine,
        audit_summary(sts, run_audit),
    )


def _with_audit(timings: dict[str, float], run_audit: dict[str, Any] | None) -> dict[str, float]:
    """The shards' timings plus the run's one audit pass, if there was one."""
    if run_audit:
        timings["audit_seconds"] = timings.get("audit_seconds", 0.0) + run_audit["seconds"]
    return timings


def _engine(sts: Sequence[GateState], results: list[ExpectationResult]) -> str:
    """The engine the shards ran ("mixed" if they differ); non-GX results say so in `how`."""
    engines = sorted({s.engine for s in sts})
    engine = engines[0] if len(engines) == 1 else ("mixed" if engines else "gx")
    if engine != "gx":
        for r in results:
            if r.how == "gx-per-batch":
                r.how = "fast-per-batch"
    return engine


def audit_summary(
    sts: Sequence[GateState], run_audit: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What GX's audit of the fast engine checked, over every shard ({} under engine gx).

    Per-shard audits: `comparisons` counts (expectation, shard) pairs compared. One run-level
    pass over every shard's sample (`run_audit`): each expectation is compared once, over the
    whole sample. Engines that disagreed stopped the run, so in a verdict `agreed == comparisons`.
    """
    fast = [s for s in sts if s.engine == "fast"]
    if not fast:
        return {}
    audits = [s.audit for s in fast]
    limit = max((int(a.get("rows_limit", 0)) for a in audits), default=0)
    compared = [run_audit] if run_audit else audits
    out = {
        "rows_limit": limit,
        "shards": len(fast),
        "shards_audited": sum(1 for a in audits if a.get("rows")),
        "rows_audited": sum(int(a.get("rows", 0)) for a in audits),
        "rows_gated": sum(s.rows for s in fast),
        "comparisons": sum(int(a.get("expectations", 0)) for a in compared),
        "agreed": sum(int(a.get("agreed", 0)) for a in compared),
        "passes": 1 if run_audit else sum(1 for a in audits if a.get("rows")),
    }
    how = "in one pass" if run_audit else "each on its own"
    out["summary"] = (
        f"fast engine on every row; GX audited {out['rows_audited']:,} of {out['rows_gated']:,} "
        f"rows ({out['shards_audited']} of {out['shards']} shard(s), up to {limit:,} each, "
        f"{how}): {out['agreed']} of {out['comparisons']} expectation results agreed"
        if limit
        else "fast engine on every row; no GX audit (validation.audit_rows: 0): no GX cross-check"
    )
    return out


def _stale(suite: Suite, sts: list[GateState]) -> list[str]:
    """A failure if any shard ran another version of the suite: its results do not merge."""
    stale = sorted({s.suite_digest for s in sts} - {suite.digest})
    if not stale:
        return []
    return [
        f"{len(stale)} shard(s) were validated with a different version of suite "
        f"{suite.name!r}; re-run them"
    ]


def _results(
    suite: Suite,
    sts: list[GateState],
    rows: int,
    id_hash_arrays: Sequence[np.ndarray],
    batches: int,
    failures: list[str],
    warnings: list[str],
) -> list[ExpectationResult]:
    """Each expectation merged over the shards; its failure or warning appended in suite order."""
    results = []
    unscorable: list[str] = []  # column statistics with no scored row: one line, not six
    for spec in suite.specs:
        accs = [s.expectations[spec.index] for s in sts if len(s.expectations) > spec.index]
        res = (
            merge_aggregate(spec, accs, sts, rows, id_hash_arrays)
            if spec.kind == "aggregate"
            else merge_gx(spec, accs, batches)
        )
        results.append(res)
        no_rows = spec.type in COLUMN_STATS and res.evaluated and not res.element_count
        if no_rows and spec.critical:
            unscorable.append(spec.label)
        elif res.evaluated and not res.success and res.kind != "row":
            (failures if spec.critical else warnings).append(res.message or spec.label)
        elif res.kind == "row" and res.unexpected_count and not spec.critical:
            warnings.append(f"{spec.label}: {res.unexpected_count} unexpected row(s) (not routed)")
    if unscorable:
        failures.append(
            f"{len(unscorable)} column statistic(s) have no scored rows to be computed on: "
            + "; ".join(unscorable)
        )
    return results


def _not_evaluated(suite: Suite, results: list[ExpectationResult], evaluated: int) -> str:
    """Fewer expectations evaluated than the suite holds: name the first few and why."""
    missing = [r for r in results if not r.evaluated]
    detail = "; ".join(r.message or r.label for r in missing[:5])
    return f"suite {suite.name}: {len(suite)} expectations, only {evaluated} evaluated" + (
        f" (not evaluated: {detail}{' ...' if len(missing) > 5 else ''})" if detail else ""
    )


def _too_many_quarantined(
    rows_q: int, rows_in: int, max_quarantine_fraction: float, reason_counts: dict[str, int]
) -> str:
    top = sorted(reason_counts.items(), key=lambda kv: -kv[1])[:3]
    return (
        f"{rows_q} of {rows_in} rows ({rows_q / rows_in:.2%}) quarantined, above "
        f"validation.max_quarantine_fraction={max_quarantine_fraction:g}"
        + (f"; top reasons: {'; '.join(f'{k} x{v}' for k, v in top)}" if top else "")
    )


def _summed(dicts: Iterable[dict[str, Any]], start: dict[str, Any], zero: Any) -> dict[str, Any]:
    """Key-wise sum of the shards' counters, in first-seen key order after `start`'s keys."""
    out = dict(start)
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, zero) + v
    return out


def gate_error(
    source: Suite | str,
    problems: Iterable[str],
    scope: str,
    verdict: QualityVerdict | None = None,
) -> QualityGateError:
    """One QualityGateError listing every problem, for a failed batch or a failed verdict."""
    path = source.source if isinstance(source, Suite) else source
    name = source.name if isinstance(source, Suite) else (verdict.suite_name if verdict else path)
    problems = list(dict.fromkeys(problems))
    lines = [f"quality gate failed: suite {name!r} ({path}) found {len(problems)} problem(s)"]
    lines += [f"  - {p}" for p in problems]
    if verdict is not None:
        lines.append(
            f"  rows in: {verdict.rows_in}, quarantined: {verdict.rows_quarantined} "
            f"({verdict.quarantine_fraction:.2%}); expectations evaluated: "
            f"{verdict.evaluated_expectations}/{verdict.suite_size}"
        )
    elif scope == "batch":
        lines.append("  (found while validating a batch; nothing was scored from it)")
    return QualityGateError(
        "\n".join(lines),
        fix="fix the input (see the quality report for failing values), or, if the data is "
        f"right and the suite is out of date, update {path}",
    )
