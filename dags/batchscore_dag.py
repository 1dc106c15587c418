"""
### batchscore: nightly batch scoring

Scores the pinned input data set with the pinned scikit-learn model and publishes the scores, the
quarantined rows, a run manifest and quality reports to the object store, all or nothing.

**resolve** the params → **pull** the DVC-versioned input → **plan** (model pin, input columns
against the model, suites, shard plan; no row read) → **fan_out** → **score** one mapped task per
shard (row-level gates) → **publish** (run-level gates, reports, one commit) → **report** (summary
line, asset events). A trigger with a conf key the form does not have fails at once, naming the
known ones; every failed task's log ends with one `batchscore FAILED ...` line.

Every step is a `pipelines` function, the same one `dvc repro` runs; this DAG adds the schedule,
the trigger form, retries and the fan-out. Configuration is `params.yaml` (path from
`BATCHSCORE_PARAMS`), overridden by `BATCHSCORE__SECTION__KEY` environment variables, then by the
values in the trigger form below. Leave a field empty to keep the `params.yaml` value.

The **run key** names the published partition. It is the *Run key* field if set, else the run's
logical date (scheduled runs), else the date the run started (manual runs without a logical date).
Re-running a published run key is a no-op when the output would be identical, and fails clearly
when it would differ, unless *Overwrite* is on.

Failures that retrying cannot fix (bad params, failed quality gates, a publish conflict, a tampered
model) fail the task at once; storage and network errors are retried with exponential backoff.
The run's quality report: `quality report: <uri>` in the publish and report logs, `report_uri` in
the Asset events' extra, and the **Quality report** link on those tasks in the UI.
**Alerts** (`alerts` in params.yaml, channels in Airflow connections): one message per run that
fails, is flagged by drift or performance monitoring, passes the quarantine warning level, or is
not finished by `alerts.deadline` (see docs/alerts.md).
The trigger form, config loading and these helpers are in `batchscore_support.py` beside this file,
what a finished run reports in `batchscore_report.py`, its alerts in `batchscore_alerts.py`.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.sdk import Asset, dag, get_current_context, task
from batchscore_alerts import alert_failed_run, alert_published_run, deadline_alerts, record_failure
from batchscore_report import link_quality_report, log_run_summary, publish_summary
from batchscore_support import (
    PARAMS,
    ensure_pulled,
    fail_fast,
    form_overrides,
    load_settings,
    log_failure_summary,
    log_retry_summary,
    nightly_schedule,
    reading,
)

log = logging.getLogger("batchscore.dag")

# Downstream DAGs schedule on these (`schedule=[SCORES]`, or `Asset.ref(name="batchscore_scores")`).
# Each event's `extra` holds the run key, the manifest and quality report URIs of the run.
SCORES = Asset(name="batchscore_scores", uri="batchscore://published/scores", group="batchscore")
QUARANTINE = Asset(
    name="batchscore_quarantine", uri="batchscore://published/quarantine", group="batchscore"
)
REPORTS = Asset(name="batchscore_reports", uri="batchscore://published/reports", group="batchscore")
OUTPUTS = [SCORES, QUARANTINE, REPORTS]


@dag(
    dag_id="batchscore",
    schedule=nightly_schedule(),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    params=PARAMS,
    doc_md=__doc__,
    tags=["batchscore", "scoring"],
    default_args={
        "owner": "ml-platform",
        "retries": 2,
        "retry_delay": dt.timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=10),
        "execution_timeout": dt.timedelta(hours=1),
        "on_failure_callback": [log_failure_summary, record_failure],
        "on_retry_callback": log_retry_summary,
    },
    on_failure_callback=[log_failure_summary, alert_failed_run],  # one alert per failed run
    deadline=deadline_alerts(),  # alerts.deadline: a run not finished in time alerts too
)
def batchscore():
    """The pipeline (long because it holds the tasks: each is a few lines)."""

    @task(execution_timeout=dt.timedelta(minutes=5))
    def resolve(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Turn the trigger form into params.yaml overrides; fail now on an unknown key or a bad
        value."""
        with fail_fast():
            overrides = form_overrides(params or {}, get_current_context())
            cfg = load_settings(overrides)
        log.info(
            "batchscore run_key=%s data=%s@%s model=%s output=%s overrides=%s",
            cfg.run_key,
            cfg.data.path,
            cfg.data.rev or "workspace",
            cfg.model.path,
            cfg.output.uri,
            overrides,
        )
        return overrides

    @task(max_active_tis_per_dag=1, execution_timeout=dt.timedelta(minutes=30))
    def pull(overrides: dict[str, Any]) -> dict[str, Any]:
        """Fetch the input at its pinned revision and prove it is the recorded version."""
        from pipelines.data.pull import pull_input

        with fail_fast():
            pulled = pull_input(load_settings(overrides))
        log.info("batchscore input %s (git %s, md5 %s)", pulled.path, pulled.git_rev, pulled.md5)
        return pulled.as_dict()

    @task(execution_timeout=dt.timedelta(minutes=30), show_return_value_in_logs=False)
    def plan(overrides: dict[str, Any], pulled: dict[str, Any]) -> dict[str, Any]:
        """Check what needs no row read (model pin, columns, suites), then split in shards."""
        from pipelines.run.plan import plan_run

        with fail_fast():
            cfg = load_settings(overrides)
            ensure_pulled(cfg)  # another worker may have pulled
            plan = plan_run(reading(cfg, pulled["path"]), pulled["git_rev"], pulled["md5"])
        log.info(
            "batchscore run_key=%s shards=%d already_published=%s",
            plan.run_key,
            len(plan.shards),
            plan.already_published,
        )
        return plan.model_dump(mode="json")

    @task
    def fan_out(plan: dict[str, Any]) -> list[int]:
        """The shard indexes to score, one mapped task each; none if the run key is published."""
        return [] if plan.get("already_published") else list(range(len(plan["shards"])))

    @task(retries=3, show_return_value_in_logs=False)  # per-expectation gate state: long
    def score(overrides: dict[str, Any], plan: dict[str, Any], shard: int) -> dict[str, Any]:
        """Score one shard in bounded-memory chunks into the run's staging area."""
        from pipelines.run.plan import RunPlan
        from pipelines.run.shard import score_shard

        with fail_fast():
            cfg = load_settings(overrides)
            ensure_pulled(cfg)  # this worker may not have the input yet
            result = score_shard(cfg, RunPlan.model_validate(plan), shard)
        return result.model_dump(mode="json")

    @task(trigger_rule="none_failed", execution_timeout=dt.timedelta(minutes=30))
    def publish(
        overrides: dict[str, Any], plan: dict[str, Any], results: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        """Run-level quality gates and reports, then one conditional commit of the manifest."""
        from pipelines.run.finalize import publish_run
        from pipelines.run.plan import RunPlan, ShardResult

        # One slice read: iterating a mapped XCom probes past its end and logs an error.
        shards = [ShardResult.model_validate(r) for r in (results or [])[:]]
        with fail_fast():
            done = publish_run(load_settings(overrides), RunPlan.model_validate(plan), shards)
        return publish_summary(done)  # logs "quality report: <uri>"

    @task(outlets=OUTPUTS, execution_timeout=dt.timedelta(minutes=5))
    def report(overrides: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
        """Log the run's summary line, alert if it is flagged (drift, performance, quarantine);
        announce newly published outputs to downstream DAGs."""
        from airflow.sdk.exceptions import AirflowSkipException

        log_run_summary(summary)
        alert_published_run(overrides, summary, get_current_context())  # never raises
        if not summary.get("newly_published"):
            # Nothing new for downstream DAGs, and a skipped task emits no asset event.
            raise AirflowSkipException(f"nothing newly published ({summary.get('status')})")
        events = get_current_context()["outlet_events"]
        for asset in OUTPUTS:
            events[asset].extra = summary
        return summary

    overrides = resolve()
    run_plan = plan(overrides, pull(overrides))
    scored = score.partial(overrides=overrides, plan=run_plan).expand(shard=fan_out(run_plan))
    published = publish(overrides, run_plan, scored)
    link_quality_report(published, report(overrides, published))


batchscore()
