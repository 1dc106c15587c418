"""Tiny real models for the registry tests: LogisticRegressions saved with skops and a card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from pipelines.model.artifact import Feature, save_model


def tiny_skops(folder: Path, seed: int, *, baseline: bool = True) -> Path:
    """Fit a LogisticRegression on seeded data, save `model.skops` + card (+ baseline) there."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"age": rng.normal(50, 10, 200), "bmi": rng.normal(25, 4, 200)})
    y = (x["age"] + rng.normal(0, 5, 200) > 50).astype("int64")
    model = LogisticRegression(C=0.5 + seed).fit(x, y)
    path = folder / "model.skops"
    save_model(
        model,
        path,
        name="tiny",
        features=[Feature("age", "numeric"), Feature("bmi", "numeric")],
        training={"rows": 200, "sha256": f"{seed:064x}"},
        metrics={},
        params={"seed": seed},
    )
    if baseline:
        (folder / "model.baseline.json").write_text(json.dumps({"seed": seed}) + "\n")
    return path


def flip_byte(data: bytes, at: int = 100) -> bytes:
    """The same bytes with one bit of one byte flipped."""
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]
