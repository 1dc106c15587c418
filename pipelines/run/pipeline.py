"""A run, in three steps that every entry point shares: plan, score shards, finalize.

`run_pipeline` chains them on one machine (a process pool over shards). The Airflow DAG calls the
same functions as separate tasks, mapping `score_shard` over the plan's shards, so a cluster
scores shards on many workers and one task commits (`publish_run`: `finalize_run` that also says
what the commit did). Plans and results are pydantic models that round-trip through JSON (XCom).
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing as mp
import os
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel

import pipelines
from pipelines.config import Settings
from pipelines.data.contract import Contract, check_contract, prepare_batch
from pipelines.data.source import (
    BadLines,
    InputInfo,
    InputProof,
    Shard,
    check_shard_bytes,
    check_unchanged,
    inspect_input,
    plan_shards,
    prove_input,
    read_batches,
    reconcile_csv,
)
from pipelines.errors import (
    BatchscoreError,
    InputDataError,
    PublishConflictError,
    QualityGateError,
    StorageError,
)
from pipelines.model.artifact import LoadedModel, load_model
from pipelines.progress import Progress
from pipelines.publish.commit import (
    OTHER_KEY_OR_OVERWRITE,
    commit_run,
    failed_report_key,
    manifest_key,
    read_manifest,
    staging_prefix,
)
from pipelines.publish.manifest import (
    InputRef,
    ModelRef,
    PartInfo,
    RowCounts,
    RunManifest,
    content_hash,
)
from pipelines.publish.manifest import fingerprint as make_fingerprint
from pipelines.run.scoring import (
    HISTOGRAM_BINS,
    NAN_REASON,
    MissingValuesRefused,
    PartWriter,
    ScoreTarget,
    histogram,
    missing_rows,
    score_chunk,
    score_target,
)
from pipelines.storage.base import ObjectStore, open_store, sha256_file

log = logging.getLogger(__name__)
HTML, JSON = "quality.html", "quality.json"  # the report's two files


class RunPlan(BaseModel):
    """Everything the shard workers and the commit need, fixed before any row is read."""

    run_key: str
    attempt_id: str
    model: ModelRef
    input: InputRef
    input_columns: dict[str, str]
    row_group_rows: list[int]
    row_group_spans: list[list[int]] = []
    input_proof: dict[str, Any] = {}
    shards: list[dict[str, Any]]
    contract: dict[str, Any]
    score_target: dict[str, Any] = {}
    fingerprint: str
    staging_prefix: str
    already_published: bool = False
    started_at: float
    plan_seconds: float = 0.0


class ShardResult(BaseModel):
    """What one shard produced: its parts, counts, quality state and timings."""

    shard: int
    rows_in: int
    rows_scored: int
    rows_quarantined: int
    chunks: int
    parts: list[PartInfo]
    histogram: list[int]
    quarantine_reasons: dict[str, int]
    gates: dict[str, dict[str, Any]] = {}  # gate name -> its GateState as JSON
    ids_keys: dict[str, str] = {}  # gate name -> staged .npy of sorted ID hashes
    timings: dict[str, float]


def plan_run(cfg: Settings, git_rev: str | None = None, dvc_md5: str | None = None) -> RunPlan:
    """Check everything that can be checked without reading rows, then fix the shards.

    Fails here (nothing written) on bad input files, a model that is not the pinned one, an input
    whose columns do not fit the model, unreadable suites, or a run key already published with
    other inputs (unless overwrite).
    """
    started = time.time()
    model = _load(cfg)
    info = inspect_input(cfg.data.path, cfg.data.resolved_format)
    contract = check_contract(info, model, cfg.data.id_column, tuple(cfg.data.csv_null_values))
    target = score_target(model.classes, cfg.model.positive_class)
    suites = _suite_hashes(cfg)
    shards = plan_shards(info, cfg.score.shard_rows)
    proof = prove_input(info, shards)
    input_ref = InputRef(
        path=str(cfg.data.path),
        format=info.format,
        sha256=proof.sha256,
        bytes=proof.size,
        rows=info.num_rows if info.num_rows is not None else proof.csv_records,
        git_rev=git_rev or _git_rev(cfg.root),
        dvc_md5=dvc_md5,
    )
    model_ref = ModelRef(
        name=cfg.output.model_name or model.name,
        version=model.version,
        sha256=model.sha256,
        path=str(cfg.model.path),
        sklearn_version=model.card.get("sklearn_version"),
    )
    fp = make_fingerprint(
        input=input_ref.sha256,
        model=model.sha256,
        suites=suites,
        contract=asdict(contract),
        score=asdict(target),
        shard_rows=cfg.score.shard_rows,
        run_key=cfg.run_key,
        validation=cfg.validation.enabled,
    )
    attempt = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    plan = RunPlan(
        run_key=cfg.run_key,
        attempt_id=attempt,
        model=model_ref,
        input=input_ref,
        input_columns=info.columns,
        row_group_rows=list(info.row_group_rows),
        row_group_spans=[list(span) for span in info.row_group_spans],
        input_proof=asdict(proof),
        shards=[asdict(s) for s in shards],
        contract=asdict(contract),
        score_target=asdict(target),
        fingerprint=fp,
        staging_prefix=staging_prefix(model_ref.name, cfg.run_key, attempt),
        started_at=started,
    )
    existing = read_manifest(open_store(cfg), model_ref.name, cfg.run_key)
    if existing is not None and not cfg.run.dry_run:
        if existing.fingerprint == fp:
            plan.already_published = True
        elif not cfg.run.overwrite:
            raise PublishConflictError(
                f"run {cfg.run_key} of model {model_ref.name} is already published from other "
                f"inputs (input {existing.input.sha256[:12]}, model {existing.model.version})",
                fix=OTHER_KEY_OR_OVERWRITE,
            )
    plan.plan_seconds = round(time.time() - started, 3)
    log.info(
        "plan: run %s, model %s (%s), input %s: %s rows in %d shard(s)%s",
        plan.run_key,
        model_ref.name,
        model_ref.version,
        cfg.data.path.name,
        f"{info.num_rows:,}" if info.num_rows is not None else "?",
        len(shards),
        ", already published: nothing to do" if plan.already_published else "",
    )
    return plan


def score_shard(
    cfg: Settings,
    plan: RunPlan,
    index: int,
    on_rows: Callable[[int], None] | None = None,
) -> ShardResult:
    """Validate and score one shard in bounded memory; stage its parts in the object store."""
    timings: Counter[str] = Counter()
    t_start = time.perf_counter()
    store = open_store(cfg)
    model = _load(cfg)
    contract, target, info, shard, proof = _shard_inputs(plan, index)
    # Prove the bytes are the planned ones before any work, and again (unchanged) after.
    stat_before = check_shard_bytes(info, shard, proof)
    gates = _gates(cfg, contract.id_column)
    chunk = cfg.score.chunk_size
    batch_rows = max(cfg.validation.batch_rows if gates else chunk, chunk)
    prefix = plan.staging_prefix
    name = f"part-{index:05d}.parquet"

    with tempfile.TemporaryDirectory(prefix="batchscore-") as tmp:

        def local(key: str) -> Path:
            return store.local_path(key) or Path(tmp) / key

        scores = PartWriter(local(f"{prefix}scores/{name}"))
        quarantine = PartWriter(local(f"{prefix}quarantine/{name}"))
        bad_lines = BadLines()
        hist = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
        reasons_count: Counter[str] = Counter()
        rows_in = rows_scored = rows_quarantined = chunks = 0
        badlines = PartWriter(local(f"{prefix}badlines/{name}"))
        batches = read_batches(info, shard, batch_rows, bad_lines, contract.id_column)
        while True:
            t = time.perf_counter()
            raw = next(batches, None)
            timings["read"] += time.perf_counter() - t
            _write_bad_lines(badlines, bad_lines)
            if raw is None:
                break
            rows_in += len(raw)
            t = time.perf_counter()
            frame, reasons = prepare_batch(raw, contract)
            timings["prepare"] += time.perf_counter() - t
            if gates:
                t = time.perf_counter()
                outcome = gates["input"].check_batch(frame, already_quarantined=reasons != "")
                timings["validate"] += time.perf_counter() - t
                reasons = _merge_reasons(reasons, outcome.bad_mask, outcome.reasons)
            bad = reasons != ""
            if bad.any():
                t = time.perf_counter()
                quarantine.write(_quarantine_table(raw.loc[bad], reasons[bad]))  # as read
                rows_quarantined += int(bad.sum())
                reasons_count.update(_reason_keys(reasons[bad]))
                frame = frame.loc[~bad]
                timings["write"] += time.perf_counter() - t
            scored_tables = []
            for start in range(0, len(frame), chunk):
                t = time.perf_counter()
                part = frame.iloc[start : start + chunk]
                try:
                    table = score_chunk(model, part, contract, plan.run_key, target)
                except MissingValuesRefused:
                    # sklearn refused before predicting anything: quarantine the rows with
                    # missing values (as read, with a reason) and score the others
                    nan = missing_rows(part, contract)
                    if not nan.any():
                        raise
                    labels = part.index[nan]
                    quarantine.write(
                        _quarantine_table(raw.loc[labels], np.full(len(labels), NAN_REASON))
                    )
                    rows_quarantined += len(labels)
                    reasons_count[NAN_REASON] += len(labels)
                    table = score_chunk(model, part.loc[~nan], contract, plan.run_key, target)
                timings["predict"] += time.perf_counter() - t
                t = time.perf_counter()
                scores.write(table)
                hist += histogram(table.column("score").to_numpy())
                timings["write"] += time.perf_counter() - t
                scored_tables.append(table)
                rows_scored += table.num_rows
                chunks += 1
            if gates and scored_tables:
                t = time.perf_counter()
                gates["output"].check_batch(pa.concat_tables(scored_tables).to_pandas())
                timings["validate"] += time.perf_counter() - t
            if on_rows:
                on_rows(len(raw))
        check_unchanged(info, shard, stat_before)
        reconcile_csv(info, proof, rows_in, bad_lines)
        if shard.rows is not None and info.format == "parquet" and rows_in != shard.rows:
            raise InputDataError(
                f"shard {index} of {info.path} yielded {rows_in:,} rows, its row groups hold "
                f"{shard.rows:,}",
                fix="the file is inconsistent with its own footer; re-export it",
            )
        if bad_lines.count:
            reasons_count.update(["csv line with wrong field count"] * bad_lines.count)
            rows_in += bad_lines.count
            rows_quarantined += bad_lines.count
        t = time.perf_counter()
        badlines.close()
        scores.close()
        quarantine.close()
        parts = []
        for key, kind, rows in [
            (f"{prefix}scores/{name}", "scores", scores.rows),
            (f"{prefix}quarantine/{name}", "quarantine", quarantine.rows),
            (f"{prefix}badlines/{name}", "badlines", badlines.rows),
        ]:
            path = local(key)
            if path.exists():
                parts.append(_stage(store, path, key, kind, index, rows))
        ids_keys = {}
        for gate_name, gate in gates.items():
            key = ids_keys[gate_name] = f"{prefix}ids/{gate_name}-{index:05d}.npy"
            local(key).parent.mkdir(parents=True, exist_ok=True)
            np.save(local(key), gate.id_hashes(), allow_pickle=False)
            store.put_file(local(key), key)
        timings["upload"] += time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_start
    return ShardResult(
        shard=index,
        rows_in=rows_in,
        rows_scored=rows_scored,
        rows_quarantined=rows_quarantined,
        chunks=chunks,
        parts=parts,
        histogram=hist.tolist(),
        quarantine_reasons=dict(reasons_count.most_common(50)),
        gates={name: gate.finish().to_json() for name, gate in gates.items()},
        ids_keys=ids_keys,
        timings={k: round(v, 4) for k, v in timings.items()},
    )


@dataclass(frozen=True)
class PublishResult:
    """What publishing a run did: the manifest that stands now, and how it came to stand."""

    manifest: RunManifest  # the one now published (a dry run's: the one it would have published)
    status: str  # committed | replaced | identical | already_published | dry_run
    # The published manifest is this plan's: committed by this call or by an earlier try of it
    # (retries of a publish share the plan's attempt id). False: it was there before this plan.
    newly_published: bool
    manifest_uri: str | None  # where the manifest is; None for a dry run


def finalize_run(cfg: Settings, plan: RunPlan, results: list[ShardResult]) -> RunManifest:
    """Merge the shards, apply the run-level gates, write the reports, commit once."""
    return publish_run(cfg, plan, results).manifest


def publish_run(cfg: Settings, plan: RunPlan, results: list[ShardResult]) -> PublishResult:
    """`finalize_run`, and what its commit did: the status is the commit's own outcome, so a retry
    that finds its earlier try's manifest says "identical", not "committed"."""
    store = open_store(cfg)
    existing = read_manifest(store, plan.model.name, plan.run_key)
    if existing is not None and plan.already_published:  # nothing was scored: it stands
        return _published(store, plan, existing, "already_published")
    if existing is not None and existing.attempt_id == plan.attempt_id:
        # An earlier try of this plan committed (retries share its attempt id) and deleted the
        # ID hashes the gates read: redoing the work would fail, and its clean-up would delete
        # the published parts. The commit stands; this try's would have found it identical.
        return _published(store, plan, existing, "identical")
    results = sorted(results, key=lambda r: r.shard)
    if [r.shard for r in results] != list(range(len(plan.shards))):
        raise BatchscoreError(
            f"expected results for {len(plan.shards)} shard(s), got {[r.shard for r in results]}"
        )
    counts = RowCounts(
        rows_in=sum(r.rows_in for r in results),
        rows_scored=sum(r.rows_scored for r in results),
        rows_quarantined=sum(r.rows_quarantined for r in results),
    )
    parts = [p for r in results for p in r.parts]
    staged_score_rows = sum(p.rows or 0 for p in parts if p.kind == "scores")
    try:
        if not counts.reconciles or staged_score_rows != counts.rows_scored:
            raise QualityGateError(
                f"row counts do not reconcile: {counts.rows_in:,} in, {counts.rows_scored:,} "
                f"scored, {counts.rows_quarantined:,} quarantined, {staged_score_rows:,} staged",
                fix="this is a bug; please report it with the run's logs",
            )
        if counts.rows_in == 0:
            raise QualityGateError(
                f"input {Path(plan.input.path).name} has no rows; refusing to publish an empty run",
                fix="check the upstream export for this run key",
            )
        t_verdict = time.perf_counter()
        quality, failure = _quality_verdicts(cfg, results, store, counts)
        wall = time.time() - plan.started_at
        timings = dict(sum((Counter(r.timings) for r in results), Counter()))
        timings = {k: round(v, 3) for k, v in timings.items()} | {
            "plan": plan.plan_seconds,
            "verdict": round(time.perf_counter() - t_verdict, 3),
            "wall": round(wall, 3),
        }
        manifest = RunManifest(
            run_key=plan.run_key,
            model=plan.model,
            input=plan.input,
            code_version=f"batchscore {pipelines.__version__} ({_git_rev(cfg.root) or 'no git'})",
            attempt_id=plan.attempt_id,
            fingerprint=plan.fingerprint,
            content_sha256=content_hash(parts),
            counts=counts,
            chunks=sum(r.chunks for r in results),
            shards=len(results),
            parts=parts,
            quality=quality,
            timings=timings,
            rows_per_s=round(counts.rows_in / wall, 1) if wall > 0 else 0.0,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            dry_run=cfg.run.dry_run,
            scores=ScoreTarget(**plan.score_target).describe() if plan.score_target else {},
        )
        if failure is not None:
            files = _rendered(_report(manifest, results))
            local = _save_local_report(cfg, manifest, files[HTML], "failed")
            shared = _upload_failed_report(store, manifest, files)
            where = f"{shared} (local copy: {local})" if shared else str(local)
            raise QualityGateError(
                failure.what, fix=f"{failure.fix + '. ' if failure.fix else ''}Report: {where}"
            )
        manifest.parts.extend(_write_reports(cfg, store, plan, manifest, results))
        _delete_ids(store, results)
    except (OSError, StorageError):
        _discard(store, plan, results)
        raced = _lost_race(cfg, store, plan, parts)
        if raced is None:
            raise
        return _published(store, plan, raced, "identical")
    except BaseException:
        _discard(store, plan, results)
        raise
    if cfg.run.dry_run:
        _discard(store, plan, results)
        report = _save_local_report(
            cfg, manifest, _rendered(_report(manifest, results))[HTML], "dry-run"
        )
        log.info(
            "dry run: %s rows scored, nothing published; quality report: %s",
            f"{counts.rows_scored:,}",
            report,
        )
        return PublishResult(manifest, "dry_run", newly_published=False, manifest_uri=None)
    outcome = commit_run(store, manifest, cfg.run.overwrite)
    log.info(
        "run %s: %s rows in, %s scored, %s quarantined, %.0f rows/s (%s)",
        plan.run_key,
        f"{counts.rows_in:,}",
        f"{counts.rows_scored:,}",
        f"{counts.rows_quarantined:,}",
        manifest.rows_per_s,
        outcome.status,
    )
    return _published(store, plan, outcome.manifest, outcome.status)


def run_pipeline(
    cfg: Settings, git_rev: str | None = None, dvc_md5: str | None = None
) -> RunManifest:
    """The whole run on this machine: plan, score shards on `score.workers` processes, commit."""
    plan = plan_run(cfg, git_rev=git_rev, dvc_md5=dvc_md5)
    if plan.already_published:
        return finalize_run(cfg, plan, [])
    progress = Progress(
        plan.input.rows, cfg.score.progress if cfg.score.progress != "off" else "log"
    )
    if cfg.score.progress == "off":
        progress.mode = "off"
    workers = min(cfg.score.resolved_workers, len(plan.shards))
    try:
        if workers <= 1:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1):
                results = [
                    score_shard(cfg, plan, i, progress.update) for i in range(len(plan.shards))
                ]
        else:
            results = _score_in_pool(cfg, plan, workers, progress)
    except BaseException:
        _discard(store=open_store(cfg), plan=plan, results=[])
        raise
    finally:
        progress.close()
    return finalize_run(cfg, plan, results)


# --- helpers -------------------------------------------------------------------------------

_progress_queue: Any = None
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _init_worker(queue: Any, slots: Any) -> None:
    global _progress_queue
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one process per core; BLAS/OpenMP threads would oversubscribe
    _progress_queue = queue
    if slots is not None:
        pin_to_own_cpu(slots)


def pin_to_own_cpu(slots: Any) -> int | None:
    """Pin this worker to the next CPU of the pool's allowed set; returns the CPU.

    Left to the scheduler, two busy workers on two cores keep trading places with each other and
    with the parent, and every move starts the model's trees over in a cold L1/L2 cache: measured
    on 2 cores, the same work took 12% more CPU (bench/README.md). `slots` is a shared counter.
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    with slots.get_lock():
        k = slots.value
        slots.value += 1
    cpu = cpus[k % len(cpus)]
    os.sched_setaffinity(0, {cpu})
    return cpu


def _worker(cfg: Settings, plan: RunPlan, index: int) -> ShardResult:
    return score_shard(cfg, plan, index, _progress_queue.put if _progress_queue else None)


def _score_in_pool(
    cfg: Settings, plan: RunPlan, workers: int, progress: Progress
) -> list[ShardResult]:
    import threading

    # fork: workers inherit the imported libraries (sklearn, pyarrow, GX cost seconds of CPU to
    # import) and the verified model, instead of loading them again; spawn where there is no fork.
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    if method == "fork" and cfg.validation.enabled:
        import great_expectations  # noqa: F401  (imported once, here, for every worker)
    queue = ctx.Queue()
    slots = ctx.Value("i", 0) if cfg.score.pin_workers else None
    # Spawned children read these when their OpenMP/BLAS runtimes load: one thread per process.
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update(dict.fromkeys(_THREAD_VARS, "1"))

    def drain() -> None:
        while (rows := queue.get()) is not None:
            progress.update(rows)

    reader = threading.Thread(target=drain, daemon=True)
    try:
        with ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init_worker, initargs=(queue, slots)
        ) as pool:
            futures = [pool.submit(_worker, cfg, plan, i) for i in range(len(plan.shards))]
            reader.start()  # only once the workers exist: never fork with a live thread of ours
            try:
                return [f.result() for f in futures]
            except BaseException:  # a failed shard, or SIGTERM: stop the others now
                children = mp.active_children()
                for child in children:
                    child.terminate()
                for child in children:  # dead before the caller discards the staging
                    child.join(timeout=10)
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    finally:
        if not reader.is_alive():
            reader.start()  # so the sentinel below is consumed
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        queue.put(None)
        reader.join(timeout=5)


_models: dict[tuple[Any, ...], LoadedModel] = {}


def _load(cfg: Settings) -> LoadedModel:
    """The verified model, deserialized once per process for as long as the file is unchanged.

    The file is hashed again on every call, so a model swapped between shards is never reused.
    """
    path = cfg.model.path
    digest = sha256_file(path) if path.is_file() else None
    key = (path, digest, cfg.model.sha256, cfg.model.card_path, tuple(cfg.model.trusted_types))
    if key not in _models:
        model = load_model(
            path,
            pinned_sha256=cfg.model.sha256,
            card_path=cfg.model.card_path,
            trusted_types=cfg.model.trusted_types,
        )
        _models.clear()
        _models[key] = model
    return _models[key]


def _gates(cfg: Settings, id_column: str) -> dict[str, Any]:
    """The streaming GX gates of one shard, by name; none when validation is off."""
    if not cfg.validation.enabled:
        return {}
    from pipelines.quality.gate import StreamingGate, load_suite

    return {
        "input": StreamingGate(load_suite(cfg.validation.input_suite), id_column),
        "output": StreamingGate(load_suite(cfg.validation.output_suite), "id"),
    }


def _suite_hashes(cfg: Settings) -> dict[str, str | None]:
    if not cfg.validation.enabled:
        return {}
    out: dict[str, str | None] = {}
    for name in ("input_suite", "output_suite"):
        path = getattr(cfg.validation, name)
        if path is None or not path.is_file():
            raise InputDataError(
                f"validation.{name} {path} not found",
                fix="point it at a GX suite JSON file, or set validation.enabled: false",
            )
        from pipelines.quality.gate import load_suite

        load_suite(path)  # fail at plan time on a malformed suite
        out[name] = sha256_file(path)
    return out


def _quality_verdicts(
    cfg: Settings, results: list[ShardResult], store: ObjectStore, counts: RowCounts
) -> tuple[dict[str, Any], QualityGateError | None]:
    """Run-level gates: exact aggregates and uniqueness, output checks, quarantine share.

    Returns the verdicts and the first failure, so a failed run still gets its report.
    """
    quality: dict[str, Any] = {"validation": "disabled"}
    if cfg.validation.enabled:
        from pipelines.quality.gate import GateState, load_suite, merge_verdict

        with tempfile.TemporaryDirectory(prefix="batchscore-ids-") as tmp:
            verdicts = {}
            for name, suite_path, share in (
                ("input", cfg.validation.input_suite, cfg.validation.max_quarantine_fraction),
                ("output", cfg.validation.output_suite, 0.0),
            ):
                states = [GateState.from_json(g) for r in results if (g := r.gates.get(name))]
                arrays = [
                    _fetch_array(store, r.ids_keys[name], Path(tmp))
                    for r in results
                    if name in r.ids_keys
                ]
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
        reasons = Counter()
        for r in results:
            reasons.update(r.quarantine_reasons)
        top = "; ".join(f"{k} ({v:,})" for k, v in reasons.most_common(5))
        return quality, QualityGateError(
            f"{counts.rows_quarantined:,} of {counts.rows_in:,} rows ({frac:.2%}) were "
            "quarantined, "
            f"above validation.max_quarantine_fraction "
            f"({cfg.validation.max_quarantine_fraction:.2%}); top reasons: {top}",
            fix="fix the upstream data, or raise the threshold if this share is expected",
        )
    return quality, None


def _write_reports(
    cfg: Settings,
    store: ObjectStore,
    plan: RunPlan,
    manifest: RunManifest,
    results: list[ShardResult],
) -> list[PartInfo]:
    parts = []
    with tempfile.TemporaryDirectory(prefix="batchscore-report-") as tmp:
        for name, body in _rendered(_report(manifest, results)).items():
            key = f"{plan.staging_prefix}reports/{name}"
            path = store.local_path(key) or Path(tmp) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            parts.append(_stage(store, path, key, "report", None, None))
    return parts


def _report(manifest: RunManifest, results: list[ShardResult]) -> dict[str, Any]:
    """Everything a person (HTML) or a machine (JSON) needs to judge this run."""
    from pipelines.reports.build import build_report

    reasons: Counter[str] = Counter()
    for r in results:
        reasons.update(r.quarantine_reasons)
    c = manifest.counts
    return build_report(
        run_key=manifest.run_key,
        model_name=manifest.model.name,
        model_version=manifest.model.version,
        input_path=manifest.input.path,
        rows_in=c.rows_in,
        rows_scored=c.rows_scored,
        rows_quarantined=c.rows_quarantined,
        input_verdict=manifest.quality.get("input"),
        output_verdict=manifest.quality.get("output"),
        score_histogram=np.sum([r.histogram for r in results], axis=0).astype(int).tolist(),
        quarantine_reasons=dict(reasons.most_common(50)),
        timings=manifest.timings,
        status="dry run" if manifest.dry_run else None,
        scores=manifest.scores,
        input_version={
            "sha256": manifest.input.sha256,
            "git_rev": manifest.input.git_rev,
            "dvc_md5": manifest.input.dvc_md5,
            "rows_per_s": manifest.rows_per_s,
            "attempt_id": manifest.attempt_id,
        },
    )


def _stage(
    store: ObjectStore, path: Path, key: str, kind: str, shard: int | None, rows: int | None
) -> PartInfo:
    info = PartInfo(
        key=key,
        kind=kind,
        shard=shard,
        rows=rows,
        bytes=path.stat().st_size,
        sha256=sha256_file(path),
    )
    store.put_file(path, key)
    return info


def _rendered(report: dict[str, Any]) -> dict[str, bytes]:
    """The report for machines (JSON) and for people (HTML), by file name."""
    from pipelines.reports.build import render_html, render_json

    return {JSON: render_json(report).encode(), HTML: render_html(report).encode()}


def _save_local_report(cfg: Settings, manifest: RunManifest, html: bytes, kind: str) -> Path:
    """Failed and dry runs publish nothing, but a person still wants their report: keep it here."""
    folder = cfg.root / "reports" / kind
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{manifest.model.name}-{manifest.run_key}-{manifest.attempt_id}.html"
    path.write_bytes(html)
    return path


def _published(
    store: ObjectStore, plan: RunPlan, manifest: RunManifest, status: str
) -> PublishResult:
    key = manifest_key(manifest.model.name, manifest.run_key)
    ours = manifest.attempt_id == plan.attempt_id
    return PublishResult(manifest, status, newly_published=ours, manifest_uri=store.url(key))


def _lost_race(
    cfg: Settings, store: ObjectStore, plan: RunPlan, parts: list[PartInfo]
) -> RunManifest | None:
    """What to make of a failure while finishing, if another attempt of this run committed
    meanwhile (its clean-up removes the staging of every other attempt, ours included).

    Identical output is this attempt's success too; other output is the usual conflict. None:
    nobody else committed, so the failure is ours to report.
    """
    if cfg.run.overwrite:
        return None
    try:
        existing = read_manifest(store, plan.model.name, plan.run_key)
    except Exception:
        return None
    if existing is None or existing.attempt_id == plan.attempt_id:
        return None
    if existing.content_sha256 == content_hash(parts):
        log.info("run %s: another attempt committed identical output first", plan.run_key)
        return existing
    raise PublishConflictError(
        f"run {plan.run_key} of model {plan.model.name} was published with different output by "
        f"attempt {existing.attempt_id} while this attempt was finishing",
        fix=OTHER_KEY_OR_OVERWRITE,
    )


def _upload_failed_report(
    store: ObjectStore, manifest: RunManifest, files: dict[str, bytes]
) -> str | None:
    """Put a failed run's report where its operators can reach it: the worker's disk may not be.

    Best effort: the gate's verdict is the error to show, not a failure to upload its report.
    """
    keys = {
        name: failed_report_key(manifest.model.name, manifest.run_key, manifest.attempt_id, name)
        for name in files
    }
    try:
        for name, body in files.items():
            store.put_bytes(keys[name], body)
    except Exception:
        log.warning("could not upload the failed run's report", exc_info=True)
        return None
    return store.url(keys[HTML])


def _fetch_array(store: ObjectStore, key: str, tmp: Path) -> np.ndarray:
    """A staged .npy as a read-only memmap (downloaded first from a remote store)."""
    path = store.local_path(key)
    if path is None:
        body = store.get_bytes(key)
        if body is None:  # e.g. removed by a concurrent attempt's commit: see _lost_race
            raise StorageError(f"staged object {store.url(key)} is gone")
        path = tmp / key.replace("/", "_")
        path.write_bytes(body)
    return np.load(path, mmap_mode="r")


def _delete_ids(store: ObjectStore, results: list[ShardResult]) -> None:
    store.delete([k for r in results for k in r.ids_keys.values()])


def _discard(store: ObjectStore, plan: RunPlan, results: list[ShardResult]) -> None:
    try:
        store.delete(store.list_keys(plan.staging_prefix))
    except Exception:  # best effort: a stale attempt is harmless and removed by the next commit
        log.warning("could not remove staging prefix %s", plan.staging_prefix, exc_info=True)


def _merge_reasons(
    reasons: np.ndarray, bad_mask: np.ndarray, gate_reasons: np.ndarray
) -> np.ndarray:
    if not bad_mask.any():
        return reasons
    merged = reasons.copy()
    for i, reason in zip(np.flatnonzero(bad_mask), gate_reasons, strict=True):
        merged[i] = f"{merged[i]}; {reason}" if merged[i] else reason
    return merged


def _reason_keys(reasons: np.ndarray) -> list[str]:
    """Group reasons by what failed, without the offending value, for the summary."""
    keys = []
    for reason in reasons:
        for part in str(reason).split("; "):
            keys.append(part.split(" (")[0].split(": cannot parse")[0].split(": non-finite")[0])
    return keys


def _quarantine_table(frame: pd.DataFrame, reasons: np.ndarray) -> pa.Table:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.append_column("_reason", pa.array(reasons.astype(str), pa.string()))


def _shard_inputs(
    plan: RunPlan, index: int
) -> tuple[Contract, ScoreTarget, InputInfo, Shard, InputProof]:
    """Rebuild, from the plan's JSON, what one shard needs (the plan may come over XCom)."""
    contract = Contract(
        **{
            **plan.contract,
            "features": tuple(plan.contract["features"]),
            "numeric": tuple(plan.contract["numeric"]),
            "null_values": tuple(plan.contract.get("null_values", ("",))),
        }
    )
    target = ScoreTarget(**{**plan.score_target, "classes": tuple(plan.score_target["classes"])})
    info = InputInfo(
        Path(plan.input.path),
        plan.input.format,
        plan.input_columns,
        plan.input.rows if plan.input.format == "parquet" else None,
        tuple(plan.row_group_rows),
        tuple((a, b) for a, b in plan.row_group_spans),
    )
    raw = plan.shards[index]
    shard = Shard(
        index=raw["index"],
        row_groups=None if raw["row_groups"] is None else tuple(raw["row_groups"]),
        rows=raw["rows"],
        span=None if raw.get("span") is None else tuple(raw["span"]),
    )
    p = plan.input_proof
    proof = InputProof(**{**p, "shard_sha256": tuple(p.get("shard_sha256", ()))})
    return contract, target, info, shard, proof


def _write_bad_lines(writer: PartWriter, bad: BadLines) -> None:
    """Spill the CSV bad lines read so far, whole, to the shard's bad-lines part."""
    rows = bad.drain()
    if rows:
        writer.write(
            pa.table(
                {
                    "line": pa.array([r["line"] for r in rows], pa.int64()),
                    "text": pa.array([r["text"] for r in rows], pa.large_string()),
                    "reason": pa.array([r["reason"] for r in rows], pa.string()),
                }
            )
        )


def _git_rev(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
