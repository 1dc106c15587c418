"""Which reasons to tell a person about hold for a finished run, and how bad each one is.

Pure: a run's publish summary (or its failure) and the alert settings in, reasons out. The DAG's
callbacks turn the reasons into one message (`message.build_alert`) and send it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pipelines.alerts.settings import DURATION, TIME_OF_DAY, AlertsSettings, Event
from pipelines.errors import ConfigError

Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
# Monitoring statuses that need nobody (absent or None: the run had no monitoring).
_QUIET = {"", "ok", "pass", "passed", "none", "skipped", "no_baseline", "no_labels", "unknown"}
_CRITICAL = {"fail", "failed", "critical"}


@dataclass(frozen=True)
class Reason:
    """One thing that needs a person: what it is, how bad, what happened, what to do."""

    event: Event
    severity: Severity
    short: str  # a few words for the message's title
    what: str
    fix: str


@dataclass(frozen=True)
class Failure:
    """A failed run, as the failing task recorded it (or as much as Airflow knows without it)."""

    task: str | None = None  # "publish", "score[2]"
    error: str | None = None  # the exception's type, e.g. QualityGateError
    message: str | None = None  # what went wrong, one line
    fix: str | None = None  # what the error says to do


def failure_reasons(failure: Failure, settings: AlertsSettings) -> list[Reason]:
    """A failed run: one critical reason (if `failure` is in `alerts.on`)."""
    if "failure" not in settings.on:
        return []
    where = f" in task {failure.task}" if failure.task else ""
    error = f"{failure.error}: " if failure.error else ""
    what = f"the run failed{where}: {error}{failure.message or 'see the task log'}"
    fix = failure.fix or (
        "read the failed task's log (linked below), fix the cause, then clear the failed task "
        "or trigger the run key again: nothing was published"
    )
    short = "failed" + (f" in {failure.task}" if failure.task else "")
    short += f" ({failure.error})" if failure.error else ""
    return [Reason("failure", "critical", short, what, fix)]


def published_reasons(
    summary: Mapping[str, Any], settings: AlertsSettings, max_quarantine_fraction: float
) -> list[Reason]:
    """A run that finished: its drift and performance flags and its quarantined share.

    Only newly published output alerts: a no-op rerun of a published run key was told about when
    it was published, and a dry run published nothing anyone reads.
    """
    if not summary.get("newly_published"):
        return []
    reasons = [
        _monitoring_reason("drift", summary.get("drift_status"), settings),
        _monitoring_reason("performance", summary.get("performance_status"), settings),
        _quarantine_reason(summary.get("counts") or {}, settings, max_quarantine_fraction),
    ]
    return [r for r in reasons if r is not None]


def highest(reasons: Sequence[Reason]) -> Severity:
    """The severity of a message listing `reasons`: the worst of them."""
    return max((r.severity for r in reasons), key=SEVERITY_RANK.__getitem__, default="info")


def _monitoring_reason(
    event: Literal["drift", "performance"], status: object, settings: AlertsSettings
) -> Reason | None:
    """`drift_status` / `performance_status`: warn -> warning, fail -> critical, none -> quiet.

    A status this code does not know is a warning: better one message too many than a missed one.
    """
    if event not in settings.on or status is None or str(status).lower() in _QUIET:
        return None
    severity: Severity = "critical" if str(status).lower() in _CRITICAL else "warning"
    if event == "drift":
        what = f"drift monitoring flagged the inputs or scores: drift_status={status}"
        fix = (
            "open the report's drift section: check the flagged features against the upstream "
            "data, then retrain or refresh the baseline if the change is real"
        )
    else:
        what = f"performance monitoring flagged the model: performance_status={status}"
        fix = (
            "open the report's performance section; if the drop holds, roll the model alias "
            "back to the previous version or retrain"
        )
    return Reason(event, severity, f"{event} {status}", what, fix)


def _quarantine_reason(
    counts: Mapping[str, Any], settings: AlertsSettings, max_quarantine_fraction: float
) -> Reason | None:
    """A quarantined share at or above the warning level (below it the run is fine; above the
    failing threshold the run failed and `failure_reasons` says so)."""
    rows_in, quarantined = counts.get("rows_in") or 0, counts.get("rows_quarantined") or 0
    if "quarantine" not in settings.on or rows_in <= 0 or quarantined <= 0:
        return None
    share = quarantined / rows_in
    if share < settings.quarantine_warn_fraction:
        return None
    what = (
        f"{quarantined:,} of {rows_in:,} rows quarantined ({share:.2%}): at or above the warning "
        f"level alerts.quarantine_warn_fraction={settings.quarantine_warn_fraction:g}, below "
        f"the failing threshold validation.max_quarantine_fraction={max_quarantine_fraction:g}"
    )
    fix = (
        "the run published; open the report's quarantine section for the failing expectations "
        "and fix the upstream export before the share reaches the failing threshold"
    )
    return Reason("quarantine", "warning", f"{share:.2%} of rows quarantined", what, fix)


def deadline_interval(
    deadline: str, cron: str
) -> tuple[Literal["logical", "queued"], dt.timedelta]:
    """What `alerts.deadline` means for this schedule: (reference, interval).

    "HH:MM" is that UTC time on the day of the run's logical date, so it needs a daily cron whose
    minute and hour are plain numbers: the interval after the logical date is then the same for
    every run. A duration counts from the moment the run is queued (manual runs have no logical
    date). Raises ConfigError when a time of day cannot be placed on the schedule.
    """
    if match := TIME_OF_DAY.match(deadline):
        fields = cron.split()
        if len(fields) != 5 or not all(re.fullmatch(r"\d+", f) for f in fields[:2]):
            raise ConfigError(
                f"alerts.deadline {deadline!r} is a time of day, but schedule.cron {cron!r} does "
                "not run at one fixed time each day",
                where="params.yaml alerts.deadline",
                fix='give a duration after the run is queued instead, e.g. "4h"',
            )
        due = dt.timedelta(hours=int(match[1]), minutes=int(match[2]))
        starts = dt.timedelta(hours=int(fields[1]), minutes=int(fields[0]))
        after = (due - starts) % dt.timedelta(days=1)
        return "logical", after or dt.timedelta(days=1)
    match = DURATION.match(deadline)
    if not match or not any(match.groups()):
        raise ConfigError(
            f"alerts.deadline {deadline!r} is neither a time of day nor a duration",
            where="params.yaml alerts.deadline",
            fix='use "06:00" (UTC) or "2h", "90m", "1h30m"',
        )
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return "queued", dt.timedelta(hours=hours, minutes=minutes, seconds=seconds)
