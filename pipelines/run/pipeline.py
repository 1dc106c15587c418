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
from pipelines.run.finalize import discard_staging, finalize_run
from pipelines.run.plan import RunPlan, ShardResult, plan_run
from pipelines.run.pool import score_in_pool
from pipelines.run.shard import score_shard
from pipelines.storage.open import open_store


def run_pipeline(
    cfg: Settings, git_rev: str | None = None, dvc_md5: str | None = None
) -> RunManifest:
    """The whole run on this machine: plan, score shards on `score.workers` processes, commit.

    Progress shows the stage (plan → score → publish, or finalize for a dry run) and the rows.
    """
    last = "finalize" if cfg.run.dry_run else "publish"
    with Progress(None, cfg.score.progress, stages=("plan", "score", last)) as progress:
        progress.stage("plan")
        plan = plan_run(cfg, git_rev=git_rev, dvc_md5=dvc_md5)
        results: list[ShardResult] = []
        if not plan.already_published:
            shard_rows = [shard["rows"] for shard in plan.shards]
            progress.stage("score", total=plan.input.rows, shards=shard_rows)
            results = _score_shards(cfg, plan, progress)
        progress.stage(last)
        return finalize_run(cfg, plan, results)


def _score_shards(cfg: Settings, plan: RunPlan, progress: Progress) -> list[ShardResult]:
    """Every shard, here or on a pool of processes.

    A shard that fails on its input (a BatchscoreError that is not retryable: a rerun would fail
    the same way) removes the staging. Anything else (a worker lost, a kill, a stop, a storage
    error that may pass) keeps the finished shards' parts
    and records, invisible without a manifest, so a rerun of the run key reuses them
    (run/resume); the next commit of the run removes whatever is left."""
    workers = min(cfg.score.resolved_workers, len(plan.shards))
    try:
        if workers > 1:
            return score_in_pool(cfg, plan, workers, progress)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            return [
                score_shard(cfg, plan, i, partial(progress.update, shard=i))
                for i in range(len(plan.shards))
            ]
    except BatchscoreError as exc:
        if not exc.retryable or isinstance(exc, LocalWriteError):
            discard_staging(open_store(cfg), plan)
        raise
