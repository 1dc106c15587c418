"""Retraining the same model writes the same bytes; the rewritten file loads as the same model."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import skops.io as sio

from pipelines.data.demo import ID_COLUMN, LABEL_COLUMN, TIME_COLUMN, make_frame
from pipelines.model.artifact import load_model, save_model
from pipelines.model.build import build_pipeline, feature_kinds
from pipelines.model.canonical import canonicalize_skops
from pipelines.storage.hashing import sha256_file


def fit(kind: str):  # type: ignore[no-untyped-def]
    frame = make_frame(3_000, 7, with_label=True)
    x, y = frame.drop(columns=[ID_COLUMN, TIME_COLUMN, LABEL_COLUMN]), frame[LABEL_COLUMN]
    kinds = feature_kinds(x)
    numeric = [f.name for f in kinds if f.kind == "numeric"]
    categorical = [f.name for f in kinds if f.kind == "categorical"]
    return build_pipeline(numeric, categorical, kind, 20, 0).fit(x, y), x, kinds


def save(estimator, path: Path, kinds) -> str:  # type: ignore[no-untyped-def]
    card = save_model(estimator, path, name="m", features=kinds, training={}, metrics={}, params={})
    return card["sha256"]


def test_two_fits_of_the_same_model_have_the_same_sha256(tmp_path: Path) -> None:
    for kind in ("hgb", "logreg"):
        first, x, kinds = fit(kind)
        second, _, _ = fit(kind)  # equal model, other objects: other id()s
        assert first is not second
        a = save(first, tmp_path / f"{kind}-a.skops", kinds)
        b = save(second, tmp_path / f"{kind}-b.skops", kinds)
        assert a == b == sha256_file(tmp_path / f"{kind}-b.skops")
        loaded = load_model(tmp_path / f"{kind}-a.skops", pinned_sha256=a)
        assert np.array_equal(loaded.estimator.predict_proba(x), first.predict_proba(x))


def test_the_rewrite_keeps_shared_objects_shared(tmp_path: Path) -> None:
    estimator, x, _ = fit("logreg")
    shared = np.arange(5.0)
    estimator.note_a, estimator.note_b = shared, shared  # one object referenced twice
    path = tmp_path / "m.skops"
    sio.dump(estimator, path)
    canonicalize_skops(path)
    names = [i.filename for i in zipfile.ZipFile(path).infolist()]
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zipfile.ZipFile(path).infolist())
    assert "schema.json" in names and not any(n[:5].isdigit() and len(n) > 12 for n in names)
    loaded = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    assert loaded.note_a is loaded.note_b
    assert np.array_equal(loaded.note_a, shared)
    assert np.array_equal(loaded.predict_proba(x), estimator.predict_proba(x))
