"""A run, in three steps that every entry point shares: plan, score shards, finalize.

`run_pipeline` chains them on one machine (a process pool over shards). The Airflow DAG calls the
same functions as separate tasks, mapping `score_shard` over the plan's shards, so a cluster
scores shards on many workers and one task commits (`publish_run`: `finalize_run` that also says
what the commit did). Plans and results are pydantic models that round-trip through JSON (XCom).
"""

from __future__ import annotations

from pipelines.config import Settings
from pipelines.progress import Progress
from pipelines.publish.manifest import RunManifest
from pipelines.run.finalize import discard_staging, finalize_run
from pipelines.run.plan import plan_run
from pipelines.run.pool import score_in_pool
from pipelines.run.shard import score_shard
from pipelines.storage.open import open_store


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
            results = score_in_pool(cfg, plan, workers, progress)
    except BaseException:
        discard_staging(open_store(cfg), plan)
        raise
    finally:
        progress.close()
    return finalize_run(cfg, plan, results)
