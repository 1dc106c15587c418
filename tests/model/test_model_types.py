"""The classifiers people bring load without extra trusted types; anything else is refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from pipelines.errors import ModelIntegrityError
from pipelines.model.artifact import load_model

RNG = np.random.default_rng(0)
X = pd.DataFrame(RNG.normal(size=(400, 3)), columns=["a", "b", "c"])  # names: see models.py
Y = (X["a"] + 0.3 * X["b"] > 0).astype(int)


def dump(model, path: Path) -> str:  # type: ignore[no-untyped-def]
    sio.dump(model.fit(X, Y), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "model",
    [
        RandomForestClassifier(n_estimators=5, random_state=0),
        GradientBoostingClassifier(n_estimators=5, random_state=0),
        KNeighborsClassifier(algorithm="kd_tree"),
        KNeighborsClassifier(algorithm="ball_tree"),
        MLPClassifier(max_iter=30, random_state=0),
        MLPClassifier(solver="sgd", max_iter=30, random_state=0),
        CalibratedClassifierCV(LogisticRegression()),
    ],
    ids=["forest", "gbm", "knn-kd", "knn-ball", "mlp-adam", "mlp-sgd", "calibrated"],
)
def test_common_classifiers_load_and_score_the_same(model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "m.skops"
    loaded = load_model(path, pinned_sha256=dump(model, path))
    assert np.array_equal(loaded.estimator.predict_proba(X), model.predict_proba(X))


def test_a_type_off_the_list_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.skops"
    model = make_pipeline(FunctionTransformer(np.random.default_rng), LogisticRegression())
    sio.dump(model, path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ModelIntegrityError, match="not on the trusted list"):
        load_model(path, pinned_sha256=sha)
