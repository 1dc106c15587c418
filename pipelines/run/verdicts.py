"""The run-level quality verdict: the shards' gate states and ID hashes merged into one.

Per-shard checks cannot see the whole input; exact aggregates, ID uniqueness across shards and
the quarantined share are decided here, once, before anything is committed.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from pipelines.config import Settings
from pipelines.errors import QualityGateError, StorageError
from pipelines.publish.manifest import RowCounts
from pipelines.quality.uniqueness import load_parts
from pipelines.run.plan import ShardResult
from pipelines.storage.base import ObjectStore


def quality_verdicts(
    cfg: Settings, results: list[ShardResult], store: ObjectStore, counts: RowCounts
) -> tuple[dict[str, Any], QualityGateError | None]:
    """Run-level gates: exact aggregates and uniqueness, output checks, quarantine share.

    Returns the verdicts and the first failure, so a failed run still gets its report.
    """
    quality: dict[str, Any] = {"validation": "disabled"}
    if cfg.validation.enabled:
        from pipelines.quality.state import GateState
        from pipelines.quality.suite import load_suite
        from pipelines.quality.verdict import merge_verdict

        with tempfile.TemporaryDirectory(prefix="batchscore-ids-") as tmp:
            verdicts = {}
            for name, suite_path, share in (
                ("input", cfg.validation.input_suite, cfg.validation.max_quarantine_fraction),
                ("output", cfg.validation.output_suite, 0.0),
            ):
                states = [GateState.from_json(g) for r in results if (g := r.gates.get(name))]
                arrays = load_parts(
                    _fetch_ids(store, r.ids_keys[name], Path(tmp))
                    for r in results
                    if name in r.ids_keys
                )
                extra = counts.rows_in - sum(st.rows for st in states) if name == "input" else 0
                verdicts[name] = merge_verdict(
                    load_suite(suite_path), states, arrays, share, extra_quarantined=extra
                )
        quality = {name: v.to_json() for name, v in verdicts.items()}
        for verdict in verdicts.values():
            try:
                verdict.raise_for_failure()
            except QualityGateError as exc:
                return quality, exc
    frac = counts.rows_quarantined / counts.rows_in
    quality["quarantine_fraction"] = round(frac, 6)
    if frac > cfg.validation.max_quarantine_fraction:
        return quality, _too_many_quarantined(cfg, results, counts, frac)
    return quality, None


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


def _fetch_ids(store: ObjectStore, key: str, tmp: Path) -> Path:
    """A staged .npy of ID hashes on local disk (downloaded first from a remote store)."""
    path = store.local_path(key)
    if path is None:
        body = store.get_bytes(key)
        if body is None:  # e.g. removed by a concurrent attempt's commit: see finalize._lost_race
            raise StorageError(f"staged object {store.url(key)} is gone")
        path = tmp / key.replace("/", "_")
        path.write_bytes(body)
    return path
