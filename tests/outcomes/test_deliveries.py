"""Deliveries: any order and any split give the same metrics, repeats change nothing, and the
metrics are scikit-learn's on the joined rows. Odd rows are counted, never joined."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from pipelines.errors import InputDataError
from pipelines.outcomes.add import add_labels
from pipelines.outcomes.evaluate import realized_for_run
from pipelines.outcomes.settings import LabelsSettings
from pipelines.publish import keys
from pipelines.storage.local import LocalStore
from tests.outcomes.conftest import model_of, published_scores, true_labels

RUN = "2026-11-23"
SMALL = LabelsSettings(batch_rows=1_000, bucket_rows=1_000)  # several buckets on tiny data


def _add(folder: Path, frame: pd.DataFrame, name: str, **kw: object) -> dict:
    path = folder / name
    frame.to_csv(path, index=False) if name.endswith(".csv") else frame.to_parquet(path)
    return add_labels(LocalStore(folder / "out"), keys, path, SMALL, run_key=RUN, **kw)


def _realized(folder: Path) -> dict:
    ev = realized_for_run(LocalStore(folder / "out"), keys, model_of(folder / "out"), RUN)
    assert ev is not None
    return ev


def _objects(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in (folder / "out").rglob("*") if p.is_file())


def test_metrics_equal_scikit_learn_on_the_joined_rows(published: Path) -> None:
    scores = published_scores(published / "out")
    labels = true_labels(scores).sample(frac=0.8, random_state=1)  # 80% labelled
    result = _add(published, labels, "labels.parquet")
    ev = _realized(published)
    assert ev is not None and ev["labelled"] == len(labels)
    assert ev["coverage"] == pytest.approx(len(labels) / len(scores))
    joined = labels.merge(scores, on="patient_id")
    y, p, pred = joined["label"], joined["score"], joined["predicted_class"]
    m = ev["metrics"]
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert m["log_loss"] == pytest.approx(log_loss(y, p), abs=1e-12)
    assert m["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    assert m["precision"] == pytest.approx(precision_score(y, pred), abs=1e-12)
    assert m["recall"] == pytest.approx(recall_score(y, pred), abs=1e-12)
    assert 0 <= m["ece"] < 0.1 and sum(m["reliability"]["rows"]) == len(labels)
    assert result["runs"][0]["status"] == "stored"
    page = (
        published / "out" / model_of(published / "out") / RUN / "labels/evaluation.html"
    ).read_text()
    assert "data:image/png;base64,iVBORw0KGgo" in page  # a real PNG reliability plot


def test_three_deliveries_in_any_order_equal_one_and_repeats_change_nothing(
    published: Path, tmp_path: Path
) -> None:
    scores = published_scores(published / "out")
    labels = true_labels(scores)
    shuffled = labels.sample(frac=1.0, random_state=3)
    thirds = [shuffled.iloc[k::3] for k in range(3)]
    whole = tmp_path / "whole"
    import shutil

    shutil.copytree(published, whole)
    _add(whole, labels, "all.parquet")
    reference = _realized(whole)
    assert reference is not None
    for order in itertools.permutations(range(3)):
        folder = tmp_path / "-".join(map(str, order))
        shutil.copytree(published, folder)
        for k in order:
            _add(folder, thirds[k], f"part{k}.csv")
        ev = _realized(folder)
        assert ev is not None and len(ev["deliveries"]) == 3
        assert ev["metrics"] == reference["metrics"], order
        assert ev["labelled"] == reference["labelled"] == len(labels)
        before = _objects(folder)
        again = _add(folder, thirds[order[0]], f"part{order[0]}.csv")
        assert again["runs"][0]["status"] == "already delivered"
        assert _objects(folder) == before
        assert _realized(folder)["metrics"] == ev["metrics"]


def test_overlapping_deliveries_count_an_id_once_and_conflicts_are_excluded_in_any_order(
    published: Path, tmp_path: Path
) -> None:
    import shutil

    scores = published_scores(published / "out")
    labels = true_labels(scores)
    a = labels.iloc[:2_000]
    b = labels.iloc[1_500:].copy()  # 500 IDs again, same labels
    b.iloc[:100, 1] = 1 - b.iloc[:100, 1]  # ... 100 of them with the other label
    results = []
    for order in ((a, b), (b, a)):
        folder = tmp_path / f"o{len(results)}"
        shutil.copytree(published, folder)
        for k, frame in enumerate(order):
            _add(folder, frame, f"d{k}.parquet")
        results.append(_realized(folder))
    assert results[0] == {**results[1], "deliveries": results[0]["deliveries"]}
    ev = results[0]
    assert ev["conflicting_ids"] == 100
    assert ev["labelled"] == len(labels) - 100
    kept = labels.drop(index=labels.index[1_500:1_600]).merge(scores, on="patient_id")
    assert ev["metrics"]["roc_auc"] == pytest.approx(
        roc_auc_score(kept.label, kept.score), abs=1e-12
    )


def test_duplicates_strangers_missing_and_out_of_class_labels_are_counted(published: Path) -> None:
    scores = published_scores(published / "out")
    good = true_labels(scores).iloc[:1_000].astype({"patient_id": "int64"})
    rows = [
        good,
        good.iloc[:50],  # 50 exact duplicate rows
        pd.DataFrame({"patient_id": [1, 2, 3], "label": [1, 0, 1]}),  # 3 strangers
        pd.DataFrame({"patient_id": scores.patient_id.iloc[1_000:1_020], "label": 7}),  # class 7
    ]
    frame = pd.concat(rows, ignore_index=True).astype({"label": "Int64"})
    frame.loc[len(frame)] = [int(scores.patient_id.iloc[2_000]), pd.NA]  # no label
    conflict = good.iloc[[60]].assign(label=1 - good.label.iloc[60])
    frame = pd.concat([frame, conflict], ignore_index=True)  # an ID with both labels
    result = _add(published, frame, "messy.parquet")
    c, run = result["counts"], result["runs"][0]
    assert c["rows_read"] == len(frame)
    assert c["duplicate_rows"] == 50
    assert c["unknown_id_rows"] == 3
    assert c["missing_label_rows"] == 1
    assert c["conflicting_ids"] == 1
    assert run["counts"]["out_of_class_rows"] == 20
    assert run["rows_joined"] == 1_000 + 1  # 1,000 pairs + the conflicting ID's second label
    ev = _realized(published)
    assert ev["labelled"] == 999 and ev["conflicting_ids"] == 1


def test_ids_are_compared_exactly_as_published(published: Path) -> None:
    scores = published_scores(published / "out")
    exact = true_labels(scores).iloc[:10]
    near = exact.assign(patient_id=exact.patient_id.astype("float64"))  # through float64
    with pytest.raises(InputDataError, match="cannot hold every ID exactly"):
        _add(published, near, "float.parquet")
    as_text = exact.assign(patient_id=[f"{v}" for v in exact.patient_id])
    result = _add(published, as_text, "text.csv")  # CSV text "1152921504606846977" -> int64
    assert result["runs"][0]["rows_joined"] == 10
    padded = exact.assign(patient_id=[f"0{v}" for v in exact.patient_id])
    assert _add(published, padded, "padded.csv")["runs"][0]["status"] == "already delivered"
    off_by_one = exact.assign(patient_id=exact.patient_id + 1)  # beyond 2**53: still exact
    with pytest.raises(InputDataError, match="none of the 10 label rows' IDs"):
        _add(published, off_by_one, "off.parquet")


def test_a_label_file_without_its_columns_or_a_run_says_what_there_is(published: Path) -> None:
    scores = published_scores(published / "out")
    labels = true_labels(scores).rename(columns={"label": "churned"})
    listed = "no label column 'label'; its columns are 'patient_id', 'churned'"
    with pytest.raises(InputDataError, match=listed):
        _add(published, labels, "renamed.parquet")
    store, renamed = LocalStore(published / "out"), published / "renamed.parquet"
    with pytest.raises(InputDataError, match=r"published runs there: \w+/2026-11-23"):
        add_labels(store, keys, renamed, SMALL, run_key="x")
    ok = add_labels(
        LocalStore(published / "out"),
        keys,
        published / "renamed.parquet",
        SMALL.model_copy(update={"label_column": "churned"}),
        run_key=RUN,
    )
    assert ok["runs"][0]["rows_joined"] == len(labels)
    marker = next(
        (published / "out" / model_of(published / "out") / RUN / "labels/deliveries").glob("*.json")
    )
    assert json.loads(marker.read_text())["run_counts"]["joined_rows"] == len(labels)
