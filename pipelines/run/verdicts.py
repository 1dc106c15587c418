"""The run-level quality verdict: the shards' gate states and ID hashes merged into one.

Per-shard checks cannot see the whole input; exact aggregates, ID uniqueness across shards and
the quarantined share are decided here, once, before anything is committed; so is GX's audit of
the fast engine, over every shard's sample in one pass.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from pipelines.config import Settings
from pipelines.errors import QualityGateError, StorageError
from pipelines.publish.manifest import RowCounts
from pipelines.quality.uniqueness import load_parts
from pipelines.run.plan import ShardResult, run_suites
from pipelines.run.scoring import SUITE_ID
from pipelines.storage.base import ObjectStore

log = logging.getLogger(__name__)


def quality_verdicts(
    cfg: Settings, results: list[ShardResult], store: ObjectStore, counts: RowCounts
) -> tuple[dict[str, Any], QualityGateError | None]:
    """Run-level gates: exact aggregates and uniqueness, output checks, quarantine share.

    Returns the verdicts and the first failure, so a failed run still gets its report.
    """
    quality: dict[str, Any] = {"validation": "disabled"}
    if cfg.validation.enabled:
        from pipelines.quality.state import GateState
        from pipelines.quality.verdict import merge_verdict

        suites = run_suites(cfg)  # no "input" without an input suite
        shares = {"input": cfg.validation.max_quarantine_fraction, "output": 0.0}
        with tempfile.TemporaryDirectory(prefix="batchscore-ids-") as tmp:
            verdicts = {}
            for name, suite in suites.items():
                share = shares[name]
                states = [GateState.from_json(g) for r in results if (g := r.gates.get(name))]
                arrays = load_parts(
                    _fetch(store, r.ids_keys[name], Path(tmp))
                    for r in results
                    if name in r.ids_keys
                )
                extra = counts.rows_in - sum(st.rows for st in states) if name == "input" else 0
                verdicts[name] = merge_verdict(
                    suite,
                    states,
                    arrays,
                    share,
                    extra_quarantined=extra,
                    run_audit=_run_audit(store, suite, name, results, Path(tmp)),
                )
        quality = {name: v.to_json() for name, v in verdicts.items()}
        for name, verdict in verdicts.items():
            try:
                verdict.raise_for_failure()
            except QualityGateError as exc:
                return quality, _named_ids(exc, cfg.data.id_column) if name == "output" else exc
    frac = counts.rows_quarantined / counts.rows_in
    quality["quarantine_fraction"] = round(frac, 6)
    if frac > cfg.validation.max_quarantine_fraction:
        return quality, _too_many_quarantined(cfg, results, counts, frac)
    return quality, None


def _named_ids(exc: QualityGateError, id_column: str) -> QualityGateError:
    """The output gate's failure, saying which column its `id` is (the suite sees it renamed)."""
    if id_column == SUITE_ID:
        return exc
    note = f"\n  (`{SUITE_ID}` in the output suite is the ID column {id_column!r})"
    return QualityGateError(exc.what + note, where=exc.where, fix=exc.fix)


def _too_many_quarantined(
    cfg: Settings, results: list[ShardResult], counts: RowCounts, frac: float
) -> QualityGateError:
    reasons: Counter[str] = Counter()
    for r in results:
        reasons.update(r.quarantine_reasons)
    top = "; ".join(f"{k} ({v:,})" for k, v in reasons.most_common(5))
    return QualityGateError(
        f"{counts.rows_quarantined:,} of {counts.rows_in:,} rows ({frac:.2%}) were "
        "quarantined, "
        f"above validation.max_quarantine_fraction "
        f"({cfg.validation.max_quarantine_fraction:.2%}); top reasons: {top}",
        fix="fix the upstream data, or raise the threshold if this share is expected",
    )


def _run_audit(
    store: ObjectStore, suite: Any, name: str, results: list[ShardResult], tmp: Path
) -> dict[str, Any] | None:
    """GX's audit of the fast engine, in one pass over every shard's staged sample of this
    suite; None when no shard staged one (engine gx, or audit_rows 0). Raises
    EngineDisagreement if the engines differ anywhere."""
    if not any(name in r.audit_keys for r in results):
        return None
    import pyarrow.parquet as pq

    from pipelines.quality.audit import audit_samples, sample_frame

    samples = [
        (r.shard, *sample_frame(pq.read_table(_fetch(store, r.audit_keys[name], tmp))))
        for r in results
        if name in r.audit_keys
    ]
    report = audit_samples(suite, samples)
    log.info(
        "audit of %s: GX and the fast engine agree on %d expectation(s) over %s sampled rows "
        "of %d shard(s) (%.2f s)",
        name,
        report.agreed,
        f"{report.rows:,}",
        len(samples),
        report.seconds,
    )
    return report.to_json()


def _fetch(store: ObjectStore, key: str, tmp: Path) -> Path:
    """A staged object (ID hashes, an audit sample) on local disk (downloaded first if remote)."""
    path = store.local_path(key)
    if path is None:
        body = store.get_bytes(key)
        if body is None:  # e.g. removed by a concurrent attempt's commit: see finalize._lost_race
            raise StorageError(f"staged object {store.url(key)} is gone")
        path = tmp / key.replace("/", "_")
        path.write_bytes(body)
    return path
