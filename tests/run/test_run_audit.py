"""GX's audit of the fast engine in a run: every shard's sample, one GX pass when it finishes.

The shards stage their samples beside their ID hashes; the run audits them all at once, so GX's
fixed cost (~0.2 s per call and suite) is paid once per run rather than once per shard, and the
processes that score never import GX.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines.publish.commit import list_runs
from pipelines.quality import audit as audit_module
from pipelines.quality import fast
from pipelines.quality.audit import EngineDisagreement
from pipelines.run.pipeline import run_pipeline
from pipelines.run.plan import plan_run
from pipelines.storage.open import open_store
from tests.paths import ROOT

SHARDED = {"score.shard_rows": 2_000, "validation.audit_rows": 300}  # 5,003 rows: 3 shards


def test_a_run_audits_every_shards_sample_in_one_gx_pass(make_cfg, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls: list[int] = []
    real = audit_module._audit_frame

    def counted(suite, df, report, locate):  # type: ignore[no-untyped-def]
        calls.append(0 if df is None else len(df))
        return real(suite, df, report, locate)

    monkeypatch.setattr(audit_module, "_audit_frame", counted)
    cfg = make_cfg(**SHARDED)
    manifest = run_pipeline(cfg)
    assert manifest.shards == 3
    for name in ("input", "output"):
        audit = manifest.quality[name]["audit"]
        assert audit["passes"] == 1 and audit["shards_audited"] == audit["shards"] == 3
        assert 3 * 150 <= audit["rows_audited"] <= 3 * 300
        assert audit["comparisons"] == audit["agreed"] > 0
        assert "in one pass" in audit["summary"]
    # one GX pass per suite, over the samples of all three shards
    assert len(calls) == 2 and calls[0] == manifest.quality["input"]["audit"]["rows_audited"]
    # the samples were staging: once read they are gone, like the ID hashes
    assert not [k for k in open_store(cfg).list_keys("") if "/audit/" in k]


def test_a_fast_engine_bug_found_by_the_runs_audit_fails_it_naming_shard_and_row(
    make_cfg, monkeypatch, score_file
) -> None:  # type: ignore[no-untyped-def]
    """A fast engine that wrongly refuses one allowed region (GX accepts it): the run's audit
    sees it on the samples, fails the run before its commit, and says where those rows are in
    the input (shard and row), so they can be looked at."""
    real = fast.row_mask

    def central_refused(spec, column):  # type: ignore[no-untyped-def]
        mask, missing = real(spec, column)
        if spec.type == "expect_column_values_to_be_in_set" and spec.column == "region":
            mask = mask | np.asarray(column == "central")
        return mask, missing

    monkeypatch.setattr(fast, "row_mask", central_refused)
    cfg = make_cfg(**SHARDED)
    with pytest.raises(EngineDisagreement) as info:
        run_pipeline(cfg)
    message = str(info.value)
    assert "validation engines disagree on expect_column_values_to_be_in_set(region" in message
    assert "GX:   success=True" in message and "fast: success=False" in message
    located = re.findall(r"shard (\d+) row ([\d,]+)", message.split("sample rows in the input:")[1])
    assert len(located) == 10
    regions = pq.read_table(score_file, columns=["region"]).column("region").to_pylist()
    for shard, row in located:  # shards of 2,000 rows (two row groups of 1,000)
        assert regions[2_000 * int(shard) + int(row.replace(",", ""))] == "central"
    store = open_store(cfg)
    assert list_runs(store) == [] and store.list_keys("") == []  # nothing published or left


def test_the_processes_that_score_never_import_gx(make_cfg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A shard task (Airflow's, a pool worker's) scores and stages its sample without GX."""
    cfg = make_cfg(**SHARDED)
    plan = plan_run(cfg)
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(plan.model_dump_json())
    overrides = {
        "data.path": str(cfg.data.path),
        "model.path": str(cfg.model.path),
        "output.uri": cfg.output.uri,
        "run.key": cfg.run_key,
        "score.progress": "off",
        "validation.batch_rows": cfg.validation.batch_rows,
        **SHARDED,
    }
    code = f"""
import sys
from pipelines.config import load_config
from pipelines.run.records import RunPlan
from pipelines.run.shard import score_shard
cfg = load_config({str(ROOT / "params.yaml")!r}, {overrides!r}, env={{}})
plan = RunPlan.model_validate_json(open({str(plan_path)!r}).read())
result = score_shard(cfg, plan, 1)
assert set(result.audit_keys) == {{"input", "output"}}, result.audit_keys
assert not [m for m in sys.modules if m.startswith("great_expectations")], "GX was imported"
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)
