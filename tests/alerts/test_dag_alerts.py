"""The DAG side of the alerts (dags/batchscore_alerts.py), in-process: the failure record, the
provider notifiers it builds, sending through a real SMTP server with one channel down, and the
Deadline Alerts made from `alerts.deadline`. The DAG in the real Airflow:
tests/e2e/test_alerts_airflow.py."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.airflow_home import use_throwaway_home

use_throwaway_home()  # before anything imports Airflow

import batchscore_alerts as alerts  # noqa: E402

from pipelines.alerts.decide import Reason  # noqa: E402
from pipelines.alerts.message import RunPlace, build_alert  # noqa: E402
from pipelines.alerts.settings import AlertsSettings  # noqa: E402
from pipelines.errors import QualityGateError  # noqa: E402
from tests.airflow_harness import free_port  # noqa: E402

SETTINGS = AlertsSettings.model_validate(
    {"enabled": True, "smtp": {"to": ["oncall@example.com"], "from": "bs@example.com"}, "slack": {}}
)
ALERT = build_alert(
    [Reason("quarantine", "warning", "2.00% of rows quarantined", "60 of 3,000 <rows>", "fix")],
    RunPlace(dag_id="batchscore", dag_run_id="manual__1", run_key="2026-11-23"),
)


def test_failure_record_keeps_the_batchscore_error_behind_fail_fast() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    cause = QualityGateError("40% of rows quarantined", where="publish", fix="Report: s3://b/k")
    try:
        raise AirflowFailException(f"QualityGateError: {cause}") from cause
    except AirflowFailException as exc:
        record = alerts.failure_record(exc)
    assert record == {
        "error": "QualityGateError",
        "message": "40% of rows quarantined (in publish)",
        "fix": "Report: s3://b/k",
    }
    assert alerts.failure_record(ValueError("bad\n  value")) == {
        "error": "ValueError",
        "message": "bad value",
        "fix": None,
    }


def test_notifiers_are_the_providers_with_the_message() -> None:
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    assert ALERT is not None
    (smtp_name, smtp), (slack_name, slack) = alerts.notifiers(ALERT, SETTINGS)
    assert (smtp_name, slack_name) == ("smtp", "slack")
    assert isinstance(smtp, SmtpNotifier) and isinstance(slack, SlackWebhookNotifier)
    assert (smtp.smtp_conn_id, smtp.to, smtp.from_email) == (
        "smtp_default",
        ["oncall@example.com"],
        "bs@example.com",
    )
    assert smtp.subject == ALERT.title and smtp.html_content == ALERT.body_html
    assert slack.slack_webhook_conn_id == "slack_webhook_default"
    assert "60 of 3,000 &lt;rows&gt;" in slack.text  # Slack's own escaping


def test_apprise_without_its_provider_is_skipped_with_a_clear_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    try:
        import airflow.providers.apprise  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("apache-airflow-providers-apprise is installed")
    assert ALERT is not None
    only_apprise = AlertsSettings.model_validate({"enabled": True, "apprise": {}})
    with caplog.at_level(logging.WARNING, logger="batchscore.alerts"):
        assert alerts.notifiers(ALERT, only_apprise) == []
    assert "apache-airflow-providers-apprise is not installed" in caplog.text


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, list[Any]]]:
    from aiosmtpd.controller import Controller

    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            received.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, received
    finally:
        controller.stop()


def test_send_goes_through_every_channel_that_answers_and_logs_the_one_that_does_not(
    smtp_server: tuple[int, list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, received = smtp_server
    smtp = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "extra": {"disable_tls": True, "disable_ssl": True, "retry_limit": 0},
    }
    refused = f"http://127.0.0.1:{free_port()}/services"  # nothing listens there
    slack = {"conn_type": "slackwebhook", "host": refused, "password": "T0/B0/token"}
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(smtp))
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", json.dumps(slack))
    assert ALERT is not None
    with caplog.at_level(logging.INFO, logger="batchscore.alerts"):
        assert alerts.send(ALERT, SETTINGS, {}) == ["smtp"]
    (mail,) = received
    assert mail["Subject"] == ALERT.title and mail["To"] == "oncall@example.com"
    assert "the slack alert could not be sent" in caplog.text
    assert f"batchscore alert (warning) sent via smtp: {ALERT.title}" in caplog.text
    assert alerts.send(None, SETTINGS, {}) == []


def _params(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cron: str, **alert: Any) -> None:
    path = tmp_path / "params.yaml"
    base = {"enabled": True, "smtp": {"to": ["oncall@example.com"]}, "slack": {}}
    path.write_text(yaml.safe_dump({"schedule": {"cron": cron}, "alerts": {**base, **alert}}))
    monkeypatch.setenv("BATCHSCORE_PARAMS", str(path))


def test_deadline_alerts_one_per_channel_from_the_time_of_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk import DeadlineReference

    _params(tmp_path, monkeypatch, "0 2 * * *", deadline="06:00")
    smtp, slack = alerts.deadline_alerts()
    for deadline in (smtp, slack):
        assert deadline.reference == DeadlineReference.DAGRUN_LOGICAL_DATE
        assert deadline.interval == dt.timedelta(hours=4)
    assert smtp.callback.path == alerts.SMTP_NOTIFIER
    assert slack.callback.path == alerts.SLACK_NOTIFIER
    assert smtp.callback.kwargs["to"] == ["oncall@example.com"]
    assert "{{ dag_run.dag_run_id }}" in smtp.callback.kwargs["subject"]
    assert "not finished by its deadline (06:00 UTC)" in slack.callback.kwargs["text"]


def test_a_duration_deadline_counts_from_queued_and_a_misfit_sets_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow.sdk import DeadlineReference

    _params(tmp_path, monkeypatch, "*/15 * * * *", deadline="90m")
    smtp, _ = alerts.deadline_alerts()
    assert smtp.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert smtp.interval == dt.timedelta(minutes=90)
    _params(tmp_path, monkeypatch, "*/15 * * * *", deadline="06:00")
    with caplog.at_level(logging.WARNING, logger="batchscore.alerts"):
        assert alerts.deadline_alerts() == []
    assert "does not run at one fixed time each day" in caplog.text
    _params(tmp_path, monkeypatch, "0 2 * * *")  # no deadline: none
    assert alerts.deadline_alerts() == []
