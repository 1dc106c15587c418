"""A run published by the real CLI (`batchscore score` on tiny data), copied fresh per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.cli.tiny import batchscore, tiny_data, tiny_model

ROWS = 3_000


@pytest.fixture(scope="session")
def published_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a tiny model, its input and run `r1` published to `out/` by the CLI."""
    folder = tmp_path_factory.mktemp("published")
    sha = tiny_model(folder)
    tiny_data(folder / "data.parquet", ROWS, 50, seed=1)
    done = batchscore(
        folder,
        "score", "--input", "data.parquet", "--model", "model.skops", "--model-sha256", sha,
        "--id-column", "patient_id", "--output", "file://out", "--run-key", "2026-11-23",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture
def published(published_once: Path, tmp_path: Path) -> Path:
    """A private copy of the published folder: tests add labels to it freely."""
    dest = tmp_path / "project"
    shutil.copytree(published_once, dest)
    return dest


def model_of(out: Path, run_key: str = "2026-11-23") -> str:
    """The model name the CLI published the run under (the one folder holding the run)."""
    (manifest,) = out.glob(f"*/{run_key}/manifest.json")
    return manifest.parent.parent.name


def published_scores(out: Path, run_key: str = "2026-11-23") -> pd.DataFrame:
    """The run's published scores (all parts), as the CLI wrote them."""
    import json

    manifest = json.loads((out / model_of(out, run_key) / run_key / "manifest.json").read_text())
    parts = [out / p["key"] for p in manifest["parts"] if p["kind"] == "scores"]
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


def true_labels(scores: pd.DataFrame, seed: int = 7) -> pd.DataFrame:
    """Labels drawn as Bernoulli(score): what a calibrated model's outcomes look like."""
    rng = np.random.default_rng(seed)
    y = (rng.random(len(scores)) < scores["score"].to_numpy()).astype("int64")
    return pd.DataFrame({"patient_id": scores["patient_id"].to_numpy(), "label": y})
