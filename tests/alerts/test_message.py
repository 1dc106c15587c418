"""One message per run: what happened, where, what to do, and the report's link."""

from __future__ import annotations

from pipelines.alerts.decide import Failure, Reason, failure_reasons
from pipelines.alerts.message import RunPlace, build_alert, model_label, report_in
from pipelines.alerts.settings import AlertsSettings

ON = AlertsSettings(enabled=True, slack={})  # type: ignore[arg-type]
PLACE = RunPlace(
    dag_id="batchscore",
    dag_run_id="manual__2026-11-23T02:00:00+00:00",
    run_key="2026-11-23",
    task="publish",
    model="churn v3 (sha256 1a2b3c4d5e6f)",
    report_url="s3://bucket/runs/churn/2026-11-23/_failed/a1/quality.html",
    run_url="http://airflow:8080/dags/batchscore/runs/manual__2026-11-23T02%3A00%3A00%2B00%3A00",
)
WARN = Reason("drift", "warning", "drift warn", "drift monitoring flagged <age> & more", "look")
QUARANTINE = Reason("quarantine", "warning", "2.00% of rows quarantined", "200 rows", "fix it")


def test_no_reason_no_message() -> None:
    assert build_alert([], PLACE) is None


def test_a_failure_says_what_where_what_to_do_and_links_the_report() -> None:
    failure = Failure("publish", "QualityGateError", "40% rows quarantined", "fix the export")
    alert = build_alert(failure_reasons(failure, ON), PLACE)
    assert alert is not None
    assert alert.severity == "critical" and alert.events == ("failure",)
    assert alert.title == (
        "[batchscore] CRITICAL: batchscore run 2026-11-23: failed in publish (QualityGateError)"
    )
    text = alert.body_text
    assert "the run failed in task publish: QualityGateError: 40% rows quarantined" in text
    for line in (
        "  DAG: batchscore",
        f"  DAG run: {PLACE.dag_run_id}",
        "  Task: publish",
        "  Run key: 2026-11-23",
        "  Model: churn v3 (sha256 1a2b3c4d5e6f)",
        "  - fix the export",
        f"Report: {PLACE.report_url}",
        f"Airflow: {PLACE.run_url}",
    ):
        assert line in text.splitlines(), line
    assert f'<a href="{PLACE.report_url}">' in alert.body_html
    assert (alert.run_key, alert.dag_run_id, alert.report_url) == (
        "2026-11-23",
        PLACE.dag_run_id,
        PLACE.report_url,
    )


def test_several_reasons_make_one_message_at_the_highest_severity_critical_first() -> None:
    critical = Reason("performance", "critical", "performance fail", "AUC fell", "roll back")
    alert = build_alert([WARN, QUARANTINE, critical], PLACE)
    assert alert is not None and alert.severity == "critical"
    assert alert.events == ("performance", "drift", "quarantine")
    assert alert.title.endswith(": performance fail; drift warn; 2.00% of rows quarantined")
    happened = [line for line in alert.body_text.splitlines() if line.startswith("  [")]
    assert happened == [
        "  [critical] AUC fell",
        "  [warning] drift monitoring flagged <age> & more",
        "  [warning] 200 rows",
    ]


def test_html_is_escaped_and_a_missing_report_is_said() -> None:
    place = RunPlace(dag_id="batchscore", dag_run_id="r1", run_key=None)
    alert = build_alert([WARN], place)
    assert alert is not None
    assert "&lt;age&gt; &amp; more" in alert.body_html and "<age>" not in alert.body_html
    assert "Report: none was written" in alert.body_text
    assert alert.title == "[batchscore] WARNING: batchscore run r1: drift warn"
    assert alert.as_dict()["events"] == ["drift"]
    assert set(alert.as_dict()) == {
        "severity", "title", "body_text", "body_html", "report_url", "run_key", "dag_run_id",
        "events",
    }  # fmt: skip


def test_report_in_an_errors_fix() -> None:
    fix = "lower the share. Report: s3://b/k/quality.html (local copy: /tmp/r/quality.html)"
    assert report_in(fix) == "s3://b/k/quality.html"
    assert report_in("Report: /tmp/x/quality.html.") == "/tmp/x/quality.html"
    assert report_in("no report here") is None and report_in(None) is None


def test_model_label() -> None:
    assert model_label({"name": "churn", "version": "3", "sha256": "ab" * 32}) == (
        "churn v3 (sha256 abababababab)"
    )
    assert model_label({"name": "churn", "version": "v2"}) == "churn v2"
    assert model_label({"name": "model", "version": "fe5a87", "sha256": "fe5a87" + "0" * 58}) == (
        "model fe5a87"
    )
    assert model_label(None) is None and model_label({}) is None
