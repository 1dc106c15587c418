"""Model artifacts: save a fitted model as skops with a card, and load one safely.

Loading is the security boundary: the file's sha256 must equal the pinned one *before* any
byte is deserialized, skops may only build types on an explicit allow-list, and a model saved by
another scikit-learn version is refused rather than silently scored.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from sklearn.exceptions import InconsistentVersionWarning

from pipelines.config import card_path_for
from pipelines.errors import ModelIntegrityError
from pipelines.model.canonical import canonicalize_skops
from pipelines.storage.hashing import sha256_file

# Types beyond skops' own defaults that a scikit-learn pipeline of ours needs; users extend the
# list with `model.trusted_types` for their own artifacts.
DEFAULT_TRUSTED_TYPES = [
    "numpy.dtype",
    "functools.partial",  # only wraps callables that are themselves on this list
    "sklearn.utils.validation.check_array",
    # scikit-learn's own state holders that skops does not trust by default; they rebuild
    # arrays and parameters and run no code of the file's choosing. Needed by common models:
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # HistGradientBoosting
    "sklearn.tree._tree.Tree",  # DecisionTree, RandomForest, ExtraTrees, GradientBoosting
    "sklearn.neighbors._kd_tree.KDTree",  # KNeighbors
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",  # MLP
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.calibration._CalibratedClassifier",  # CalibratedClassifierCV
    "sklearn.calibration._SigmoidCalibration",
]


@dataclass(frozen=True)
class Feature:
    """One input column the model expects: its name and kind ('numeric' or 'categorical')."""

    name: str
    kind: str


@dataclass(frozen=True)
class LoadedModel:
    """A verified, deserialized model with the contract it was trained under."""

    estimator: Any
    sha256: str
    name: str
    version: str
    features: tuple[Feature, ...]
    classes: tuple[Any, ...]
    card: dict[str, Any]


def save_model(
    estimator: Any,
    path: Path,
    *,
    name: str,
    features: list[Feature],
    training: dict[str, Any],
    metrics: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Write `<path>` (skops) and its card `<stem>.card.json`; return the card.

    Both are reproducible: the same fit gives the same bytes, so DVC and the run fingerprint see
    a retrained but unchanged model as unchanged (hence no timestamp in the card).
    """
    import skops.io as sio

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    sio.dump(estimator, tmp)
    canonicalize_skops(tmp)  # retraining the same model reproduces its sha256
    tmp.replace(path)
    digest = sha256_file(path)
    card = {
        "name": name,
        "version": digest[:12],
        "sha256": digest,
        "format": "skops",
        "file": path.name,
        "sklearn_version": sklearn.__version__,
        "features": [{"name": f.name, "kind": f.kind} for f in features],
        "classes": [_plain(c) for c in estimator.classes_],
        "training_data": training,
        "metrics": metrics,
        "params": params,
    }
    card_path_for(path).write_text(json.dumps(card, indent=2) + "\n")
    return card


def load_model(
    path: Path,
    *,
    pinned_sha256: str | None,
    card_path: Path | None = None,
    trusted_types: list[str] | None = None,
) -> LoadedModel:
    """Verify the artifact against its pin, then deserialize it with an allow-list.

    Without a pin, the card's sha256 is used (and must exist): the file is never loaded unchecked.
    """
    if not path.is_file():
        raise ModelIntegrityError(
            f"model file {path} not found",
            fix="set model.path in params.yaml (or --model) to a .skops file; "
            "`batchscore train` makes the demo model",
        )
    if path.suffix.lower() in {".pkl", ".pickle", ".joblib"}:
        raise ModelIntegrityError(
            f"refusing to load {path.name}: pickle/joblib files can run arbitrary code",
            fix="re-save the model with skops: `skops.io.dump(model, 'model.skops')`",
        )
    card = _read_card(card_path)
    pin = pinned_sha256 or card.get("sha256")
    if not pin:
        raise ModelIntegrityError(
            f"no sha256 pin for {path.name}",
            fix="set model.sha256 in params.yaml to the output of `sha256sum` on the model file",
        )
    actual = sha256_file(path)
    if actual != pin:
        raise ModelIntegrityError(
            f"model file {path} has sha256 {actual}, but the pin is {pin}; refusing to load it",
            fix="if this model is the one you intend to use, update model.sha256; otherwise "
            "restore the pinned artifact",
        )
    saved_with = card.get("sklearn_version")
    if saved_with and saved_with != sklearn.__version__:
        raise ModelIntegrityError(
            f"{path.name} was trained with scikit-learn {saved_with}, "
            f"but {sklearn.__version__} is installed; scores could silently differ",
            fix=f"retrain the model with scikit-learn {sklearn.__version__}, "
            f"or install scikit-learn=={saved_with}",
        )
    estimator = _skops_load(path, [*DEFAULT_TRUSTED_TYPES, *(trusted_types or [])])
    if not hasattr(estimator, "predict_proba"):
        raise ModelIntegrityError(
            f"{path.name} holds a {type(estimator).__name__}, which has no predict_proba",
            fix="batchscore scores classifiers; save a fitted classifier or Pipeline",
        )
    features = _features(estimator, card, path)
    return LoadedModel(
        estimator=estimator,
        sha256=actual,
        name=card.get("name") or path.name.split(".")[0],
        version=card.get("version") or actual[:12],
        features=features,
        classes=tuple(_plain(c) for c in estimator.classes_),
        card=card,
    )


def _read_card(card_path: Path | None) -> dict[str, Any]:
    if card_path is None or not card_path.is_file():
        return {}
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelIntegrityError(
            f"model card is not valid JSON: {exc}", where=str(card_path)
        ) from None
    if not isinstance(card, dict):
        raise ModelIntegrityError("model card must be a JSON object", where=str(card_path))
    return card


def _skops_load(path: Path, trusted: list[str]) -> Any:
    from pipelines.model.skops_import import import_skops

    sio = import_skops()  # without importing all of scikit-learn: start-up is paid per process

    try:
        untrusted = [t for t in sio.get_untrusted_types(file=path) if t not in trusted]
    except Exception as exc:  # a zip that is not a skops file, truncated, etc.
        raise ModelIntegrityError(
            f"{path.name} is not a readable skops file ({type(exc).__name__}: {exc})",
            fix="save the model with skops.io.dump",
        ) from None
    if untrusted:
        raise ModelIntegrityError(
            f"{path.name} contains types that are not on the trusted list: {', '.join(untrusted)}",
            fix="if you trust this artifact, add them to model.trusted_types in params.yaml",
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # skops scans every loaded module
        warnings.simplefilter("error", InconsistentVersionWarning)
        try:
            return sio.load(path, trusted=trusted)
        except InconsistentVersionWarning as exc:
            raise ModelIntegrityError(
                f"{path.name} was saved with another scikit-learn version: {exc}",
                fix=f"retrain or re-save it with scikit-learn {sklearn.__version__}",
            ) from None


def _features(estimator: Any, card: dict[str, Any], path: Path) -> tuple[Feature, ...]:
    if card.get("features"):
        return tuple(Feature(f["name"], f.get("kind", "numeric")) for f in card["features"])
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        raise ModelIntegrityError(
            f"{path.name} was fitted without column names and has no model card",
            fix="fit the model on a pandas DataFrame, or provide a card listing its features",
        )
    return tuple(Feature(str(n), "any") for n in names)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
