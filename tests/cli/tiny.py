"""A newcomer's own model and data, made in a folder of their own: a tiny sklearn Pipeline saved
with `save_model`, and Parquet inputs with an int64 `patient_id` beyond 2**53 (exact IDs or bust).
The CLI is run as a real process (`batchscore`, from the venv) with that folder as its cwd.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipelines.model.artifact import Feature, save_model

BATCHSCORE = str(Path(sys.executable).parent / "batchscore")
FEATURES = ["age", "bmi"]
FIRST_ID = 2**60


def tiny_model(folder: Path, name: str = "tiny") -> str:
    """Fit and save `model.skops` (and its card) in `folder`; return its sha256."""
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"age": rng.normal(50, 10, 300), "bmi": rng.normal(25, 4, 300)})
    y = (x["age"] + rng.normal(0, 5, 300) > 50).astype("int64")
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    card = save_model(
        model,
        folder / "model.skops",
        name=name,
        features=[Feature(f, "numeric") for f in FEATURES],
        training={"rows": 300},
        metrics={},
        params={},
    )
    return str(card["sha256"])


def tiny_data(path: Path, rows: int, age_mean: float, seed: int) -> list[int]:
    """A Parquet input with `patient_id` (int64, 2**60 + k) and the features; return the IDs."""
    rng = np.random.default_rng(seed)
    ids = [FIRST_ID + 7 * k + seed for k in range(rows)]
    frame = pd.DataFrame(
        {
            "patient_id": np.array(ids, dtype="int64"),
            "age": rng.normal(age_mean, 8, rows),
            "bmi": rng.normal(25, 4, rows),
        }
    )
    frame.to_parquet(path, index=False)
    return ids


def sharded_run(folder: Path, rows: int, shards: int) -> list[str]:
    """The tiny model and a `data.parquet` of `shards` row groups of `rows` in `folder` (one shard
    each); return a `score` command line for them, output under `folder/out`, workers not pinned."""
    sha = tiny_model(folder)
    rng = np.random.default_rng(3)
    n = rows * shards
    frame = pd.DataFrame(
        {
            "patient_id": np.arange(n, dtype="int64") + FIRST_ID,
            "age": rng.normal(50, 8, n),
            "bmi": rng.normal(25, 4, n),
        }
    )
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, folder / "data.parquet", row_group_size=rows)
    return ["score", "--input", "data.parquet", "--model", "model.skops", "--model-sha256", sha,
            "--id-column", "patient_id", "--run-key", "r1", "--output", f"file://{folder}/out",
            "--set", f"score.shard_rows={rows}", "--set", "score.pin_workers=false"]  # fmt: skip


def batchscore(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`batchscore ARGS` run in `cwd`, with no BATCHSCORE_* variables but those in `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BATCHSCORE")}
    return subprocess.run(
        [BATCHSCORE, *args],
        cwd=cwd,
        env={**clean, "BATCHSCORE__SCORE__PROGRESS": "off", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def published_ids(out: Path, model: str, run_key: str, id_column: str = "patient_id") -> list[int]:
    """The IDs in a published run's scores parts, under the input's own ID column name."""
    import json

    manifest = json.loads((out / model / run_key / "manifest.json").read_text())
    files = [out / p["key"] for p in manifest["parts"] if p["kind"] == "scores"]
    table = pa.concat_tables(pq.read_table(f) for f in files)
    assert table.column_names[0] == id_column, table.column_names
    assert table.schema.field(id_column).type == pa.int64()
    return table.column(id_column).to_pylist()
