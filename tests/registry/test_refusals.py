"""What the registry refuses, each with an error that says what, where and what to do."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import skops.io
from sklearn.ensemble import HistGradientBoostingClassifier

from pipelines.errors import BatchscoreError, ConfigError
from pipelines.model.artifact import DEFAULT_TRUSTED_TYPES
from pipelines.registry.aliases import promote, rollback
from pipelines.registry.errors import RegistryError, RegistryUnavailableError, UnsafeArtifactError
from pipelines.registry.pin import resolve
from pipelines.registry.settings import RegistrySettings
from pipelines.registry.versions import register
from tests.mlflow_fixtures import RegistryUnderTest
from tests.registry.models import tiny_skops
from tests.s3_fixtures import free_port


def test_a_pickle_is_refused_by_name_and_by_content(
    sqlite_registry: RegistryUnderTest, tmp_path: Path
) -> None:
    s, root = sqlite_registry.settings, sqlite_registry.root
    for file in ("model.pkl", "disguised.skops"):
        path = tmp_path / file
        path.write_bytes(pickle.dumps({"not": "a model"}))
        with pytest.raises(UnsafeArtifactError, match="pickle") as info:
            register(path, "churn", s, root)
        assert "skops.io.dump" in str(info.value)
    assert not (root / "mlartifacts").exists()  # refused before anything was uploaded


def test_untrusted_skops_types_are_refused_unless_trusted(
    sqlite_registry: RegistryUnderTest, tmp_path: Path
) -> None:
    s, root = sqlite_registry.settings, sqlite_registry.root
    rng = np.random.default_rng(0)
    model = HistGradientBoostingClassifier(max_iter=3).fit(rng.random((60, 2)), np.arange(60) % 2)
    path = tmp_path / "hgb.skops"
    skops.io.dump(model, path)
    with pytest.raises(UnsafeArtifactError, match="TreePredictor") as info:
        register(path, "hgb", s, root)
    assert "trusted_types" in str(info.value)
    assert register(path, "hgb", s, root, trusted_types=DEFAULT_TRUSTED_TYPES).version == 1


@pytest.mark.parametrize("alias", ["v1", "V12", "latest"])
def test_reserved_alias_names_are_refused(
    sqlite_registry: RegistryUnderTest, tmp_path: Path, alias: str
) -> None:
    with pytest.raises(ConfigError, match="reserved"):
        promote("churn", 1, sqlite_registry.settings, sqlite_registry.root, alias=alias)


def test_rollback_needs_a_previous_holder_and_unknowns_list_what_exists(
    sqlite_registry: RegistryUnderTest, tmp_path: Path
) -> None:
    s, root = sqlite_registry.settings, sqlite_registry.root
    register(tiny_skops(tmp_path, seed=1), "churn", s, root)
    promote("churn", 1, s, root)
    with pytest.raises(RegistryError, match="no previous holder") as info:
        rollback("churn", s, root)
    assert "batchscore model promote churn VERSION" in str(info.value)
    with pytest.raises(RegistryError, match=r"no alias 'nope' \(aliases: champion \(v1\)\)"):
        resolve("models:/churn@nope", s, root)
    with pytest.raises(RegistryError, match=r"no model named 'chrun'.*known: churn"):
        resolve("models:/chrun@champion", s, root)
    with pytest.raises(RegistryError, match=r"no version 7 \(versions: 1\)"):
        promote("churn", 7, s, root)
    with pytest.raises(RegistryError, match="no alias 'challenger'"):
        rollback("churn", s, root, alias="challenger")


def test_a_server_that_does_not_answer_names_its_uri_and_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    uri = f"http://user:hunter2@127.0.0.1:{free_port()}"
    dead = RegistrySettings(uri=uri, http_max_retries=0, http_timeout_s=2)
    with pytest.raises(RegistryUnavailableError) as info:
        resolve("models:/churn@champion", dead, tmp_path)
    text = str(info.value)
    assert "127.0.0.1" in text and "MLFLOW_TRACKING_URI" in text and "--registry-uri" in text
    assert "hunter2" not in text and "user:***@" in text
    assert isinstance(info.value, BatchscoreError) and info.value.retryable
