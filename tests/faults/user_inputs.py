"""A user's own model and data, made by the tests rather than taken from the demo, and the CLI run
that scores them: shared by test_trust.py and test_faults_local.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import skops.io as sio
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipelines.cli import main
from tests.paths import ROOT


def their_data(n: int, seed: int = 0, ids: Any = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "ref": ids if ids is not None else np.arange(1, n + 1),
            "basket": rng.gamma(2, 30, n),
            "items": rng.integers(1, 20, n).astype("float64"),
            "country": rng.choice(["de", "fr", "it"], n),
        }
    )


def their_model(tmp: Path, labels: np.ndarray | None = None, name: str = "theirs") -> tuple:
    """A scaler + one-hot + LogisticRegression saved with skops, with no model card."""
    data = their_data(600, seed=1)
    y = labels if labels is not None else np.where(data["basket"] > 60, 1, 0)
    model = make_pipeline(
        make_column_transformer(
            (StandardScaler(), ["basket", "items"]),
            (OneHotEncoder(handle_unknown="ignore"), ["country"]),
        ),
        LogisticRegression(max_iter=500),
    ).fit(data.drop(columns="ref"), y)
    path = tmp / f"{name}.skops"
    sio.dump(model, path)
    return model, path, hashlib.sha256(path.read_bytes()).hexdigest()


def their_suite(tmp: Path, id_column: str = "ref") -> Path:
    checks = [
        ("expect_table_row_count_to_be_between", {"min_value": 1}),
        ("expect_column_values_to_not_be_null", {"column": id_column}),
        ("expect_column_values_to_be_unique", {"column": id_column}),
    ]
    path = tmp / "suite.json"
    path.write_text(
        json.dumps(
            {"name": "theirs", "expectations": [{"type": t, "kwargs": k} for t, k in checks]}
        )
    )
    return path


def score_cli(tmp: Path, data: Path, model: Path, sha: str, *extra: str, key: str = "r1") -> int:
    return main(
        [
            "score",
            "--params", str(ROOT / "params.yaml"),
            "--input", str(data),
            "--model", str(model),
            "--model-sha256", sha,
            "--output", f"file://{tmp / 'out'}",
            "--run-key", key,
            "--set", "data.id_column=ref",
            "--set", f"validation.input_suite={their_suite(tmp)}",
            "--set", "score.progress=off",
            *extra,
        ]
    )  # fmt: skip


def published(tmp: Path, kind: str = "scores", key: str = "r1") -> pd.DataFrame:
    run = tmp / "out" / "theirs" / key
    manifest = json.loads((run / "manifest.json").read_text())
    files = [tmp / "out" / p["key"] for p in manifest["parts"] if p["kind"] == kind]
    return pa.concat_tables(pq.read_table(f) for f in files).to_pandas() if files else None


def nothing_published(tmp: Path) -> bool:
    return not list((tmp / "out").rglob("manifest.json"))
