"""Scoring a registry model through the real pipeline: the alias is read once, at plan time, and
every shard loads that version; promote, score, promote, score, roll back, score records v1, v2,
v1 with no file edited; a tampered artifact is refused before anything is deserialized."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.config import Settings, load_config
from pipelines.errors import ModelIntegrityError
from pipelines.registry.aliases import promote, rollback
from pipelines.registry.versions import register
from pipelines.run.finalize import finalize_run
from pipelines.run.pipeline import run_pipeline
from pipelines.run.plan import plan_run
from pipelines.run.shard import score_shard
from tests.cli.tiny import BATCHSCORE
from tests.mlflow_fixtures import RegistryUnderTest
from tests.registry.models import flip_byte, tiny_skops


@pytest.fixture(params=["sqlite", "server"])
def registry(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BATCHSCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # no params.yaml here: built-in defaults and the overrides
    return request.getfixturevalue(f"{request.param}_registry")


@pytest.fixture
def project(tmp_path: Path) -> tuple[str, list[Path], Path]:
    """Two registered-to-be versions and a two-shard input, in a folder of their own."""
    name = f"churn-{uuid.uuid4().hex[:8]}"
    versions = []
    for seed in (1, 2):
        folder = tmp_path / f"v{seed}"
        folder.mkdir()
        versions.append(tiny_skops(folder, seed=seed, baseline=False))
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"customer_id": np.arange(3000), "age": rng.normal(50, 10, 3000),
                          "bmi": rng.normal(25, 4, 3000)})  # fmt: skip
    data = tmp_path / "input.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), data, row_group_size=1500)
    return name, versions, data


def _cfg(reg: RegistryUnderTest, name: str, data: Path, key: str, **more: str) -> Settings:
    overrides = {"model.uri": f"models:/{name}@champion", "registry.uri": reg.uri,
                 "data.path": str(data), "output.uri": f"file://{reg.root / 'out'}",
                 "run.key": key, "score.shard_rows": "1500", "score.progress": "off",
                 **more}  # fmt: skip
    return load_config(None, overrides, env={}, relative_to=reg.root)


def test_promote_score_promote_score_rollback_score(registry: RegistryUnderTest, project) -> None:
    name, (v1, v2), data = project
    s, root = registry.settings, registry.root
    register(v1, name, s, root), register(v2, name, s, root)
    promote(name, 1, s, root, reason="first")
    first = run_pipeline(_cfg(registry, name, data, "r1"))
    promote(name, 2, s, root, reason="better")
    second = run_pipeline(_cfg(registry, name, data, "r2"))
    rollback(name, s, root, reason="v2 scores drifted")
    third = run_pipeline(_cfg(registry, name, data, "r3"))
    assert [m.model.version for m in (first, second, third)] == ["1", "2", "1"]
    assert first.model.sha256 == third.model.sha256 != second.model.sha256
    for manifest in (first, second, third):
        reg = manifest.model.registry
        assert reg["name"] == name and reg["alias"] == "champion"
        assert reg["source_uri"] == f"models:/{name}@champion" and reg["registry_uri"]
        assert manifest.model.name == name and manifest.shards == 2
    assert first.content_sha256 != second.content_sha256  # other model, other scores


def test_an_alias_moved_between_plan_and_shards_changes_nothing(
    registry: RegistryUnderTest, project
) -> None:
    name, (v1, v2), data = project
    s, root = registry.settings, registry.root
    register(v1, name, s, root), register(v2, name, s, root)
    promote(name, 1, s, root)
    cfg = _cfg(registry, name, data, "moved")
    plan = plan_run(cfg)
    promote(name, 2, s, root, reason="moved while the run was going")
    results = [score_shard(cfg, plan, i) for i in range(len(plan.shards))]
    manifest = finalize_run(cfg, plan, results)
    assert manifest.model.version == "1"
    by_number = {"model.uri": f"models:/{name}/1", "output.uri": f"file://{registry.root / 'ref'}"}
    reference = run_pipeline(_cfg(registry, name, data, "moved", **by_number))
    assert manifest.content_sha256 == reference.content_sha256


def test_a_tampered_registry_artifact_is_refused_before_loading(
    sqlite_registry: RegistryUnderTest, project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHSCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    name, (v1, _), data = project
    s, root = sqlite_registry.settings, sqlite_registry.root
    info = register(v1, name, s, root)
    promote(name, 1, s, root)
    (stored,) = (root / "mlartifacts" / str(info.run_id)).rglob("model.skops")
    stored.write_bytes(flip_byte(stored.read_bytes()))
    import skops.io

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("deserialized a tampered artifact")

    monkeypatch.setattr(skops.io, "load", never)
    with pytest.raises(ModelIntegrityError, match="sha256"):
        run_pipeline(_cfg(sqlite_registry, name, data, "tampered"))
    assert not list((root / "out").rglob("manifest.json"))


def test_the_cli_scores_a_models_uri(
    sqlite_registry: RegistryUnderTest, project, tmp_path: Path
) -> None:
    name, (v1, _), data = project
    s, root = sqlite_registry.settings, sqlite_registry.root
    register(v1, name, s, root)
    promote(name, 1, s, root)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHSCORE", "MLFLOW_"))}
    env |= {"MLFLOW_TRACKING_URI": sqlite_registry.uri, "BATCHSCORE_CACHE": str(tmp_path / "c")}
    done = subprocess.run(
        [BATCHSCORE, "score", "--model", f"models:/{name}@champion", "--input", str(data),
         "--run-key", "cli", "--output", f"file://{tmp_path / 'cli-out'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "published to" in done.stdout
    (manifest,) = (tmp_path / "cli-out").glob(f"{name}/cli/manifest.json")
    assert '"version": "1"' in manifest.read_text()
