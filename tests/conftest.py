"""Shared fixtures: tiny demo data, a tiny trained model, and configs pointing at them.

Everything is real (real sklearn model saved with skops, real Parquet files) and small, so the
suite runs in parallel (`pytest -n 2`) on a 2-core machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.config import Settings, load_config
from pipelines.data.demo import write_dataset
from tests.paths import ROOT

# fixture modules shared by several test folders (s3_fixtures first: dvc_fixtures uses it)
pytest_plugins = ["tests.s3_fixtures", "tests.dvc_fixtures"]

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _no_stop_carried_over() -> Any:
    """A test that sent this process a SIGTERM leaves the stop recorded (termination.py); the
    next test's run must not find it."""
    yield
    from pipelines import termination

    termination.reset()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small HGB demo model (trained once per session) with its card."""
    from pipelines.model.train import train_model

    d = tmp_path_factory.mktemp("model")
    write_dataset(d / "train.parquet", 4_000, seed=3, row_group_rows=1_000)
    cfg = load_config(
        ROOT / "params.yaml",
        {
            "generate.train_path": str(d / "train.parquet"),
            "model.path": str(d / "model.skops"),
            "train.max_iter": 20,
        },
    )
    train_model(cfg)
    return d


@pytest.fixture(scope="session")
def score_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5,003 unlabelled rows in row groups of 1,000: chunk sizes rarely divide it."""
    d = tmp_path_factory.mktemp("data")
    return write_dataset(d / "score.parquet", 5_003, 11, 1_000, with_label=False, first_id=1)


@pytest.fixture
def make_cfg(tmp_path: Path, model_dir: Path, score_file: Path) -> Callable[..., Settings]:
    """Build a Settings from the project's params.yaml with test paths and any overrides."""

    def make(**overrides: Any) -> Settings:
        base = {
            "data.path": str(score_file),
            "model.path": str(model_dir / "model.skops"),
            "output.uri": f"file://{tmp_path / 'bucket'}",
            "run.key": "test-run",
            "score.chunk_size": 997,
            "score.progress": "off",
            "validation.batch_rows": 2_000,
        }
        base.update({k.replace("__", "."): v for k, v in overrides.items()})
        return load_config(ROOT / "params.yaml", base, env={})

    return make


@pytest.fixture
def params_file(tmp_path: Path, model_dir: Path, score_file: Path) -> Path:
    """A standalone params.yaml for CLI tests (relative paths resolve next to it)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["path"] = str(score_file)
    params["model"]["path"] = str(model_dir / "model.skops")
    params["output"]["uri"] = "file://bucket"
    params["run"]["key"] = "cli-run"
    params["score"]["chunk_size"] = 1_000
    params["score"]["progress"] = "log"
    params["validation"]["batch_rows"] = 2_000
    params["validation"]["input_suite"] = str(ROOT / "validation" / "input_suite.json")
    params["validation"]["output_suite"] = None  # the built-in one
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path
