"""A user's own project in miniature: a data set with numeric, categorical and ID columns, a real
sklearn Pipeline fitted on it and saved as an artifact, and `batchscore` run as a subprocess."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipelines.model.artifact import Feature, save_model
from tests.paths import ROOT

BATCHSCORE = ROOT / ".venv" / "bin" / "batchscore"
ROWS = 3_000
NUMERIC = ["age", "balance", "income"]
CATEGORICAL = ["plan", "region"]


def make_frame(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """IDs, two integer/float features, one with missing values, two categories."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 0.5, rows).round(2)
    income[rng.random(rows) < 0.03] = np.nan
    return pd.DataFrame(
        {
            "account_id": np.arange(700_001, 700_001 + rows, dtype="int64"),
            "age": rng.integers(18, 91, rows),
            "balance": rng.normal(1_000, 300, rows).round(2),
            "income": income,
            "plan": rng.choice(["basic", "plus", "premium"], rows).astype(object),
            "region": rng.choice(["north", "south", "east", "west", "central"], rows).astype(
                object
            ),
        }
    )


def fit_model(frame: pd.DataFrame, path: Path) -> str:
    """A preprocessing + logistic regression Pipeline on `frame`, saved with its card."""
    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ]
    )
    label = (frame["age"] + frame["balance"] / 100 > 65).astype(int)
    model = Pipeline([("prep", prep), ("clf", LogisticRegression(max_iter=200))])
    model.fit(frame[NUMERIC + CATEGORICAL], label)
    features = [Feature(n, "numeric") for n in NUMERIC] + [
        Feature(n, "categorical") for n in CATEGORICAL
    ]
    card = save_model(
        model, path, name="churn", features=features, training={}, metrics={}, params={}
    )
    return str(card["sha256"])


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data.parquet, data.csv (the same rows) and models/churn.skops (+ card), made once."""
    root = tmp_path_factory.mktemp("own")
    frame = make_frame()
    frame.to_parquet(root / "data.parquet", index=False)
    frame.to_csv(root / "data.csv", index=False)
    fit_model(frame, root / "models" / "churn.skops")
    return root


def batchscore(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed `batchscore` command, run in `cwd` with no BATCHSCORE* settings inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHSCORE")}
    env["GX_ANALYTICS_ENABLED"] = "false"
    return subprocess.run(
        [str(BATCHSCORE), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
