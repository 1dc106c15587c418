"""The history over hand-made manifests with monitoring blocks: one row per run, every column on
every row, performance columns only when a run has them, a CSV and JSON machines can read."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from pipelines.errors import InputDataError
from pipelines.monitoring.history import (
    BASE_COLUMNS,
    feature_names,
    history_rows,
    to_csv,
    to_json,
)


def _feature(name: str, psi: float, status: str = "ok") -> dict[str, Any]:
    return {"name": name, "kind": "numeric", "status": status, "psi": psi}


def manifest(
    key: str,
    *,
    model: str = "churn",
    rows_in: int = 1_000,
    quarantined: int = 0,
    monitoring: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The fields of a published `manifest.json` the history reads (and a few it ignores)."""
    doc = {
        "schema_version": 1,
        "run_key": key,
        "model": {"name": model, "version": "1.0.0", "sha256": "ab" * 32, "path": "m.skops"},
        "counts": {
            "rows_in": rows_in,
            "rows_scored": rows_in - quarantined,
            "rows_quarantined": quarantined,
        },
        "created_at": f"{key}T02:00:00+00:00",
        "scores": {"kind": "binary"},
        "parts": [],
        **extra,
    }
    if monitoring is not None:
        doc["monitoring"] = monitoring
    return doc


def drift(status: str, age: float, bmi: float, flagged: list[str]) -> dict[str, Any]:
    return {
        "status": status,
        "baseline": {"sha256": "cd" * 32, "rows": 300, "path": None},
        "rows": 1_000,
        "decision": {"rule": "holm", "flagged": flagged, "alpha": 0.01},
        "features": [
            _feature("age", age, "fail" if age > 0.25 else "ok"),
            _feature("bmi", bmi),
        ],
        "score": {**_feature("score", 0.05), "name": "score"},
        "segments": [],
    }


MANIFESTS = [
    manifest(
        "2026-12-03",
        monitoring=drift("fail", 0.41, 0.02, ["age"]),
        quarantined=30,
        scores={"kind": "binary", "mean": 0.3125},
    ),
    manifest("2026-12-01", monitoring=drift("ok", 0.01, 0.03, [])),
    manifest(
        "2026-12-02",
        monitoring={"status": "no_baseline", "message": "no baseline"},
        estimated_performance={"auc": 0.81, "accuracy": 0.77, "method": "cbpe"},
    ),
    manifest("2026-11-30"),  # monitoring off, or a run from before it existed
]


def test_one_row_per_run_sorted_by_run_key_with_counts_and_drift() -> None:
    rows = history_rows(MANIFESTS)
    assert [r["run_key"] for r in rows] == ["2026-11-30", "2026-12-01", "2026-12-02", "2026-12-03"]
    assert [r["drift_status"] for r in rows] == ["off", "ok", "no_baseline", "fail"]
    assert [r["drift_level"] for r in rows] == [None, 0, None, 2]
    last = rows[-1]
    assert last["rows_in"] == 1_000 and last["rows_quarantined"] == 30
    assert last["quarantine_share"] == 0.03 and last["score_mean"] == 0.3125
    assert last["psi_age"] == 0.41 and last["psi_bmi"] == 0.02 and last["score_psi"] == 0.05
    assert last["flagged"] == 1 and last["flagged_features"] == "age"
    assert last["baseline_sha256"] == "cd" * 32 and last["model"] == "churn"
    assert rows[1]["flagged"] == 0 and rows[1]["flagged_features"] == ""
    assert rows[0]["psi_age"] is None and rows[0]["flagged"] is None  # no block: no numbers


def test_every_row_has_the_same_columns_and_performance_only_when_present() -> None:
    rows = history_rows(MANIFESTS)
    names = list(rows[0])
    assert all(list(r) == names for r in rows)
    assert names[: len(BASE_COLUMNS)] == BASE_COLUMNS
    assert names[len(BASE_COLUMNS) :] == [
        "psi_age",
        "psi_bmi",
        "estimated_accuracy",
        "estimated_auc",
        "estimated_method",
    ]
    assert rows[2]["estimated_auc"] == 0.81 and rows[2]["estimated_method"] == "cbpe"
    without = history_rows([m for m in MANIFESTS if "estimated_performance" not in m])
    assert not [k for k in without[0] if k.startswith(("estimated_", "realized_"))]


def test_realized_metrics_join_by_model_and_key_or_by_key() -> None:
    realized = {"churn/2026-12-01": {"auc": 0.79, "coverage": 0.4}, "2026-12-03": {"auc": 0.7}}
    rows = {r["run_key"]: r for r in history_rows(MANIFESTS, realized=realized)}
    assert rows["2026-12-01"]["realized_auc"] == 0.79
    assert rows["2026-12-01"]["realized_coverage"] == 0.4
    assert (
        rows["2026-12-03"]["realized_auc"] == 0.7
        and rows["2026-12-03"]["realized_coverage"] is None
    )
    assert rows["2026-11-30"]["realized_auc"] is None


def test_last_keeps_the_latest_runs_and_model_keeps_one_model() -> None:
    other = manifest("2026-12-09", model="fraud", monitoring=drift("ok", 0.0, 0.0, []))
    rows = history_rows([*MANIFESTS, other], last=2)
    assert [(r["model"], r["run_key"]) for r in rows] == [
        ("churn", "2026-12-03"),
        ("fraud", "2026-12-09"),
    ]
    rows = history_rows([*MANIFESTS, other], model="churn", last=2)
    assert [r["run_key"] for r in rows] == ["2026-12-02", "2026-12-03"]
    assert history_rows([*MANIFESTS, other], model="nobody") == []


def test_the_score_mean_falls_back_to_the_reports_histogram() -> None:
    report = {"score_histogram": {"bin_edges": [0, 0.5, 1], "counts": [3, 1]}}
    rows = {r["run_key"]: r for r in history_rows(MANIFESTS, reports={"churn/2026-12-01": report})}
    assert rows["2026-12-01"]["score_mean"] == pytest.approx((3 * 0.25 + 0.75) / 4)
    assert rows["2026-12-03"]["score_mean"] == 0.3125  # the manifest's exact mean wins
    assert rows["2026-11-30"]["score_mean"] is None


def test_features_are_ranked_by_their_highest_psi() -> None:
    assert feature_names(history_rows(MANIFESTS)) == ["age", "bmi"]
    calm = [manifest("a", monitoring=drift("ok", 0.01, 0.2, []))]
    assert feature_names(history_rows(calm)) == ["bmi", "age"]


def test_the_csv_is_tidy_one_line_per_run_with_empty_cells_for_no_value() -> None:
    rows = history_rows(MANIFESTS)
    text = to_csv(rows)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert len(parsed) == 4 and list(parsed[0]) == list(rows[0])
    assert text.splitlines()[0].startswith("run,run_key,model,")
    assert [p["run_key"] for p in parsed] == [r["run_key"] for r in rows]
    assert parsed[0]["psi_age"] == "" and parsed[3]["psi_age"] == "0.41"
    assert parsed[3]["quarantine_share"] == "0.03" and parsed[0]["drift_status"] == "off"
    assert "." not in "".join(parsed[0])  # no dotted column names: Vega-Lite would nest them


def test_the_json_is_strict_and_names_its_columns_and_features() -> None:
    rows = history_rows(MANIFESTS)
    doc = json.loads(to_json(rows, source="file:///out"))
    assert doc["history_version"] == 1 and doc["source"] == "file:///out"
    assert doc["columns"] == list(rows[0]) and doc["features"] == ["age", "bmi"]
    assert doc["runs"] == rows
    nan = manifest("z", monitoring=drift("warn", float("nan"), float("inf"), []))
    assert json.loads(to_json(history_rows([nan])))["runs"][0]["psi_age"] is None


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ({"model": {"name": "churn"}, "counts": {}}, "manifest #0 has no run_key"),
        ({"run_key": "k", "counts": {}}, "manifest #0 has no model.name"),
        ({"run_key": "k", "model": {"name": "m"}}, "manifest has no counts (in run m/k)"),
        (
            {"run_key": "k", "model": {"name": "m"}, "counts": {"rows_in": -1}},
            "counts.rows_in is -1, not a row count (in run m/k)",
        ),
    ],
)
def test_a_broken_manifest_is_named_with_what_to_do(broken: dict[str, Any], message: str) -> None:
    with pytest.raises(InputDataError) as info:
        history_rows([broken])
    assert message in str(info.value) and "Fix: re-publish the run" in str(info.value)


def test_bad_realized_metrics_and_last_are_refused() -> None:
    with pytest.raises(InputDataError, match="realized performance of run churn/2026-12-01"):
        history_rows(MANIFESTS, realized={"2026-12-01": 0.8})  # type: ignore[dict-item]
    with pytest.raises(InputDataError, match="last must be at least 1"):
        history_rows(MANIFESTS, last=0)
