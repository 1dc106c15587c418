"""Finalize a run: merge the shards, apply the run-level gates, stage the reports, commit once.

Whatever fails before the commit removes the attempt's staging, so a failed run leaves nothing
but its report; an attempt that loses a race to an identical commit counts as published.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pipelines
from pipelines.config import Settings
from pipelines.data.git import head_commit
from pipelines.errors import BatchscoreError, PublishConflictError, QualityGateError, StorageError
from pipelines.publish.commit import OTHER_KEY_OR_OVERWRITE, commit_run, read_manifest
from pipelines.publish.keys import manifest_key, shard_record_key
from pipelines.publish.manifest import PartInfo, RowCounts, RunManifest, content_hash
from pipelines.run.monitors import judge
from pipelines.run.plan import RunPlan, ShardResult, rows_per_s
from pipelines.run.reporting import (
    HTML,
    render_report,
    run_report,
    save_local_report,
    upload_failed_report,
    write_reports,
)
from pipelines.run.scoring import ScoreTarget
from pipelines.run.shadow import shadow_comparison
from pipelines.run.verdicts import quality_verdicts
from pipelines.storage.base import ObjectStore
from pipelines.storage.open import open_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishResult:
    """What publishing a run did: the manifest that stands now, and how it came to stand."""

    manifest: RunManifest  # the one now published (a dry run's: the one it would have published)
    status: str  # committed | replaced | identical | already_published | dry_run
    # The published manifest is this plan's: committed by this call or by an earlier try of it
    # (retries of a publish share the plan's attempt id). False: it was there before this plan.
    newly_published: bool
    manifest_uri: str | None  # where the manifest is; None for a dry run
    # The published quality report (HTML), for a link; None for a dry run (its report stays on
    # local disk) or a manifest without one.
    report_uri: str | None = None


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
    results = _in_shard_order(plan, results)
    counts = RowCounts(
        rows_in=sum(r.rows_in for r in results),
        rows_scored=sum(r.rows_scored for r in results),
        rows_quarantined=sum(r.rows_quarantined for r in results),
    )
    parts = [p for r in results for p in r.parts]
    try:
        manifest = _staged_manifest(cfg, store, plan, results, counts, parts)
    except (OSError, StorageError):
        discard_staging(store, plan)
        raced = _lost_race(cfg, store, plan, parts)
        if raced is None:
            raise
        return _published(store, plan, raced, "identical")
    except BaseException:
        discard_staging(store, plan)
        raise
    if cfg.run.dry_run:
        return _dry_run(cfg, store, plan, manifest, results)
    outcome = commit_run(store, manifest, cfg.run.overwrite)
    _forget_records(store, plan)
    reused = (
        f", {manifest.shards_reused} of {manifest.shards} shard(s) reused"
        if manifest.shards_reused
        else ""
    )
    log.info(
        "run %s: %s rows in, %s scored, %s quarantined, %.0f rows/s (%s%s)",
        plan.run_key,
        f"{counts.rows_in:,}",
        f"{counts.rows_scored:,}",
        f"{counts.rows_quarantined:,}",
        manifest.rows_per_s,
        outcome.status,
        reused,
    )
    return _published(store, plan, outcome.manifest, outcome.status)


def discard_staging(store: ObjectStore, plan: RunPlan) -> None:
    """Remove everything this attempt staged, best effort."""
    try:
        store.delete(store.list_keys(plan.staging_prefix))
    except Exception:  # best effort: a stale attempt is harmless and removed by the next commit
        log.warning("could not remove staging prefix %s", plan.staging_prefix, exc_info=True)


def _forget_records(store: ObjectStore, plan: RunPlan) -> None:
    """Published: the shards' resume records have served; remove them, best effort."""
    try:
        store.delete([shard_record_key(plan.staging_prefix, i) for i in range(len(plan.shards))])
    except Exception:
        log.warning("could not remove the shard records under %s", plan.staging_prefix)


def _in_shard_order(plan: RunPlan, results: list[ShardResult]) -> list[ShardResult]:
    """The results sorted by shard; every planned shard exactly once."""
    results = sorted(results, key=lambda r: r.shard)
    if [r.shard for r in results] != list(range(len(plan.shards))):
        raise BatchscoreError(
            f"expected results for {len(plan.shards)} shard(s), got {[r.shard for r in results]}"
        )
    return results


def _staged_manifest(
    cfg: Settings,
    store: ObjectStore,
    plan: RunPlan,
    results: list[ShardResult],
    counts: RowCounts,
    parts: list[PartInfo],
) -> RunManifest:
    """The manifest to commit, once the counts reconcile, the gates pass and the reports are
    staged; the ID hashes and audit samples are deleted once read. A failed gate raises, naming
    its report."""
    staged_score_rows = sum(p.rows or 0 for p in parts if p.kind == "scores")
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
    quality, failure = quality_verdicts(cfg, results, store, counts)
    manifest = _manifest(cfg, plan, results, counts, parts, quality, t_verdict)
    if plan.challenger:
        manifest.challenger = _shadow(cfg, store, plan, results, parts)
    manifest.monitoring, manifest.estimated_performance = judge(cfg, plan, results)
    failure = failure or _drift_blocks(cfg, manifest.monitoring)
    if failure is not None:
        raise _failed(cfg, store, manifest, results, failure)
    manifest.parts.extend(write_reports(store, plan, manifest, results))
    store.delete([k for r in results for k in (*r.ids_keys.values(), *r.audit_keys.values())])
    return manifest


def _manifest(
    cfg: Settings,
    plan: RunPlan,
    results: list[ShardResult],
    counts: RowCounts,
    parts: list[PartInfo],
    quality: dict[str, Any],
    t_verdict: float,
) -> RunManifest:
    timings = dict(sum((Counter(r.timings) for r in results), Counter()))
    timings = {k: round(v, 3) for k, v in timings.items()} | {
        "plan": plan.plan_seconds,
        "verdict": round(time.perf_counter() - t_verdict, 3),
        "wall": round(plan.wall_seconds(), 3),  # plan start -> this manifest, just before commit
    }
    scores = ScoreTarget(**plan.score_target).describe() if plan.score_target else {}
    return RunManifest(
        run_key=plan.run_key,
        model=plan.model,
        input=plan.input,
        code_version=f"batchscore {pipelines.__version__} ({head_commit(cfg.root) or 'no git'})",
        attempt_id=plan.attempt_id,
        fingerprint=plan.fingerprint,
        content_sha256=content_hash(parts),
        counts=counts,
        chunks=sum(r.chunks for r in results),
        shards=len(results),
        shards_reused=sum(r.reused for r in results),
        resumed_from=plan.resumed_from,
        parts=parts,
        quality=quality,
        timings=timings,
        rows_per_s=rows_per_s(counts.rows_in, timings["wall"]),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        dry_run=cfg.run.dry_run,
        scores={
            "id_column": plan.contract.get("id_column"),
            **scores,
            "mean": _mean(counts, results),
        },
    )


def _drift_blocks(cfg: Settings, drift: dict[str, Any] | None) -> QualityGateError | None:
    """A `fail` drift status publishes nothing when monitoring.drift.block_on_fail is true."""
    if not drift or drift.get("status") != "fail":
        return None
    flagged = ", ".join(drift.get("decision", {}).get("flagged", [])) or "the score"
    if not cfg.monitoring.drift.block_on_fail:
        log.warning("drift: fail (%s); published and flagged", flagged)
        return None
    return QualityGateError(
        f"drift against the model's baseline failed ({flagged}) and "
        "monitoring.drift.block_on_fail is true: nothing was published",
        fix="see the drift section of the report; if tonight's data is right, retrain the model "
        "and its baseline, or set monitoring.drift.block_on_fail: false to publish and flag",
    )


def _shadow(
    cfg: Settings,
    store: ObjectStore,
    plan: RunPlan,
    results: list[ShardResult],
    parts: list[PartInfo],
) -> dict[str, Any]:
    """The challenger's model and how its scores compare with the run's."""
    comparison = shadow_comparison(store, parts, cfg.model.challenger_top_k)
    comparison["challenger_unscored"] = sum(r.challenger_unscored for r in results)
    log.info(
        "challenger %s (%s): agreement %s, Spearman %s, top-%s overlap %s",
        plan.challenger["ref"]["name"] if plan.challenger else "?",
        plan.challenger["ref"]["version"] if plan.challenger else "?",
        _fmt(comparison.get("agreement")),
        _fmt(comparison.get("spearman")),
        comparison.get("top_k"),
        _fmt(comparison.get("top_k_overlap")),
    )
    return {"model": (plan.challenger or {}).get("ref"), "comparison": comparison}


def _mean(counts: RowCounts, results: list[ShardResult]) -> float | None:
    """The run's mean score, exactly (shard sums added in shard order)."""
    return (
        math.fsum(r.score_sum for r in results) / counts.rows_scored if counts.rows_scored else None
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _failed(
    cfg: Settings,
    store: ObjectStore,
    manifest: RunManifest,
    results: list[ShardResult],
    failure: QualityGateError,
) -> QualityGateError:
    """The gate's failure, naming where its report is (shared if the upload worked, and local)."""
    files = render_report(run_report(manifest, results))
    local = save_local_report(cfg, manifest, files[HTML], "failed")
    shared = upload_failed_report(store, manifest, files)
    where = f"{shared} (local copy: {local})" if shared else str(local)
    return QualityGateError(
        failure.what, fix=f"{failure.fix + '. ' if failure.fix else ''}Report: {where}"
    )


def _dry_run(
    cfg: Settings,
    store: ObjectStore,
    plan: RunPlan,
    manifest: RunManifest,
    results: list[ShardResult],
) -> PublishResult:
    """A dry run publishes nothing: its staging goes, its report stays on local disk."""
    discard_staging(store, plan)
    html = render_report(run_report(manifest, results))[HTML]
    report = save_local_report(cfg, manifest, html, "dry-run")
    log.info(
        "dry run: %s rows scored, nothing published; quality report: %s",
        f"{manifest.counts.rows_scored:,}",
        report,
    )
    return PublishResult(manifest, "dry_run", newly_published=False, manifest_uri=None)


def _published(
    store: ObjectStore, plan: RunPlan, manifest: RunManifest, status: str
) -> PublishResult:
    key = manifest_key(manifest.model.name, manifest.run_key)
    ours = manifest.attempt_id == plan.attempt_id
    html = [p.key for p in manifest.parts if p.kind == "report" and p.key.endswith(f"/{HTML}")]
    return PublishResult(
        manifest,
        status,
        newly_published=ours,
        manifest_uri=store.url(key),
        report_uri=store.url(html[0]) if html else None,
    )


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
