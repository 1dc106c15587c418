"""The pure parts: model URIs, redaction, the precedence of registry URIs, where rollback goes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.errors import ConfigError
from pipelines.registry.client import endpoint_for
from pipelines.registry.history import AliasMove, moves_from_tags, previous_holder
from pipelines.registry.pin import ModelPin
from pipelines.registry.settings import RegistrySettings
from pipelines.registry.uri import RegistryRef, parse_model_uri, redact_uri


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("models:/churn@champion", RegistryRef("churn", alias="champion")),
        ("models:/churn/3", RegistryRef("churn", version=3)),
        ("models:/team/churn/12", RegistryRef("team/churn", version=12)),
        ("models/model.skops", Path("models/model.skops")),
        ("file:///abs/m.skops", Path("/abs/m.skops")),
    ],
)
def test_model_uris(uri: str, expected: object) -> None:
    assert parse_model_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("models:/churn/Production", "stages are deprecated"),
        ("models:/churn", "names no version or alias"),
        ("models:/@champion", "no model name"),
        ("models:/churn@v2", "reserved"),
        ("s3://bucket/model.skops", "neither models:/ nor a file path"),
    ],
)
def test_bad_model_uris_say_what_to_write(uri: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_model_uri(uri)


def test_secrets_never_show_in_a_registry_uri() -> None:
    assert (
        redact_uri("postgresql://ml:s3cret@db:5432/mlflow") == "postgresql://ml:***@db:5432/mlflow"
    )
    assert redact_uri("https://tok@mlflow.example.com") == "https://tok:***@mlflow.example.com"
    assert redact_uri("http://h/x?token=abc&a=1") == "http://h/x?token=***&a=1"
    assert redact_uri("http://mlflow:5000") == "http://mlflow:5000"


def test_mlflow_environment_variables_win_as_mlflow_users_expect(tmp_path: Path) -> None:
    default = endpoint_for(RegistrySettings(), tmp_path, {})
    assert default.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert default.artifact_root == tmp_path.resolve() / "mlartifacts"
    configured = endpoint_for(RegistrySettings(uri="http://a:5000"), tmp_path, {})
    assert (configured.tracking_uri, configured.artifact_root) == ("http://a:5000", None)
    env = {"MLFLOW_TRACKING_URI": "http://b:5000", "MLFLOW_REGISTRY_URI": "http://c:5000"}
    both = endpoint_for(RegistrySettings(uri="http://a:5000"), tmp_path, env)
    assert (both.tracking_uri, both.registry_uri) == ("http://b:5000", "http://c:5000")


def _move(seq: int, frm: int | None, to: int, action: str = "promote") -> AliasMove:
    return AliasMove(seq, "2026-12-01T00:00:00Z", "a", "champion", frm, to, None, action)


def test_rollback_walks_back_one_promotion_at_a_time() -> None:
    moves = [_move(1, None, 1), _move(2, 1, 2), _move(3, 2, 3)]
    assert previous_holder(moves, "champion", 3) == 2
    moves.append(_move(4, 3, 2, "rollback"))
    assert previous_holder(moves, "champion", 2) == 1  # not back to 3: no toggling
    moves.append(_move(5, 2, 1, "rollback"))
    assert previous_holder(moves, "champion", 1) is None
    assert previous_holder(moves, "champion", 7) == 1  # moved outside batchscore: way back
    assert previous_holder([_move(1, 4, 5)], "champion", 5) == 4  # set before batchscore
    assert previous_holder(moves, "challenger", None) is None


def test_history_tags_round_trip_and_foreign_tags_are_ignored() -> None:
    move = _move(3, 1, 2)
    key, value = move.tag()
    assert key == "batchscore.alias_move.000003"
    assert moves_from_tags({key: value, "team": "x", "batchscore.alias_move.x": "{"}) == [move]


def test_a_pin_round_trips_through_json_and_refuses_other_json() -> None:
    pin = ModelPin(
        name="churn",
        version=2,
        alias="champion",
        sha256="ab" * 32,
        registry_uri="http://mlflow:5000",
        source_uri="models:/churn@champion",
        file="model.skops",
    )
    assert ModelPin.from_json(pin.to_json()) == pin
    with pytest.raises(ConfigError, match="not a model pin"):
        ModelPin.from_json('{"name": "churn"}')
