"""What `batchscore_dag.py` needs around the pipeline: the trigger form, the schedule, config
loading, the S3 connection hand-off, fail-fast errors, the run key and the failure callbacks. What
a finished run reports (summary, quality report, its link in the UI) is in `batchscore_report.py`.

Airflow puts the dags folder on `sys.path` (the dag-processor and every task process), so the DAG
imports this module by its name. It is listed in `.airflowignore`: not a DAG file itself. Cheap to
import, as the DAG file must be: of `pipelines` only the config (pydantic, which Airflow has
loaded), nothing heavy (pandas, scikit-learn, GX) until a task calls a function here.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import CronTriggerTimetable, Param

from pipelines.config import DEFAULT_CRON, RUN_KEY_PATTERN  # pydantic only: Airflow has it loaded

if TYPE_CHECKING:
    from pipelines.config import Settings

log = logging.getLogger("batchscore.dag")

PARAMS_ENV = "BATCHSCORE_PARAMS"
REPO_PARAMS = Path(__file__).resolve().parent.parent / "params.yaml"
S3_CONN_ID = "batchscore_s3"  # optional Airflow connection (AIRFLOW_CONN_BATCHSCORE_S3)
MLFLOW_CONN_ID = (
    "batchscore_mlflow"  # optional: the model registry (AIRFLOW_CONN_BATCHSCORE_MLFLOW)
)

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

# The form's sections (the `section` of a Param's schema), shown in this order, one open at a time.
WHAT, HOW, PUBLISHING = "What to score", "How", "Publishing"
# The form marks every field whose type does not allow null as required. A switch always has a
# value, so its type admits null only to lose that mark; null means off, as False does.
SWITCH = ["boolean", "null"]

PARAMS = {
    "run_key": Param(
        None,
        type=["null", "string"],
        pattern=RUN_KEY_PATTERN,
        title="Run key",
        description="Partition to publish, e.g. 2026-11-23. Empty: the logical date, else the "
        "date the run started.",
        section=WHAT,
    ),
    "data_rev": Param(
        None,
        type=["null", "string"],
        minLength=1,
        title="Data revision",
        description="Git revision (commit, tag or branch) of the DVC repo that pins the input. "
        "Empty: data.rev from params.yaml.",
        section=WHAT,
    ),
    "model_path": Param(
        None,
        type=["null", "string"],
        minLength=1,
        title="Model artifact",
        description="The model to score with: a .skops path, or a registry model "
        "models:/NAME@ALIAS or models:/NAME/VERSION (resolved once, when the run is planned). "
        "Empty: model.uri, else model.path.",
        section=WHAT,
    ),
    "model_sha256": Param(
        None,
        type=["null", "string"],
        pattern=r"^[0-9a-fA-F]{64}$",
        title="Model sha256",
        description="Pinned sha256 of that artifact; it is refused if the file differs. "
        "Empty: model.sha256, else the model card's.",
        section=WHAT,
    ),
    "chunk_size": Param(
        None,
        type=["null", "integer"],
        minimum=1,
        title="Chunk size (rows)",
        description="Rows per predict_proba call; bounds memory. Empty: score.chunk_size.",
        section=HOW,
    ),
    "shard_rows": Param(
        None,
        type=["null", "integer"],
        minimum=1,
        title="Rows per shard",
        description="Target rows per mapped scoring task: input rows / this = number of shards. "
        "Empty: score.shard_rows.",
        section=HOW,
    ),
    "max_quarantine_fraction": Param(
        None,
        type=["null", "number"],
        minimum=0,
        maximum=1,
        title="Quarantine threshold",
        description="Fail the run if more than this share of rows is quarantined (0-1). "
        "Empty: validation.max_quarantine_fraction.",
        section=HOW,
    ),
    "overwrite": Param(
        False,
        type=SWITCH,
        title="Overwrite",
        description="Replace an existing publication of this run key whose output differs. "
        "Off: such a rerun fails; an identical rerun is always a no-op.",
        section=PUBLISHING,
    ),
    "dry_run": Param(
        False,
        type=SWITCH,
        title="Dry run",
        description="Pull, validate and score, but publish nothing.",
        section=PUBLISHING,
    ),
}


def params_path() -> str:
    return os.environ.get(PARAMS_ENV) or str(REPO_PARAMS)


def nightly_schedule() -> CronTriggerTimetable:
    """`schedule.cron` through the config (params.yaml, its env override), read at parse time.

    A missing or broken file or cron falls back to the default with a warning: a parse error would
    take the whole DAG, and its manual trigger, out of the UI.
    """
    from pipelines.config import load_config

    cron = DEFAULT_CRON
    try:
        cron = load_config(params_path()).schedule.cron
    except Exception as exc:  # never fail the parse over the schedule
        log.warning("batchscore: cannot read schedule.cron from %s: %s", params_path(), exc)
    timetable = CronTriggerTimetable(cron, timezone="UTC")
    try:
        timetable.validate()
    except Exception as exc:
        log.warning("batchscore: invalid schedule.cron %r (%s); using %r", cron, exc, DEFAULT_CRON)
        timetable = CronTriggerTimetable(DEFAULT_CRON, timezone="UTC")
    return timetable


def log_failure_summary(context: Mapping[str, Any]) -> None:
    """Failure callback (task and DAG level): one line that says what failed, where and why."""
    _log_summary(context, retrying=False)


def log_retry_summary(context: Mapping[str, Any]) -> None:
    """Retry callback: the same line for a failed try that Airflow will retry."""
    _log_summary(context, retrying=True)


def _log_summary(context: Mapping[str, Any], *, retrying: bool) -> None:
    """In a task, Airflow runs the callback after the traceback, inside the log's "Post Execute"
    group, which the UI shows collapsed: closing that group first makes the summary the last line
    a reader sees, not a line hidden under the traceback."""
    from airflow.sdk.exceptions import AirflowFailException

    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    exception = context.get("exception")
    if exception is not None or context.get("reason") is None:  # a task's own failure
        where = f"task={getattr(ti, 'task_id', '?')}"
        if getattr(ti, "map_index", -1) not in (-1, None):
            where += f"[{ti.map_index}]"
        if getattr(ti, "try_number", None):
            where += f" try={ti.try_number}"
        if retrying:
            where += " (will retry)"
        reason = exception or "see the task log"
        if isinstance(exception, BaseException) and not isinstance(exception, AirflowFailException):
            reason = f"{type(exception).__name__}: {exception}"  # fail_fast's messages have it
        log.info("::endgroup::")  # Airflow's own closing marker follows: an extra one is ignored
    else:  # the DAG run's failure (its callback runs in the dag-processor, not a task log)
        where = "dag_run"
        reason = f"{context['reason']} (task {getattr(ti, 'task_id', '?')} failed)"
    run_id = getattr(dag_run, "run_id", None) or context.get("run_id")
    key = (context.get("params") or {}).get("run_key") or "<from date>"
    msg = " ".join(str(reason).split())  # one line, whatever the exception text holds
    log.error("batchscore FAILED run_id=%s run_key=%s %s: %s", run_id, key, where, msg)


@contextmanager
def fail_fast() -> Iterator[None]:
    """Turn errors that a retry cannot fix into AirflowFailException: fail now, say why."""
    from airflow.sdk.exceptions import AirflowFailException

    from pipelines.errors import BatchscoreError

    try:
        yield
    except BatchscoreError as exc:
        if exc.retryable:
            raise
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def form_overrides(params: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """The trigger form as params.yaml overrides (empty fields left out), with the run key.

    Raises ConfigError, in one sentence, for a conf key the form does not have or a value its
    params.yaml setting refuses."""
    refuse_unknown_keys(params, context)
    check_form_values(params)
    overrides = {
        key: yaml_scalar(params[name])
        for name, key in OVERRIDES.items()
        if params.get(name) not in (None, "")
    }
    overrides.update({key: True for name, key in FLAGS.items() if params.get(name)})
    if str(overrides.get("model.path", "")).strip("'\"").startswith("models:/"):
        overrides["model.uri"] = overrides.pop("model.path")  # a registry model
    overrides["run.key"] = yaml_scalar(resolve_run_key(params, context))
    return overrides


def refuse_unknown_keys(params: Mapping[str, Any], context: Mapping[str, Any]) -> None:
    """A typo in a run's conf (`run_kye`) would otherwise be ignored and the run go on without it.

    Airflow accepts any extra conf key at trigger time and adds it to the params."""
    from pipelines.errors import ConfigError

    conf = getattr(context.get("dag_run"), "conf", None) or {}
    unknown = sorted((set(params) | set(conf)) - set(PARAMS))
    if not unknown:
        return
    hints = {k: difflib.get_close_matches(k, list(PARAMS), n=1) for k in unknown}
    if len(unknown) == 1:
        (name,) = unknown
        what = f"unknown conf key {name!r}" + (
            f"; did you mean {hints[name][0]!r}?" if hints[name] else "."
        )
    else:
        what = "unknown conf keys " + ", ".join(
            f"{k!r}" + (f" (did you mean {hints[k][0]!r}?)" if hints[k] else "") for k in unknown
        )
        what += "."
    raise ConfigError(f"{what} Known: {', '.join(PARAMS)}")


def check_form_values(params: Mapping[str, Any]) -> None:
    """Each form value against the params.yaml setting it overrides, one at a time, so a bad
    one is named in a sentence (load_config lists every invalid setting, over several lines).

    The form's own schema is checked by Airflow when the run is triggered; this catches what it
    lets through and the config refuses."""
    from pydantic import ValidationError

    from pipelines.config import Settings
    from pipelines.errors import ConfigError

    for name, dotted in {**OVERRIDES, **FLAGS}.items():
        value = params.get(name)
        if value in (None, ""):
            continue
        section, field = dotted.split(".")
        model = Settings.model_fields[section].annotation
        try:  # each section validates assignments
            setattr(model.model_construct(), field, value)  # type: ignore[union-attr]
        except ValidationError as exc:
            why = exc.errors()[0]["msg"].removeprefix("Value error, ")
            title = PARAMS[name].schema.get("title", name)
            raise ConfigError(
                f"trigger form field {title!r} ({name}) = {value!r} is not a valid {dotted}: "
                f"{why[:1].lower()}{why[1:]}"
            ) from None


def yaml_scalar(value: Any) -> Any:
    """Quote strings: `load_config` reads string overrides as YAML, where 2026-11-23 is a date."""
    return json.dumps(value) if isinstance(value, str) else value


def resolve_run_key(params: Mapping[str, Any], context: Mapping[str, Any]) -> str:
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


def load_settings(overrides: Mapping[str, Any]) -> Settings:
    """The run's config: params.yaml, env overrides, then the trigger form's values."""
    from pipelines.config import load_config

    export_s3_connection()
    export_mlflow_connection()
    return load_config(params_path(), overrides=dict(overrides))


def export_mlflow_connection() -> None:
    """Hand the Airflow connection `batchscore_mlflow`, if defined, to MLflow: its address as
    MLFLOW_TRACKING_URI, its login and password as MLFLOW_TRACKING_USERNAME/PASSWORD (what MLflow
    reads). Without it, $MLFLOW_TRACKING_URI or registry.uri apply; never a secret in code."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(MLFLOW_CONN_ID)
    except AirflowNotFoundException:
        return
    scheme = conn.extra_dejson.get("scheme") or ("https" if conn.port == 443 else "http")
    port = f":{conn.port}" if conn.port else ""
    os.environ["MLFLOW_TRACKING_URI"] = f"{scheme}://{conn.host}{port}{conn.schema or ''}"
    for name, value in (("USERNAME", conn.login), ("PASSWORD", conn.password)):
        if value:
            os.environ[f"MLFLOW_TRACKING_{name}"] = value


def ensure_pulled(cfg: Settings) -> None:
    """Make sure this worker has the pinned input: a cached no-op where it was pulled already."""
    from pipelines.data.pull import pull_input

    if cfg.data.rev:
        pull_input(cfg)


def reading(cfg: Settings, path: str) -> Settings:
    """`cfg` with data.path pointing at the pulled file."""
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"path": Path(path)})})


def export_s3_connection() -> None:
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
