"""`alerts.*` in params.yaml: who is told when a run needs a person, and through which channel.

Pure pydantic (no other batchscore import) so `pipelines.config` can nest it without a cycle.
Secrets live in Airflow connections (the SMTP password, the Slack webhook token), never here: a
channel names its connection id and the recipients, nothing else.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Event = Literal["failure", "drift", "performance", "quarantine"]
EVENTS: tuple[Event, ...] = ("failure", "drift", "performance", "quarantine")
# "06:00" (UTC time of day) or a duration: "90m", "2h", "1h30m", "45s".
TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SmtpChannel(_Section):
    """E-mail through Airflow's SmtpNotifier; host, port, login, password: the connection's."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    conn_id: str = Field("smtp_default", min_length=1, description="Airflow SMTP connection id")
    to: list[str] = Field(min_length=1, description="recipients")
    from_: str | None = Field(
        None, alias="from", description="sender; null = the connection's extra `from_email`"
    )

    @field_validator("to")
    @classmethod
    def _addresses(cls, to: list[str]) -> list[str]:
        bad = [a for a in to if "@" not in a or any(c.isspace() for c in a)]
        if bad:
            raise ValueError(f"not an e-mail address: {', '.join(map(repr, bad))}")
        return to


class SlackChannel(_Section):
    """A Slack incoming webhook through SlackWebhookNotifier; the token is the connection's."""

    conn_id: str = Field(
        "slack_webhook_default", min_length=1, description="Airflow Slack webhook connection id"
    )


class AppriseChannel(_Section):
    """Any Apprise target (needs apache-airflow-providers-apprise installed)."""

    conn_id: str = Field("apprise_default", min_length=1, description="Airflow Apprise connection")


class AlertsSettings(_Section):
    """Which runs alert (`on`), at what quarantine share, by when, and through which channels."""

    enabled: bool = False
    smtp: SmtpChannel | None = None
    slack: SlackChannel | None = None
    apprise: AppriseChannel | None = None
    on: list[Event] = Field(
        default_factory=lambda: list(EVENTS), description="the reasons that send an alert"
    )
    quarantine_warn_fraction: float = Field(
        0.01,
        ge=0,
        le=1,
        description="quarantined share that warns; keep it below "
        "validation.max_quarantine_fraction, which fails the run",
    )
    deadline: str | None = Field(
        None,
        description='a scheduled run not finished by this alerts: "06:00" (UTC, on the day of '
        'its logical date) or a duration after it is queued ("2h", "90m")',
    )

    @field_validator("deadline")
    @classmethod
    def _deadline_format(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        duration = DURATION.match(value)
        if not (TIME_OF_DAY.match(value) or (value and duration and any(duration.groups()))):
            raise ValueError(
                f'deadline {value!r} is neither a UTC time of day ("06:00") nor a duration '
                '("2h", "90m", "1h30m")'
            )
        if duration and not any(int(g or 0) for g in duration.groups()):
            raise ValueError(f"deadline {value!r} is a zero duration")
        return value

    @model_validator(mode="after")
    def _a_channel_when_enabled(self) -> AlertsSettings:
        if self.enabled and not (self.smtp or self.slack or self.apprise):
            raise ValueError(
                "alerts are enabled but no channel is set: add alerts.smtp (to: [...]), "
                "alerts.slack or alerts.apprise, or set alerts.enabled: false"
            )
        return self

    @property
    def channels(self) -> list[str]:
        """The configured channels, in sending order."""
        return [name for name in ("smtp", "slack", "apprise") if getattr(self, name) is not None]
