"""`alerts.*` in params.yaml: channels by connection id, never secrets; bad values are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from pipelines.alerts.settings import AlertsSettings
from pipelines.config import load_config
from pipelines.errors import ConfigError


def test_defaults_are_off_with_every_reason_and_a_warning_level_below_the_fail_threshold() -> None:
    settings = AlertsSettings()
    assert settings.enabled is False and settings.channels == []
    assert settings.on == ["failure", "drift", "performance", "quarantine"]
    assert settings.quarantine_warn_fraction == 0.01 and settings.deadline is None


def test_channels_default_to_the_providers_connection_ids() -> None:
    settings = AlertsSettings.model_validate(
        {
            "enabled": True,
            "smtp": {"to": ["ops@example.com"], "from": "bs@example.com"},
            "slack": {},
        }
    )
    assert settings.smtp is not None and settings.slack is not None
    assert (settings.smtp.conn_id, settings.smtp.from_) == ("smtp_default", "bs@example.com")
    assert settings.slack.conn_id == "slack_webhook_default"
    assert settings.channels == ["smtp", "slack"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"enabled": True}, "no channel is set"),
        ({"smtp": {"to": []}}, "at least 1 item"),
        ({"smtp": {"to": ["not an address"]}}, "not an e-mail address: 'not an address'"),
        ({"smtp": {"to": ["a@b.c"], "password": "x"}}, "Extra inputs are not permitted"),
        ({"on": ["failure", "sunshine"]}, "'failure', 'drift', 'performance' or 'quarantine'"),
        ({"quarantine_warn_fraction": 1.5}, "less than or equal to 1"),
        ({"deadline": "25:00"}, "neither a UTC time of day"),
        ({"deadline": "soon"}, "neither a UTC time of day"),
        ({"deadline": "0m"}, "zero duration"),
    ],
)
def test_bad_values_are_refused_saying_what_is_wrong(values: dict, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        AlertsSettings.model_validate(values)
    assert message in str(info.value)


def test_frozen() -> None:
    with pytest.raises(ValidationError):
        AlertsSettings().enabled = True  # type: ignore[misc]


def test_params_yaml_section_is_read_by_the_config_and_names_the_bad_key(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    alerts = {"enabled": True, "slack": {"conn_id": "ops_webhook"}, "deadline": "06:00"}
    path.write_text(yaml.safe_dump({"alerts": alerts}))
    cfg = load_config(path, env={})
    assert cfg.alerts.slack is not None and cfg.alerts.slack.conn_id == "ops_webhook"
    assert cfg.alerts.deadline == "06:00"
    path.write_text(yaml.safe_dump({"alerts": {**alerts, "deadline": "tomorrow"}}))
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert "alerts.deadline" in str(info.value) and "tomorrow" in str(info.value)
