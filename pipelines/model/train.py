"""The train stage: fit the demo pipeline on the labelled data and write model + card + baseline.

The baseline (drift monitoring's reference, `<model>.baseline.json` beside it unless
monitoring.baseline names another file) profiles every training row's features and the model's
scores, labels and segments on the held-out split.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from pipelines.config import Settings
from pipelines.errors import InputDataError
from pipelines.model.artifact import save_model
from pipelines.model.build import build_pipeline, feature_kinds
from pipelines.monitoring.baseline import baseline_path_for, write_baseline
from pipelines.monitoring.build import build_baseline
from pipelines.storage.hashing import sha256_file

log = logging.getLogger(__name__)


def train_model(cfg: Settings, data_path: Path | None = None) -> dict[str, Any]:
    """Fit, evaluate on a held-out split, save to `cfg.model.path`; return the model card."""
    path = data_path or cfg.generate.train_path
    if not path.is_file():
        raise InputDataError(
            f"training data {path} not found", fix="run `batchscore generate` first"
        )
    frame = pq.read_table(path).to_pandas()
    label = cfg.train.label_column
    if label not in frame.columns:
        raise InputDataError(f"training data has no label column {label!r}", where=str(path))
    # Not features: the label, the ID, and timestamps (the demo model takes numbers and categories).
    times = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
    drop = [c for c in (label, cfg.data.id_column, *times) if c in frame.columns]
    x, y = frame.drop(columns=drop), frame[label]
    features = feature_kinds(x)
    numeric = [f.name for f in features if f.kind == "numeric"]
    categorical = [f.name for f in features if f.kind == "categorical"]
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=cfg.train.test_fraction, random_state=cfg.train.seed, stratify=y
    )
    model = build_pipeline(
        numeric, categorical, cfg.train.model, cfg.train.max_iter, cfg.train.seed
    )
    log.info("fitting %s on %d rows x %d features", cfg.train.model, len(x_train), x.shape[1])
    # One OpenMP thread: HistGradientBoosting's sums depend on how many threads share them, so a
    # model fitted on another core count would differ in its last bits (and in its sha256).
    with threadpool_limits(limits=1, user_api="openmp"):
        model.fit(x_train, y_train)
    proba = model.predict_proba(x_test)
    metrics = {
        "roc_auc": round(float(roc_auc_score(y_test, proba[:, 1])), 4),
        "accuracy": round(float(accuracy_score(y_test, model.classes_[proba.argmax(1)])), 4),
        "log_loss": round(float(log_loss(y_test, proba)), 4),
        "n_train": len(x_train),
        "n_test": len(x_test),
        "positive_rate": round(float(pd.Series(y).mean()), 4),
    }
    card = save_model(
        model,
        cfg.model.path,
        name=f"churn-{cfg.train.model}",
        features=features,
        training={"path": path.name, "sha256": sha256_file(path), "rows": len(frame)},
        metrics=metrics,
        params=cfg.train.model_dump(),
    )
    log.info("model %s written: %s, metrics %s", card["version"], cfg.model.path, metrics)
    kinds = {f.name: f.kind for f in features}
    _write_baseline(cfg, model, frame, x, kinds, x_test, y_test, proba)
    return card


def _write_baseline(
    cfg: Settings,
    model: Any,
    frame: pd.DataFrame,
    x: pd.DataFrame,
    kinds: dict[str, str],
    x_test: pd.DataFrame,
    y_test: pd.Series,
    proba: Any,
) -> None:
    """The drift baseline: features on all training rows, score/labels/segments held out."""
    positive_class = cfg.model.positive_class
    classes = [str(c) for c in model.classes_]
    index = classes.index(positive_class) if positive_class in classes else 1
    score = proba[:, index]
    predicted = model.classes_[proba.argmax(1)]
    segments = [c for c in cfg.monitoring.segments if c in frame.columns]
    baseline = build_baseline(
        x,
        kinds,
        score=score,
        labels=y_test.to_numpy(),
        positive=predicted == model.classes_[index],
        segments=frame.loc[x_test.index, segments] if segments else None,
        settings=cfg.monitoring,
        positive_label=model.classes_[index],
    )
    path = cfg.monitoring.baseline or baseline_path_for(cfg.model.path)
    written = write_baseline(baseline, path)
    log.info("baseline written: %s (sha256 %s)", path, written.sha256)
