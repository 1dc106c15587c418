"""Demo-like draws for the drift tests, with fixed category shares.

`pipelines.data.demo.make_frame` draws each categorical's shares afresh per seed (a Dirichlet),
so two of its draws differ in their category mix by design; "drawn like the training data" here
means the same numeric generator and one fixed share vector per categorical.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from pipelines.data.demo import CATEGORIES, LABEL_COLUMN, NUMERIC, make_frame
from pipelines.model.build import build_pipeline

FEATURES = [*NUMERIC, *CATEGORIES]
SHARES = {
    col: np.random.default_rng(99 + i).dirichlet(np.ones(len(v)) * 4)
    for i, (col, v) in enumerate(CATEGORIES.items())
}
SHARES["region"] = np.full(len(CATEGORIES["region"]), 1 / len(CATEGORIES["region"]))  # as demo


def draw(rows: int, seed: int, shares: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """`rows` demo rows (with label) whose categories follow SHARES (or `shares` per column)."""
    frame = make_frame(rows, seed)
    rng = np.random.default_rng(seed + 1_000_003)
    for col, values in CATEGORIES.items():
        p = (shares or {}).get(col, SHARES[col])
        frame[col] = rng.choice(np.array(values, dtype=object), rows, p=p)
    return frame


def fit(frame: pd.DataFrame) -> Pipeline:
    """The demo's logistic-regression pipeline fitted on `frame` (fast to score 300 times)."""
    model = build_pipeline(NUMERIC, list(CATEGORIES), "logreg", 40, 0)
    return model.fit(frame[FEATURES], frame[LABEL_COLUMN])
