"""Which reasons hold for a finished run, and how bad each is."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from pipelines.alerts.decide import (
    Failure,
    deadline_interval,
    failure_reasons,
    highest,
    published_reasons,
)
from pipelines.alerts.settings import AlertsSettings
from pipelines.errors import ConfigError

ON = AlertsSettings(enabled=True, slack={})  # type: ignore[arg-type]


def summary(**extra: Any) -> dict[str, Any]:
    counts = {"rows_in": 10_000, "rows_scored": 10_000, "rows_quarantined": 0}
    return {"newly_published": True, "run_key": "2026-11-23", "counts": counts, **extra}


def quarantined(rows: int, **extra: Any) -> dict[str, Any]:
    counts = {"rows_in": 10_000, "rows_scored": 10_000 - rows, "rows_quarantined": rows}
    return summary(counts=counts, **extra)


def test_a_clean_run_has_no_reason_and_absent_monitoring_is_not_a_flag() -> None:
    assert published_reasons(summary(), ON, 0.05) == []
    assert published_reasons(summary(drift_status="ok", performance_status=None), ON, 0.05) == []


def test_quarantine_warns_at_the_warning_level_not_below() -> None:
    assert published_reasons(quarantined(99), ON, 0.05) == []  # 0.99% < 1%
    (reason,) = published_reasons(quarantined(100), ON, 0.05)  # exactly 1%: warns
    assert (reason.event, reason.severity) == ("quarantine", "warning")
    assert "100 of 10,000 rows quarantined (1.00%)" in reason.what
    assert "quarantine_warn_fraction=0.01" in reason.what
    assert "max_quarantine_fraction=0.05" in reason.what
    assert reason.short == "1.00% of rows quarantined"


@pytest.mark.parametrize(
    ("status", "severity"),
    [
        ("warn", "warning"),
        ("fail", "critical"),
        ("FAILED", "critical"),
        ("odd-new-value", "warning"),
    ],
)
def test_monitoring_status_maps_to_a_severity(status: str, severity: str) -> None:
    (drift,) = published_reasons(summary(drift_status=status), ON, 0.05)
    assert (drift.event, drift.severity) == ("drift", severity)
    assert f"drift_status={status}" in drift.what
    (perf,) = published_reasons(summary(performance_status=status), ON, 0.05)
    assert (perf.event, perf.severity) == ("performance", severity)


def test_several_reasons_are_all_listed_with_the_highest_severity() -> None:
    reasons = published_reasons(
        quarantined(300, drift_status="warn", performance_status="fail"), ON, 0.05
    )
    assert [r.event for r in reasons] == ["drift", "performance", "quarantine"]
    assert highest(reasons) == "critical"
    assert highest(reasons[:1]) == "warning"


def test_only_the_reasons_in_alerts_on_count() -> None:
    only_failure = ON.model_copy(update={"on": ["failure"]})
    assert published_reasons(quarantined(300, drift_status="fail"), only_failure, 0.05) == []
    assert failure_reasons(Failure(task="plan"), ON.model_copy(update={"on": ["drift"]})) == []


def test_a_rerun_that_published_nothing_new_does_not_alert_again() -> None:
    again = quarantined(300, drift_status="fail", newly_published=False, status="already_published")
    assert published_reasons(again, ON, 0.05) == []


def test_a_failure_is_critical_and_carries_the_errors_fix() -> None:
    failure = Failure(
        task="publish",
        error="QualityGateError",
        message="2,000 of 5,000 rows quarantined (40.00%), above 5%",
        fix="fix the export. Report: s3://b/runs/x/quality.html",
    )
    (reason,) = failure_reasons(failure, ON)
    assert (reason.event, reason.severity) == ("failure", "critical")
    assert reason.what == (
        "the run failed in task publish: QualityGateError: 2,000 of 5,000 rows quarantined "
        "(40.00%), above 5%"
    )
    assert reason.fix == failure.fix and reason.short == "failed in publish (QualityGateError)"
    (bare,) = failure_reasons(Failure(), ON)
    assert bare.what == "the run failed: see the task log" and "trigger the run key" in bare.fix


@pytest.mark.parametrize(
    ("deadline", "cron", "expected"),
    [
        ("06:00", "0 2 * * *", ("logical", dt.timedelta(hours=4))),
        ("01:30", "0 2 * * *", ("logical", dt.timedelta(hours=23, minutes=30))),
        ("02:00", "0 2 * * *", ("logical", dt.timedelta(days=1))),
        ("2h", "*/5 * * * *", ("queued", dt.timedelta(hours=2))),
        ("1h30m", "0 2 * * *", ("queued", dt.timedelta(minutes=90))),
        ("45s", "0 2 * * *", ("queued", dt.timedelta(seconds=45))),
    ],
)
def test_deadline_interval(deadline: str, cron: str, expected: tuple) -> None:
    assert deadline_interval(deadline, cron) == expected


def test_a_time_of_day_deadline_needs_a_fixed_daily_time() -> None:
    with pytest.raises(ConfigError) as info:
        deadline_interval("06:00", "*/15 * * * *")
    assert "does not run at one fixed time each day" in str(info.value)
    assert 'give a duration after the run is queued instead, e.g. "4h"' in str(info.value)
