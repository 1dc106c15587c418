"""Score one shard: read it in batches, check, quarantine and score each, stage its parts.

Memory is bounded by the batch, not the shard: every batch is written to the shard's Parquet
parts as soon as it is scored, and the gates keep only mergeable aggregates and ID hashes.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.config import Settings
from pipelines.data.contract import Contract, prepare_batch
from pipelines.data.proof import check_shard_bytes, check_unchanged
from pipelines.data.read import BadLines, read_batches, reconcile_csv
from pipelines.data.source import InputInfo, Shard
from pipelines.errors import InputDataError
from pipelines.model.artifact import LoadedModel
from pipelines.publish.commit import maybe_fault
from pipelines.publish.keys import audit_key, ids_key, part_key
from pipelines.publish.manifest import PartInfo
from pipelines.publish.parts import PartWriter, stage_part
from pipelines.quality.uniqueness import save_part
from pipelines.run.arrow_pool import use_scoring_pool
from pipelines.run.challenger import PART_KIND as CHALLENGER
from pipelines.run.challenger import Challenger, score_challenger
from pipelines.run.monitors import ShardMonitor
from pipelines.run.pinned import ModelSpec, load_pinned_model, load_spec
from pipelines.run.plan import (
    RunPlan,
    ShardResult,
    rows_per_s,
    run_suites,
    shard_challenger,
    shard_inputs,
)
from pipelines.run.quarantine import (
    merge_reasons,
    quarantine_table,
    reason_keys,
    write_bad_lines,
)
from pipelines.run.resume import reusable_result, write_record
from pipelines.run.scoring import (
    HISTOGRAM_BINS,
    NAN_REASON,
    SUITE_ID,
    MissingValuesRefused,
    ScoreTarget,
    histogram,
    missing_rows,
    score_chunk,
    suite_view,
)
from pipelines.storage.base import ObjectStore
from pipelines.storage.hashing import sha256_file
from pipelines.storage.open import open_store
from pipelines.termination import stop_if_asked

log = logging.getLogger(__name__)
# a shard's parts, in the manifest's order ("challenger" only with a shadow model)
PART_KINDS = ("scores", CHALLENGER, "quarantine", "badlines")
BAD_LINE_REASON = "csv line with wrong field count"


def score_shard(
    cfg: Settings,
    plan: RunPlan,
    index: int,
    on_rows: Callable[[int], None] | None = None,
) -> ShardResult:
    """Validate and score one shard in bounded memory; stage its parts in the object store."""
    t_start = time.perf_counter()
    use_scoring_pool()  # every process that scores comes here: CLI, pool workers, Airflow tasks
    store = open_store(cfg)
    if (reused := _reused(store, plan, index, on_rows)) is not None:
        return reused
    model = (
        load_spec(cfg, ModelSpec(**plan.model_spec)) if plan.model_spec else load_pinned_model(cfg)
    )
    contract, target, info, shard, proof = shard_inputs(plan, index)
    # Prove the bytes are the planned ones before any work, and again (unchanged) after.
    stat_before = check_shard_bytes(info, shard, proof)
    gates = _gates(cfg, contract.id_column)
    chunk = cfg.score.chunk_size
    batch_rows = max(cfg.validation.batch_rows if gates else chunk, chunk)
    extras = (shard_challenger(cfg, plan), ShardMonitor(cfg, plan, target))
    scoring = _Scoring(model, contract, target, plan.run_key, chunk, gates, *extras)

    with tempfile.TemporaryDirectory(prefix="batchscore-") as tmp:
        run = _ShardRun(scoring, store, plan.staging_prefix, index, Path(tmp))
        bad_lines = BadLines()
        batches = read_batches(info, shard, batch_rows, bad_lines, contract.id_column)
        while True:
            with run.timed("read"):
                raw = next(batches, None)
            write_bad_lines(run.writers["badlines"], bad_lines)
            if raw is None:
                break
            run.batch(raw)
            if on_rows:
                on_rows(len(raw))
            stop_if_asked()  # a SIGTERM whose exception was dropped (termination.py)
        check_unchanged(info, shard, stat_before)
        reconcile_csv(info, proof, run.rows_in, bad_lines)
        _check_parquet_rows(info, shard, index, run.rows_in)
        run.count_bad_lines(bad_lines.count)
        with run.timed("upload"):
            parts = run.stage_parts()
            ids_keys, ids_sha = run.stage_ids()
            audit_keys, audit_sha = run.stage_audit()
    run.timings["total"] = time.perf_counter() - t_start
    log.info(
        "shard %d: %s rows in, %s scored, %s quarantined, %.0f rows/s",
        index,
        f"{run.rows_in:,}",
        f"{run.rows_scored:,}",
        f"{run.rows_quarantined:,}",
        rows_per_s(run.rows_in, run.timings["total"]),
    )
    result = run.result(parts, ids_keys, audit_keys)
    # last: a record means every part is staged
    write_record(store, plan, result, ids_sha | audit_sha)
    maybe_fault(f"after_shard_{index}")
    return result


def _reused(
    store: ObjectStore, plan: RunPlan, index: int, on_rows: Callable[[int], None] | None
) -> ShardResult | None:
    """The shard's verified result from the interrupted attempt this plan continues, if any."""
    reused = reusable_result(store, plan, index)
    if reused is not None:
        log.info(
            "shard %d: reused from the interrupted attempt (%s rows)", index, f"{reused.rows_in:,}"
        )
        if on_rows:
            on_rows(reused.rows_in)
    return reused


@dataclass(frozen=True)
class _Scoring:
    """What every batch of a shard is checked and scored with."""

    model: LoadedModel
    contract: Contract
    target: ScoreTarget
    run_key: str
    chunk: int  # rows per predict_proba call
    gates: dict[str, Any]  # gate name -> StreamingGate; empty when validation is off
    challenger: Challenger | None = None  # the shadow model, scored on the same rows
    monitor: ShardMonitor | None = None  # drift and estimate state of the scored rows


class _ShardRun:
    """One shard in progress: its part writers, running counts, histogram and timings."""

    def __init__(
        self, scoring: _Scoring, store: ObjectStore, staging: str, index: int, tmp: Path
    ) -> None:
        self.s, self.store, self.staging, self.index, self.tmp = scoring, store, staging, index, tmp
        kinds = [k for k in PART_KINDS if k != CHALLENGER or scoring.challenger]
        self.writers = {kind: PartWriter(self._local(self._key(kind))) for kind in kinds}
        self.challenger_unscored = 0
        self.score_sum = 0.0
        self.hist = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
        self.reasons: Counter[str] = Counter()
        self.timings: Counter[str] = Counter()
        self.rows_in = self.rows_scored = self.rows_quarantined = self.chunks = 0

    def _key(self, kind: str) -> str:
        return part_key(self.staging, kind, self.index)

    def _local(self, key: str) -> Path:
        """Where the object is written first: in place for a local store, else a temp file."""
        return self.store.local_path(key) or self.tmp / key

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        t = time.perf_counter()
        yield
        self.timings[stage] += time.perf_counter() - t

    def batch(self, raw: pd.DataFrame) -> None:
        """Check one batch as read; quarantine the rows that fail, score the others."""
        self.rows_in += len(raw)
        with self.timed("prepare"):
            frame, reasons = prepare_batch(raw, self.s.contract)
        gates = self.s.gates
        if "input" in gates:
            with self.timed("validate"):
                outcome = gates["input"].check_batch(frame, already_quarantined=reasons != "")
            reasons = merge_reasons(reasons, outcome.bad_mask, outcome.reasons)
        bad = reasons != ""
        if bad.any():
            with self.timed("write"):
                self._quarantine(raw.loc[bad], reasons[bad])  # as read
                frame = frame.loc[~bad]
        chunk = self.s.chunk
        scored = [self._score(raw, frame.iloc[i : i + chunk]) for i in range(0, len(frame), chunk)]
        if "output" in gates and scored:
            with self.timed("validate"):
                view = suite_view(pa.concat_tables(scored), self.s.contract.id_column)
                gates["output"].check_batch(view)

    def _quarantine(self, rows: pd.DataFrame, reasons: np.ndarray) -> None:
        self.writers["quarantine"].write(quarantine_table(rows, reasons))
        self.rows_quarantined += len(rows)
        self.reasons.update(reason_keys(reasons))

    def _score(self, raw: pd.DataFrame, part: pd.DataFrame) -> pa.Table:
        """Score one chunk and write it to the scores part."""
        with self.timed("predict"):
            table, scored = self._predict(raw, part)
        if self.s.challenger is not None:
            with self.timed("challenger"):
                shadow, unscored = score_challenger(
                    self.s.challenger, raw.loc[scored.index], self.s.run_key
                )
            self.challenger_unscored += unscored
            with self.timed("write"):
                self.writers[CHALLENGER].write(shadow)
        with self.timed("write"):
            self.writers["scores"].write(table)
            score = table.column("score").to_numpy()
            self.hist += histogram(score)
            self.score_sum += float(score.sum())
        if self.s.monitor is not None:
            with self.timed("monitor"):
                self.s.monitor.update(scored, table)
        self.rows_scored += table.num_rows
        self.chunks += 1
        return table

    def _predict(self, raw: pd.DataFrame, part: pd.DataFrame) -> tuple[pa.Table, pd.DataFrame]:
        """The chunk's scores, and the rows they are for (all but those quarantined here)."""
        s = self.s
        try:
            return score_chunk(s.model, part, s.contract, s.run_key, s.target), part
        except MissingValuesRefused:
            # sklearn refused before predicting anything: quarantine the rows with
            # missing values (as read, with a reason) and score the others
            nan = missing_rows(part, s.contract)
            if not nan.any():
                raise
            labels = part.index[nan]
            self._quarantine(raw.loc[labels], np.full(len(labels), NAN_REASON))
            kept = part.loc[~nan]
            return score_chunk(s.model, kept, s.contract, s.run_key, s.target), kept

    def count_bad_lines(self, count: int) -> None:
        """CSV lines that split into the wrong number of fields: read and quarantined rows."""
        if count:
            self.reasons.update([BAD_LINE_REASON] * count)
            self.rows_in += count
            self.rows_quarantined += count

    def stage_parts(self) -> list[PartInfo]:
        """Close the parts and upload those with rows (an empty part is never created)."""
        for kind in ("badlines", "scores", CHALLENGER, "quarantine"):
            if kind in self.writers:
                self.writers[kind].close()
        parts = []
        for kind in self.writers:
            key = self._key(kind)
            path = self._local(key)
            if path.exists():
                rows = self.writers[kind].rows
                parts.append(stage_part(self.store, path, key, kind, self.index, rows))
        return parts

    def stage_ids(self) -> tuple[dict[str, str], dict[str, str]]:
        """Upload each gate's sorted ID hashes, for the run-level uniqueness check; return their
        keys by gate and their sha256 by key (for the shard's resume record)."""
        keys, digests = {}, {}
        for gate_name, gate in self.s.gates.items():
            key = keys[gate_name] = ids_key(self.staging, gate_name, self.index)
            save_part(self._local(key), gate.id_hashes())
            digests[key] = sha256_file(self._local(key))
            self.store.put_file(self._local(key), key)
        return keys, digests

    def stage_audit(self) -> tuple[dict[str, str], dict[str, str]]:
        """Upload each gate's audit sample, for the run's one GX pass; return their keys by gate
        and their sha256 by key (for the shard's resume record)."""
        from pipelines.quality.audit import sample_table

        keys, digests = {}, {}
        for gate_name, gate in self.s.gates.items():
            table = sample_table(gate.audit_sample) if gate.defer_audit else None
            if table is None:
                continue
            key = keys[gate_name] = audit_key(self.staging, gate_name, self.index)
            path = self._local(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path)
            digests[key] = sha256_file(path)
            self.store.put_file(path, key)
        return keys, digests

    def result(
        self, parts: list[PartInfo], ids_keys: dict[str, str], audit_keys: dict[str, str]
    ) -> ShardResult:
        return ShardResult(
            shard=self.index,
            rows_in=self.rows_in,
            rows_scored=self.rows_scored,
            rows_quarantined=self.rows_quarantined,
            chunks=self.chunks,
            parts=parts,
            histogram=self.hist.tolist(),
            quarantine_reasons=dict(self.reasons.most_common(50)),
            gates={name: gate.finish().to_json() for name, gate in self.s.gates.items()},
            ids_keys=ids_keys,
            audit_keys=audit_keys,
            timings={k: round(v, 4) for k, v in self.timings.items()},
            challenger_unscored=self.challenger_unscored,
            monitoring=self.s.monitor.to_json() if self.s.monitor else {},
            score_sum=self.score_sum,
        )


def _gates(cfg: Settings, id_column: str) -> dict[str, Any]:
    """The streaming GX gates of one shard, by name; none when validation is off, no "input"
    without an input suite. The output gate sees the ID column as `id` (`suite_view`)."""
    suites = run_suites(cfg, gx_check=False)  # checked at plan; engine gx's gates check again
    if not suites:
        return {}
    from pipelines.quality.gate import StreamingGate

    ids = {"input": id_column, "output": SUITE_ID}
    v = cfg.validation
    return {
        name: StreamingGate(
            suite, ids[name], engine=v.engine, audit_rows=v.audit_rows, defer_audit=True
        )
        for name, suite in suites.items()
    }


def _check_parquet_rows(info: InputInfo, shard: Shard, index: int, rows_in: int) -> None:
    """A Parquet shard yields exactly the rows its row groups' footers promise."""
    if shard.rows is not None and info.format == "parquet" and rows_in != shard.rows:
        raise InputDataError(
            f"shard {index} of {info.path} yielded {rows_in:,} rows, its row groups hold "
            f"{shard.rows:,}",
            fix="the file is inconsistent with its own footer; re-export it",
        )
