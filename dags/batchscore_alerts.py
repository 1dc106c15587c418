"""The DAG's alerts: one message per run that needs a person, through Airflow's own notifiers
(SmtpNotifier, SlackWebhookNotifier, AppriseNotifier when its provider is installed).

- A failed run: each failed task records its error (`record_failure`, a task failure callback,
  in an XCom), and the DAG's failure callback (`alert_failed_run`, run once per failed run by the
  dag-processor) sends one critical message naming the task, the error and the report.
- A published run flagged by drift or performance monitoring, or over the quarantine warning
  level: the `report` task sends one message (`alert_published_run`) before it ends.
- A scheduled run not finished by `alerts.deadline`: Airflow's (experimental) Deadline Alerts,
  built at parse time by `deadline_alerts`, run the notifiers in the triggerer.

Which reasons hold and what the message says are pure functions in `pipelines.alerts`; this module
only fetches the run's facts from Airflow and sends. Settings are read inside the callbacks, never
at parse time (except the deadline, which is part of the DAG). Listed in `.airflowignore`.
Sending never fails a run: a channel that cannot be reached is logged and the others still go.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import BaseNotifier, DeadlineAlert

    from pipelines.alerts.message import Alert
    from pipelines.alerts.settings import AlertsSettings
    from pipelines.config import Settings

log = logging.getLogger("batchscore.alerts")

FAILURE_XCOM = "batchscore_failure"  # a failed task's error, for the run's failure alert
SMTP_NOTIFIER = "airflow.providers.smtp.notifications.smtp.SmtpNotifier"
SLACK_NOTIFIER = "airflow.providers.slack.notifications.slack_webhook.SlackWebhookNotifier"
APPRISE_NOTIFIER = "airflow.providers.apprise.notifications.apprise.AppriseNotifier"


def record_failure(context: Mapping[str, Any]) -> None:
    """Task failure callback: keep what failed, in the task's XCom, for `alert_failed_run`.

    The DAG's failure callback runs in the dag-processor without the exception; the failed task
    is the one place that still has it. Best effort: the alert goes without it if this fails.
    """
    ti = context.get("ti") or context.get("task_instance")
    exception = context.get("exception")
    if ti is None or exception is None:
        return
    try:
        ti.xcom_push(key=FAILURE_XCOM, value=failure_record(exception))
    except Exception as exc:  # e.g. `dag.test`, whose callbacks run with no task supervisor
        log.warning("batchscore: could not record the failure for the alert: %r", exc)


def failure_record(exception: BaseException | str) -> dict[str, str | None]:
    """The error as JSON: its type, message and fix (a BatchscoreError behind fail_fast's)."""
    from pipelines.errors import BatchscoreError

    cause = exception
    if isinstance(exception, BaseException) and isinstance(exception.__cause__, BatchscoreError):
        cause = exception.__cause__
    if isinstance(cause, BatchscoreError):
        where = f" (in {cause.where})" if cause.where else ""
        return {"error": type(cause).__name__, "message": cause.what + where, "fix": cause.fix}
    error = type(cause).__name__ if isinstance(cause, BaseException) else None
    return {"error": error, "message": " ".join(str(cause).split())[:2000], "fix": None}


def alert_failed_run(context: Mapping[str, Any]) -> None:
    """DAG failure callback: the failed run's one critical message (never raises)."""
    try:
        _alert_failed_run(context)
    except Exception:  # a callback's error only reaches the dag-processor's log
        log.exception("batchscore: could not send the failure alert")


def _alert_failed_run(context: Mapping[str, Any]) -> None:
    from pipelines.alerts.decide import Failure, failure_reasons
    from pipelines.alerts.message import RunPlace, build_alert, model_label, report_in

    ti = context.get("ti")
    overrides = _pull(ti, "resolve") or {}
    cfg = _settings(overrides)
    if cfg is None or not cfg.alerts.enabled:
        return
    task = _task_name(ti)
    record = _pull(ti, getattr(ti, "task_id", None), FAILURE_XCOM, getattr(ti, "map_index", -1))
    record = record or {
        "message": f"the task ended without recording an error ({context.get('reason')}: "
        "killed, timed out or its worker was lost); see its log"
    }
    failure = Failure(task, record.get("error"), record.get("message"), record.get("fix"))
    plan = _pull(ti, "plan") or {}
    place = RunPlace(
        dag_id=_dag_id(context),
        dag_run_id=_run_id(context),
        run_key=_run_key(overrides, context),
        task=task,
        model=model_label(plan.get("model")),
        report_url=report_in(record.get("fix")) or report_in(record.get("message")),
        run_url=getattr(ti, "log_url", None) or _run_url(context),
    )
    send(build_alert(failure_reasons(failure, cfg.alerts), place), cfg.alerts, context)


def alert_published_run(
    overrides: Mapping[str, Any], summary: Mapping[str, Any], context: Mapping[str, Any]
) -> Alert | None:
    """From the `report` task: one message if the published run is flagged (never raises)."""
    try:
        from pipelines.alerts.decide import published_reasons
        from pipelines.alerts.message import RunPlace, build_alert, model_label

        cfg = _settings(overrides)
        if cfg is None or not cfg.alerts.enabled:
            return None
        settings = cfg.alerts
        reasons = published_reasons(summary, settings, cfg.validation.max_quarantine_fraction)
        place = RunPlace(
            dag_id=_dag_id(context),
            dag_run_id=_run_id(context),
            run_key=summary.get("run_key"),
            model=model_label(summary.get("model")),
            report_url=summary.get("report_uri"),
            run_url=_run_url(context),
        )
        alert = build_alert(reasons, place)
        send(alert, settings, context)
        return alert
    except Exception:  # after the commit nothing may fail the run
        log.exception("batchscore: could not send the run's alert")
        return None


def send(alert: Alert | None, settings: AlertsSettings, context: Mapping[str, Any]) -> list[str]:
    """Send `alert` through every configured channel; return those that took it.

    `notify` is called directly, not the notifier itself: that would render the message as a
    Jinja template, and an error text may hold braces.
    """
    if alert is None:
        return []
    sent = []
    for channel, notifier in notifiers(alert, settings):
        try:
            notifier.notify(dict(context))  # type: ignore[arg-type]
            sent.append(channel)
        except Exception:
            log.exception("batchscore: the %s alert could not be sent: %s", channel, alert.title)
    log.info(
        "batchscore alert (%s) sent via %s: %s", alert.severity, ", ".join(sent) or "-", alert.title
    )
    return sent


def notifiers(alert: Alert, settings: AlertsSettings) -> list[tuple[str, BaseNotifier]]:
    """One provider notifier per configured channel, carrying the message (lazy imports)."""
    found: list[tuple[str, BaseNotifier]] = []
    if settings.smtp is not None:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        found.append(("smtp", SmtpNotifier(**_smtp_kwargs(settings, alert.title, alert.body_html))))
    if settings.slack is not None:
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        notifier = SlackWebhookNotifier(
            slack_webhook_conn_id=settings.slack.conn_id, text=slack_text(alert.body_text)
        )
        found.append(("slack", notifier))
    if settings.apprise is not None:
        apprise = _apprise_notifier(alert, settings)
        if apprise is not None:
            found.append(("apprise", apprise))
    return found


def slack_text(text: str) -> str:
    """Slack's mrkdwn reads &, < and > as markup: escape them as its API asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _smtp_kwargs(settings: AlertsSettings, subject: str, html: str) -> dict[str, Any]:
    assert settings.smtp is not None
    return {
        "to": list(settings.smtp.to),
        "from_email": settings.smtp.from_,
        "subject": subject,
        "html_content": html,
        "smtp_conn_id": settings.smtp.conn_id,
    }


def _apprise_notifier(alert: Alert, settings: AlertsSettings) -> BaseNotifier | None:
    assert settings.apprise is not None
    try:
        from airflow.providers.apprise.notifications.apprise import AppriseNotifier
        from apprise import NotifyType
    except ImportError:
        log.warning(
            "batchscore: alerts.apprise is set but apache-airflow-providers-apprise is not "
            "installed; install it on every Airflow component or remove alerts.apprise"
        )
        return None
    kind = {"critical": NotifyType.FAILURE, "warning": NotifyType.WARNING}
    return AppriseNotifier(
        body=alert.body_text,
        title=alert.title,
        notify_type=kind.get(alert.severity, NotifyType.INFO),
        apprise_conn_id=settings.apprise.conn_id,
    )


def deadline_alerts() -> list[DeadlineAlert]:
    """`alerts.deadline` as Deadline Alerts, one per channel (parse time: config only).

    They run in the triggerer, which knows only the notifier's import path and a small context
    (`dag_run`, `deadline`), so the message is a template rendered there. A config that cannot be
    read, or a deadline that does not fit the schedule, logs a warning and sets no deadline: a
    parse error would take the DAG out of the UI.
    """
    from pipelines.config import load_config

    try:
        from batchscore_support import params_path

        cfg = load_config(params_path())
        settings = cfg.alerts
        if not (settings.enabled and settings.deadline):
            return []
        from pipelines.alerts.decide import deadline_interval

        reference, interval = deadline_interval(settings.deadline, cfg.schedule.cron)
    except Exception as exc:
        log.warning("batchscore: no deadline alert: %s", exc)
        return []
    return _deadline_alerts(settings, reference, interval)


def _deadline_alerts(
    settings: AlertsSettings, reference: str, interval: dt.timedelta
) -> list[DeadlineAlert]:
    import importlib.util

    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    ref = (
        DeadlineReference.DAGRUN_LOGICAL_DATE
        if reference == "logical"
        else DeadlineReference.DAGRUN_QUEUED_AT
    )
    when = "UTC" if ":" in str(settings.deadline) else "after it was queued"
    what = f"not finished by its deadline ({settings.deadline} {when})"
    title = "[batchscore] WARNING: {{ dag_run.dag_id }} run {{ dag_run.dag_run_id }}: " + what
    body = (
        f"WARNING: batchscore run {{{{ dag_run.dag_run_id }}}} is {what}.\n\n"
        "Where:\n  DAG: {{ dag_run.dag_id }}\n  DAG run: {{ dag_run.dag_run_id }}\n"
        "  Logical date: {{ dag_run.logical_date }}\n  State now: {{ dag_run.state }}\n"
        "  Deadline: {{ deadline.deadline_time }}\n\n"
        "What to do: open the run in Airflow; a task still queued needs a worker, a task still "
        "running may be stuck (its log says where). Scores for this run key are not published "
        "until it finishes.\n"
    )
    callbacks = []
    if settings.smtp is not None:
        html = "<html><body><pre>" + body + "</pre></body></html>"
        callbacks.append(
            ("smtp", AsyncCallback(SMTP_NOTIFIER, _smtp_kwargs(settings, title, html)))
        )
    if settings.slack is not None:
        kwargs = {"slack_webhook_conn_id": settings.slack.conn_id, "text": body}
        callbacks.append(("slack", AsyncCallback(SLACK_NOTIFIER, kwargs)))
    if settings.apprise is not None and importlib.util.find_spec("airflow.providers.apprise"):
        kwargs = {"body": body, "title": title, "apprise_conn_id": settings.apprise.conn_id}
        callbacks.append(("apprise", AsyncCallback(APPRISE_NOTIFIER, kwargs)))
    return [
        DeadlineAlert(reference=ref, interval=interval, callback=cb, name=f"batchscore-{name}")
        for name, cb in callbacks
    ]


def _settings(overrides: Mapping[str, Any]) -> Settings | None:
    """The run's config; without the form's values if those are what broke the run."""
    from batchscore_support import params_path

    from pipelines.config import load_config

    for attempt in (dict(overrides), {}):
        try:
            return load_config(params_path(), overrides=attempt)
        except Exception as exc:
            log.warning("batchscore: alert settings unreadable (%s): %s", attempt or "as is", exc)
    return None


def _pull(ti: Any, task_id: str | None, key: str = "return_value", map_index: int = -1) -> Any:
    """An XCom of this run, or None (never raises: the alert goes with what it has)."""
    if ti is None or not task_id:
        return None
    try:
        value = ti.xcom_pull(task_ids=task_id, key=key, map_indexes=map_index)
    except Exception:
        log.warning("batchscore: could not read XCom %s of %s", key, task_id, exc_info=True)
        return None
    return value if isinstance(value, dict) else None


def _task_name(ti: Any) -> str | None:
    if ti is None:
        return None
    index = getattr(ti, "map_index", -1)
    return ti.task_id + (f"[{index}]" if index not in (-1, None) else "")


def _dag_id(context: Mapping[str, Any]) -> str:
    dag = context.get("dag")
    return (
        getattr(dag, "dag_id", None) or getattr(context.get("ti"), "dag_id", None) or "batchscore"
    )


def _run_id(context: Mapping[str, Any]) -> str:
    return str(getattr(context.get("dag_run"), "run_id", None) or context.get("run_id") or "?")


def _run_key(overrides: Mapping[str, Any], context: Mapping[str, Any]) -> str | None:
    """The run key `resolve` settled on, else what it would have settled on."""
    from batchscore_support import resolve_run_key

    if overrides.get("run.key"):
        value = overrides["run.key"]
        return json.loads(value) if isinstance(value, str) and value.startswith('"') else value
    try:
        return resolve_run_key(context.get("params") or {}, context)
    except Exception:
        return None


def _run_url(context: Mapping[str, Any]) -> str | None:
    """The run's page in the Airflow UI (api.base_url)."""
    from urllib.parse import quote

    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback=None)
    if not base:
        return None
    return f"{base.rstrip('/')}/dags/{_dag_id(context)}/runs/{quote(_run_id(context), safe='')}"
