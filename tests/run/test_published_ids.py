"""The published ID column keeps the input's name; the output suite sees it as `id`; the suites'
null defaults (built-in output suite, no input gate)."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipelines.config import Settings
from pipelines.errors import QualityGateError, SchemaMismatchError
from pipelines.publish.manifest import RunManifest
from pipelines.quality.suite import BUILTIN_OUTPUT_SUITE
from pipelines.run.pipeline import run_pipeline
from pipelines.run.plan import NO_INPUT_SUITE, plan_run
from pipelines.storage.open import open_store


def parts(cfg: Settings, manifest: RunManifest, kind: str) -> pd.DataFrame:
    store = open_store(cfg)
    tables = [pq.read_table(store.local_path(p.key)) for p in manifest.parts if p.kind == kind]
    return pd.concat([t.to_pandas() for t in tables], ignore_index=True)


def patients(
    score_file: Path, tmp_path: Path, edits: dict[int, tuple[str, Any]]
) -> tuple[Path, pd.DataFrame]:
    """The demo input with its ID column called `patient_id`, edited ({row: (column, value)})."""
    frame = pq.read_table(score_file).to_pandas().rename(columns={"customer_id": "patient_id"})
    for row, (column, value) in edits.items():
        frame.loc[row, column] = value
    path = tmp_path / "patients.parquet"
    frame.to_parquet(path, row_group_size=1_000)
    return path, frame


def suite(tmp_path: Path, *checks: tuple[str, dict[str, Any]]) -> Path:
    path = tmp_path / "patients_suite.json"
    items = [{"type": t, "kwargs": k} for t, k in checks]
    path.write_text(json.dumps({"name": "patients", "expectations": items}))
    return path


NOT_NULL = ("expect_column_values_to_not_be_null", {"column": "patient_id"})
UNIQUE = ("expect_column_values_to_be_unique", {"column": "patient_id"})


def test_scores_and_quarantine_keep_the_input_id_name_and_values(
    make_cfg: Callable[..., Settings], score_file: Path, tmp_path: Path
) -> None:
    path, frame = patients(score_file, tmp_path, {7: ("age", np.inf)})
    cfg = make_cfg(
        **{"data.path": str(path), "data.id_column": "patient_id", "score.shard_rows": 2_000},
        **{"validation.input_suite": str(suite(tmp_path, NOT_NULL, UNIQUE))},
        **{"validation.output_suite": None},
    )
    manifest = run_pipeline(cfg)
    assert manifest.shards == 3 and manifest.counts.rows_quarantined == 1

    scores = parts(cfg, manifest, "scores")
    assert list(scores.columns[:3]) == ["patient_id", "score", "predicted_class"]
    assert "id" not in scores.columns
    assert scores["patient_id"].tolist() == frame["patient_id"].drop(index=7).tolist()
    quarantine = parts(cfg, manifest, "quarantine")
    assert quarantine["patient_id"].tolist() == [frame.loc[7, "patient_id"]]
    assert "id" not in quarantine.columns
    # the built-in output suite ran on the `id` view: the uniqueness check saw every scored ID
    out = manifest.quality["output"]
    assert out["success"] and out["suite_source"] == str(BUILTIN_OUTPUT_SUITE)
    unique = next(e for e in out["expectations"] if e["type"].endswith("to_be_unique"))
    assert unique["evaluated"] and unique["element_count"] == len(frame) - 1
    assert manifest.scores["id_column"] == "patient_id"


def test_duplicate_ids_fail_the_output_gate_naming_the_ids(
    make_cfg: Callable[..., Settings], score_file: Path, tmp_path: Path
) -> None:
    path, frame = patients(score_file, tmp_path, {4_000: ("patient_id", 42)})
    cfg = make_cfg(
        **{"data.path": str(path), "data.id_column": "patient_id", "score.shard_rows": 2_000},
        **{"validation.input_suite": str(suite(tmp_path, NOT_NULL))},  # no uniqueness here
        **{"validation.output_suite": None},
    )
    with pytest.raises(QualityGateError) as info:
        run_pipeline(cfg)
    text = str(info.value)
    assert "1 duplicated value(s) on 2 rows, e.g. [42]" in text  # the real ID, across shards
    assert "the ID column 'patient_id'" in text


@pytest.mark.parametrize("name", ["score", "predicted_class", "model_version", "run_key"])
def test_an_id_column_named_like_an_output_column_is_refused_at_plan_time(
    make_cfg: Callable[..., Settings], score_file: Path, tmp_path: Path, name: str
) -> None:
    frame = pq.read_table(score_file).to_pandas().rename(columns={"customer_id": name})
    frame.to_parquet(tmp_path / "clash.parquet")
    cfg = make_cfg(
        **{"data.path": str(tmp_path / "clash.parquet"), "data.id_column": name},
        **{"validation.enabled": False},
    )
    with pytest.raises(SchemaMismatchError, match=f"the ID column '{name}'") as info:
        plan_run(cfg)
    assert info.value.where == "data.id_column" and "rename" in (info.value.fix or "")


def test_an_explicit_output_suite_path_still_works(
    make_cfg: Callable[..., Settings], tmp_path: Path
) -> None:
    mine = tmp_path / "my_output_suite.json"
    shutil.copy(BUILTIN_OUTPUT_SUITE, mine)
    cfg = make_cfg(**{"validation.output_suite": str(mine), "validation.input_suite": None})
    manifest = run_pipeline(cfg)
    assert manifest.quality["output"]["suite_source"] == str(mine)
    assert manifest.quality["output"]["success"]


def test_no_input_suite_runs_no_input_gate_and_warns_once_how_to_make_one(
    make_cfg: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    cfg = make_cfg(
        **{"validation.input_suite": None, "validation.output_suite": None},
        **{"score.shard_rows": 2_000},
    )
    with caplog.at_level(logging.WARNING):
        manifest = run_pipeline(cfg)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings.count(NO_INPUT_SUITE) == 1, warnings
    assert "batchscore suite init --from DATA --out suite.json" in NO_INPUT_SUITE
    assert manifest.shards == 3 and manifest.counts.rows_scored == 5_003
    assert "input" not in manifest.quality and manifest.quality["output"]["success"]
