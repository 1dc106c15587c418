"""A run, in three steps that every entry point shares: plan, score shards, finalize.

`run_pipeline` chains them on one machine (a process pool over shards). The Airflow DAG calls the
same functions as separate tasks, mapping `score_shard` over the plan's shards, so a cluster
scores shards on many workers and one task commits (`publish_run`: `finalize_run` that also says
what the commit did). Plans and results are pydantic models that round-trip through JSON (XCom).
"""

from __future__ import annotations

from functools import partial

from pipelines.config import Settings
from pipelines.errors import BatchscoreError, LocalWriteError
from pipelines.progress import Progress
from pipelines.publish.manifest import RunManifest
from pipelines.run.arrow_pool import use_scoring_pool
from pipelines.run.finalize import discard_staging, finalize_run
from pipelines.run.gx_overlap import GxCheck, overlaps_gx_check
from pipelines.run.plan import RunPlan, ShardResult, plan_run
from pipelines.run.pool import score_in_pool
from pipelines.run.shard import score_shard
from pipelines.storage.open import open_store


def run_pipeline(
    cfg: Settings, git_rev: str | None = None, dvc_md5: str | None = None
) -> RunManifest:
    """The whole run on this machine: plan, score shards on `score.workers` processes, commit.

    Progress shows the stage (plan → score → publish, or finalize for a dry run) and the rows.
    With a pool, GX's check of the suites (and its import) waits for the workers to start
    scoring, and runs while they do (run/gx_overlap.py).
    """
    use_scoring_pool()  # the plan and finalize read Arrow too
    last = "finalize" if cfg.run.dry_run else "publish"
    with Progress(None, cfg.score.progress, stages=("plan", "score", last)) as progress:
        progress.stage("plan")
        check = GxCheck(cfg) if overlaps_gx_check(cfg) else None
        plan = plan_run(
            cfg, git_rev=git_rev, dvc_md5=dvc_md5, gx_check=None if check is None else False
        )
        results: list[ShardResult] = []
        if not plan.already_published:
            shard_rows = [shard["rows"] for shard in plan.shards]
            progress.stage("score", total=plan.input.rows, shards=shard_rows)
            results = _score_shards(cfg, plan, progress, check)
        progress.stage(last)
        return finalize_run(cfg, plan, results)


def _score_shards(
    cfg: Settings, plan: RunPlan, progress: Progress, check: GxCheck | None = None
) -> list[ShardResult]:
    """Every shard, here or on a pool of processes; `check`, the suites' GX check the plan left
    to this step, runs once the pool's workers are forked (before scoring, without a pool).

    A shard that fails on its input (a BatchscoreError that is not retryable: a rerun would fail
    the same way) removes the staging. Anything else (a worker lost, a kill, a stop, a storage
    error that may pass) keeps the finished shards' parts
    and records, invisible without a manifest, so a rerun of the run key reuses them
    (run/resume); the next commit of the run removes whatever is left."""
    workers = min(cfg.score.resolved_workers, len(plan.shards))
    try:
        if workers > 1:
            start = check.start if check is not None else None
            results = score_in_pool(cfg, plan, workers, progress, after_fork=start)
        else:
            if check is not None:
                check.result()
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1):
                results = [
                    score_shard(cfg, plan, i, partial(progress.update, shard=i))
                    for i in range(len(plan.shards))
                ]
        if check is not None:
            check.result()
        return results
    except BatchscoreError as exc:
        if not exc.retryable or isinstance(exc, LocalWriteError):
            discard_staging(open_store(cfg), plan)
        raise
