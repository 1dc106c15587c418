"""
### batchscore: nightly batch scoring

Scores the pinned input data set with the pinned scikit-learn model and publishes the scores, the
quarantined rows, a run manifest and quality reports to the object store, all or nothing.

**resolve** the params → **pull** the DVC-versioned input → **validate_input** (model pin,
table-level gate, shard plan) → **fan_out** → **score** one mapped task per shard → **publish**
(run-level gates, reports, one commit) → **report** (summary line, asset events).

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
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, CronTriggerTimetable, Param, dag, get_current_context, task

log = logging.getLogger("batchscore.dag")

DAG_ID = "batchscore"
PARAMS_ENV = "BATCHSCORE_PARAMS"
REPO_PARAMS = Path(__file__).resolve().parent.parent / "params.yaml"
DEFAULT_CRON = "0 2 * * *"
S3_CONN_ID = "batchscore_s3"  # optional Airflow connection (AIRFLOW_CONN_BATCHSCORE_S3)

# Downstream DAGs schedule on these (`schedule=[SCORES]`, or `Asset.ref(name="batchscore_scores")`).
# Each event's `extra` holds the run key and the manifest URI of the run that published.
SCORES = Asset(name="batchscore_scores", uri="batchscore://published/scores", group="batchscore")
QUARANTINE = Asset(
    name="batchscore_quarantine", uri="batchscore://published/quarantine", group="batchscore"
)
REPORTS = Asset(name="batchscore_reports", uri="batchscore://published/reports", group="batchscore")
OUTPUTS = [SCORES, QUARANTINE, REPORTS]

# Trigger-form field -> params.yaml key it overrides (empty field = keep params.yaml).
OVERRIDES = {
    "run_key": "run.key",
    "data_rev": "data.rev",
    "model_path": "model.path",
    "model_sha256": "model.sha256",
    "chunk_size": "score.chunk_size",
    "shard_rows": "score.shard_rows",
    "max_quarantine_fraction": "validation.max_quarantine_fraction",
}
# Switches force a setting on; off keeps params.yaml.
FLAGS = {"overwrite": "run.overwrite", "dry_run": "run.dry_run"}

# The trigger form shows the fields in this order (one section: the UI opens one at a time).
PARAMS = {
    "run_key": Param(
        None,
        type=["null", "string"],
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._=-]{0,127}$",
        title="Run key",
        description="Partition to publish, e.g. 2026-11-23. Empty: the logical date, else the "
        "date the run started.",
    ),
    "data_rev": Param(
        None,
        type=["null", "string"],
        minLength=1,
        title="Data revision",
        description="Git revision (commit, tag or branch) of the DVC repo that pins the input. "
        "Empty: data.rev from params.yaml.",
    ),
    "model_path": Param(
        None,
        type=["null", "string"],
        minLength=1,
        title="Model artifact",
        description="Path of the model version to score with (.skops). Empty: model.path.",
    ),
    "model_sha256": Param(
        None,
        type=["null", "string"],
        pattern=r"^[0-9a-fA-F]{64}$",
        title="Model sha256",
        description="Pinned sha256 of that artifact; it is refused if the file differs. "
        "Empty: model.sha256, else the model card's.",
    ),
    "chunk_size": Param(
        None,
        type=["null", "integer"],
        minimum=1,
        title="Chunk size (rows)",
        description="Rows per predict_proba call; bounds memory. Empty: score.chunk_size.",
    ),
    "shard_rows": Param(
        None,
        type=["null", "integer"],
        minimum=1,
        title="Rows per shard",
        description="Target rows per mapped scoring task: input rows / this = number of shards. "
        "Empty: score.shard_rows.",
    ),
    "max_quarantine_fraction": Param(
        None,
        type=["null", "number"],
        minimum=0,
        maximum=1,
        title="Quarantine threshold",
        description="Fail the run if more than this share of rows is quarantined (0-1). "
        "Empty: validation.max_quarantine_fraction.",
    ),
    "overwrite": Param(
        False,
        type="boolean",
        title="Overwrite",
        description="Replace an existing publication of this run key whose output differs. "
        "Off: such a rerun fails; an identical rerun is always a no-op.",
    ),
    "dry_run": Param(
        False,
        type="boolean",
        title="Dry run",
        description="Pull, validate and score, but publish nothing.",
    ),
}


def _params_path() -> str:
    return os.environ.get(PARAMS_ENV) or str(REPO_PARAMS)


def _nightly_schedule() -> CronTriggerTimetable:
    """`schedule.cron` from params.yaml (or its env override), read cheaply at parse time.

    A missing or broken file or cron falls back to the default with a warning: a parse error would
    take the whole DAG, and its manual trigger, out of the UI.
    """
    cron = os.environ.get("BATCHSCORE__SCHEDULE__CRON")
    if not cron:
        try:
            import yaml

            with open(_params_path()) as fh:
                cron = ((yaml.safe_load(fh) or {}).get("schedule") or {}).get("cron")
        except Exception as exc:  # never fail the parse over the schedule
            log.warning("batchscore: cannot read schedule.cron from %s: %s", _params_path(), exc)
    timetable = CronTriggerTimetable(str(cron or DEFAULT_CRON), timezone="UTC")
    try:
        timetable.validate()
    except Exception as exc:
        log.warning("batchscore: invalid schedule.cron %r (%s); using %r", cron, exc, DEFAULT_CRON)
        timetable = CronTriggerTimetable(DEFAULT_CRON, timezone="UTC")
    return timetable


def log_failure_summary(context: Mapping[str, Any]) -> None:
    """Failure callback (task and DAG level): one line that says what failed, where and why."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    exception = context.get("exception")
    if exception is not None or context.get("reason") is None:  # a task's own failure
        where = f"task={getattr(ti, 'task_id', '?')}"
        if getattr(ti, "map_index", -1) not in (-1, None):
            where += f"[{ti.map_index}]"
        if getattr(ti, "try_number", None):
            where += f" try={ti.try_number}"
        reason = exception or "see the task log"
    else:  # the DAG run's failure
        where = "dag_run"
        reason = f"{context['reason']} (task {getattr(ti, 'task_id', '?')} failed)"
    run_id = getattr(dag_run, "run_id", None) or context.get("run_id")
    key = (context.get("params") or {}).get("run_key") or "<from date>"
    msg = " ".join(str(reason).split())  # one line, whatever the exception text holds
    log.error("batchscore FAILED run_id=%s run_key=%s %s: %s", run_id, key, where, msg)


@contextmanager
def _fail_fast() -> Iterator[None]:
    """Turn errors that a retry cannot fix into AirflowFailException: fail now, say why."""
    from airflow.sdk.exceptions import AirflowFailException

    from pipelines.errors import BatchscoreError

    try:
        yield
    except BatchscoreError as exc:
        if exc.retryable:
            raise
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def _load(overrides: Mapping[str, Any]):  # -> pipelines.config.Settings
    """The run's config: params.yaml, env overrides, then the trigger form's values."""
    from pipelines.config import load_config

    _export_s3_connection()
    return load_config(_params_path(), overrides=dict(overrides))


def _export_s3_connection() -> None:
    """Hand the Airflow connection `batchscore_s3`, if defined, to boto3 and DVC.

    `pipelines` never imports Airflow and reads credentials from the standard AWS environment
    variables, so the connection's values go into this task process's environment (each task
    is its own process). Without the connection, the AWS_* variables or role apply as they are.
    """
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    env_name = f"AIRFLOW_CONN_{S3_CONN_ID.upper()}"
    try:
        conn = Connection.get(S3_CONN_ID)
    except AirflowNotFoundException:
        # Airflow skips a value it cannot parse as if it were unset: never run on other credentials.
        if os.environ.get(env_name):
            raise _unreadable_connection(env_name) from None
        return
    extra = conn.extra_dejson
    # A value without `aws://` parses into a typeless connection, or one typed after the key id.
    if (conn.conn_type or "aws") != "aws" or not (
        conn.conn_type or conn.login or conn.password or extra
    ):
        raise _unreadable_connection(env_name)
    for name, value in (
        ("AWS_ACCESS_KEY_ID", conn.login),
        ("AWS_SECRET_ACCESS_KEY", conn.password),
        ("AWS_SESSION_TOKEN", extra.get("aws_session_token")),
    ):
        if value:
            os.environ[name] = value
    if extra.get("region_name"):
        os.environ.setdefault("AWS_DEFAULT_REGION", extra["region_name"])
    if extra.get("endpoint_url"):
        os.environ.setdefault("BATCHSCORE__S3__ENDPOINT_URL", extra["endpoint_url"])


def _unreadable_connection(env_name: str) -> Exception:
    from pipelines.errors import ConfigError

    return ConfigError(  # the value is never shown: it holds a secret
        f"the Airflow connection {S3_CONN_ID!r} is set but is not a readable `aws` connection "
        "(malformed JSON or URI)",
        where=f"{env_name} or the connection in the Airflow metadata DB",
        fix='set it to a URI such as aws://KEY:SECRET@/?region_name=us-east-1 (URL-encode "/" '
        'and "+" in the secret) or to JSON {"conn_type": "aws", "login": ..., "password": ...}, '
        "or remove it to use the AWS_* variables or role",
    )


def _pull(cfg):  # -> pipelines.datapull.PulledInput
    """The input at its pinned revision, verified; cached per revision on each worker."""
    from pipelines.datapull import pull_input

    return pull_input(cfg)


def _reading(cfg, path: str):  # -> Settings
    """`cfg` with data.path pointing at the pulled file."""
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"path": Path(path)})})


def _scalar(value: Any) -> Any:
    """Quote strings: `load_config` reads string overrides as YAML, where 2026-11-23 is a date."""
    import json

    return json.dumps(value) if isinstance(value, str) else value


def _run_key(params: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    """Explicit param, else the logical date, else the date the run started (manual, no date)."""
    if params.get("run_key"):
        return str(params["run_key"])
    dag_run = context.get("dag_run")
    when = (
        context.get("logical_date")
        or getattr(dag_run, "start_date", None)
        or getattr(dag_run, "run_after", None)
        or dt.datetime.now(dt.UTC)
    )
    return when.strftime("%Y-%m-%d")


@dag(
    dag_id=DAG_ID,
    schedule=_nightly_schedule(),
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
        "on_failure_callback": log_failure_summary,
    },
    on_failure_callback=log_failure_summary,
)
def batchscore():
    @task(execution_timeout=dt.timedelta(minutes=5))
    def resolve(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Turn the trigger form into params.yaml overrides; fail now if any value is invalid."""
        params = params or {}
        overrides = {
            key: _scalar(params[name])
            for name, key in OVERRIDES.items()
            if params.get(name) not in (None, "")
        }
        overrides.update({key: True for name, key in FLAGS.items() if params.get(name)})
        overrides["run.key"] = _scalar(_run_key(params, get_current_context()))
        with _fail_fast():
            cfg = _load(overrides)
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
        with _fail_fast():
            pulled = _pull(_load(overrides))
        log.info("batchscore input %s (git %s, md5 %s)", pulled.path, pulled.git_rev, pulled.md5)
        return pulled.as_dict()

    @task(execution_timeout=dt.timedelta(minutes=30), show_return_value_in_logs=False)
    def validate_input(overrides: dict[str, Any], pulled: dict[str, Any]) -> dict[str, Any]:
        """Check the model pin and the table-level expectations, then split the input in shards."""
        from pipelines.run import plan_run

        with _fail_fast():
            cfg = _load(overrides)
            if cfg.data.rev:  # another worker may have pulled: a cached no-op on this one
                _pull(cfg)
            plan = plan_run(
                _reading(cfg, pulled["path"]), git_rev=pulled["git_rev"], dvc_md5=pulled["md5"]
            )
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
        from pipelines.run import RunPlan, score_shard

        with _fail_fast():
            cfg = _load(overrides)
            if cfg.data.rev:  # make sure this worker has the pulled input (cached per revision)
                _pull(cfg)
            result = score_shard(cfg, RunPlan.model_validate(plan), shard)
        return result.model_dump(mode="json")

    @task(trigger_rule="none_failed", execution_timeout=dt.timedelta(minutes=30))
    def publish(
        overrides: dict[str, Any], plan: dict[str, Any], results: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        """Run-level quality gates and reports, then one conditional commit of the manifest."""
        from pipelines.publish import manifest_key, read_manifest
        from pipelines.run import RunPlan, ShardResult, finalize_run
        from pipelines.storage import open_store

        run_plan = RunPlan.model_validate(plan)
        with _fail_fast():
            cfg = _load(overrides)
            store = open_store(cfg)
            if run_plan.already_published:
                manifest = read_manifest(store, run_plan.model.name, run_plan.run_key)
                status = "already_published"
            else:
                # One slice read: iterating a mapped XCom probes past its end and logs an error.
                shard_results = [ShardResult.model_validate(r) for r in (results or [])[:]]
                manifest = finalize_run(cfg, run_plan, shard_results)
                status = (
                    "dry_run"
                    if manifest.dry_run
                    else "committed"
                    if manifest.attempt_id == run_plan.attempt_id
                    else "identical"
                )
        key = manifest_key(manifest.model.name, manifest.run_key)
        return {
            "status": status,
            "manifest_uri": None if status == "dry_run" else store.url(key),
            **manifest.model_dump(mode="json", include={"run_key", "content_sha256", "counts"}),
        }

    @task(outlets=OUTPUTS, execution_timeout=dt.timedelta(minutes=5))
    def report(summary: dict[str, Any]) -> dict[str, Any]:
        """Log the run's summary line; announce newly published outputs to downstream DAGs."""
        from airflow.sdk.exceptions import AirflowSkipException

        counts = summary.get("counts") or {}
        log.info(
            "batchscore run_key=%s status=%s rows_in=%s scored=%s quarantined=%s manifest=%s",
            summary.get("run_key"),
            summary.get("status"),
            counts.get("rows_in"),
            counts.get("rows_scored"),
            counts.get("rows_quarantined"),
            summary.get("manifest_uri"),
        )
        if summary.get("status") != "committed":
            # Nothing new for downstream DAGs, and a skipped task emits no asset event.
            raise AirflowSkipException(f"nothing newly published ({summary.get('status')})")
        events = get_current_context()["outlet_events"]
        for asset in OUTPUTS:
            events[asset].extra = summary
        return summary

    overrides = resolve()
    plan = validate_input(overrides, pull(overrides))
    scored = score.partial(overrides=overrides, plan=plan).expand(shard=fan_out(plan))
    report(publish(overrides, plan, scored))


batchscore()
