"""The fast engine in the gate: its audit by GX, the settings, and that it never imports GX."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pipelines.config import ValidationParams
from pipelines.data.demo import make_frame
from pipelines.quality import fast
from pipelines.quality.audit import DEFAULT_AUDIT_ROWS, AuditSample, EngineDisagreement
from pipelines.quality.gate import StreamingGate
from pipelines.quality.suite import load_suite
from pipelines.quality.verdict import merge_verdict
from tests.paths import ROOT

INPUT_SUITE = ROOT / "validation" / "input_suite.json"
ID = "customer_id"


def test_the_sample_is_evenly_spaced_bounded_and_deterministic():
    sample = AuditSample(100)
    for n in (30, 250, 7, 500):
        sample.add(pd.DataFrame({"i": np.arange(sample.seen, sample.seen + n)}))
    picked = sample.frame()["i"].to_numpy()
    assert sample.seen == 787 and 50 <= len(picked) <= 100
    assert (picked % sample.stride == 0).all() and (np.diff(picked) == sample.stride).all()
    assert AuditSample(0).frame() is None


def test_fast_and_gx_engines_give_the_same_verdict_and_the_audit_says_what_it_checked():
    suite = load_suite(INPUT_SUITE)
    df = make_frame(3_000, 1, with_label=False)
    df.loc[[3, 50], "age"] = [np.inf, 5.0]
    df.loc[7, "plan"] = "platinum"
    verdicts = {}
    for engine in ("fast", "gx"):
        gate = StreamingGate(suite, ID, fail_fast=False, engine=engine, audit_rows=500)
        outcomes = [gate.check_batch(df.iloc[:1_700]), gate.check_batch(df.iloc[1_700:])]
        verdicts[engine] = merge_verdict(suite, [gate.finish()], [gate.id_hashes()])
        assert sum(o.bad_count for o in outcomes) == 3
    fast_v, gx_v = verdicts["fast"].to_json(), verdicts["gx"].to_json()
    strip = ("how", "gx_unexpected_count")
    for a, b in zip(fast_v["expectations"], gx_v["expectations"], strict=True):
        assert {k: v for k, v in a.items() if k not in strip} == {
            k: v for k, v in b.items() if k not in strip
        }
    assert fast_v["engine"] == "fast" and gx_v["engine"] == "gx" and gx_v["audit"] == {}
    audit = fast_v["audit"]
    assert 250 <= audit["rows_audited"] <= 500 and audit["rows_gated"] == 3_000
    assert audit["comparisons"] == audit["agreed"] == len(suite.gx_specs)
    assert "GX audited" in audit["summary"]


def test_a_fast_engine_bug_fails_the_run_with_both_answers(monkeypatch):
    """A wrong count for one type (a deliberately broken fast engine) is caught by the audit."""
    suite = load_suite(INPUT_SUITE)
    real = fast.row_mask

    def one_row_too_many(spec, column):
        mask, missing = real(spec, column)
        if spec.type == "expect_column_values_to_be_in_set":
            mask = mask.copy()
            mask[0] = True
        return mask, missing

    monkeypatch.setattr(fast, "row_mask", one_row_too_many)
    gate = StreamingGate(suite, ID, fail_fast=False, engine="fast", audit_rows=200)
    gate.check_batch(make_frame(1_000, 1, with_label=False))
    with pytest.raises(EngineDisagreement) as info:
        gate.finish()
    message = str(info.value)
    assert "validation engines disagree on expect_column_values_to_be_in_set(region" in message
    assert "GX:   success=True" in message and "unexpected=0" in message
    assert "fast: success=False" in message and "unexpected=1" in message and "rows=[0]" in message
    assert "validation.engine: gx" in message


def test_the_same_count_on_other_rows_is_a_disagreement(monkeypatch):
    """GX names the failing rows wherever either engine found some: a fast engine that flags
    as many rows as GX, but other ones, is caught (the counts alone would agree)."""
    suite = load_suite(INPUT_SUITE)
    frame = make_frame(1_000, 1, with_label=False)
    frame.loc[frame.index[5], "region"] = "atlantis"  # GX: one unexpected row, position 5
    real = fast.row_mask

    def shifted(spec, column):
        mask, missing = real(spec, column)
        if spec.type == "expect_column_values_to_be_in_set" and mask.any():
            mask = np.roll(mask, 1)  # same count, the next row
        return mask, missing

    monkeypatch.setattr(fast, "row_mask", shifted)
    gate = StreamingGate(suite, ID, fail_fast=False, engine="fast", audit_rows=5_000)
    gate.check_batch(frame)
    with pytest.raises(EngineDisagreement) as info:
        gate.finish()
    message = str(info.value)
    assert "failing rows" in message and "unexpected count" not in message
    assert "rows=[5]" in message and "rows=[6]" in message


def test_config_defaults_match_the_gate():
    params = ValidationParams()
    assert params.engine == "fast" and params.audit_rows == DEFAULT_AUDIT_ROWS
    with pytest.raises(ValueError):
        ValidationParams(engine="spark")


def test_fast_engine_without_audit_never_imports_gx():
    code = f"""
import sys
from pipelines.data.demo import make_frame
from pipelines.quality.gate import StreamingGate
from pipelines.quality.suite import load_suite
from pipelines.quality.verdict import merge_verdict
suite = load_suite({str(INPUT_SUITE)!r})
gate = StreamingGate(suite, "customer_id", engine="fast", audit_rows=0)
df = make_frame(2_000, 1, with_label=False)
df.loc[3, "age"] = 500.0
assert gate.check_batch(df).bad_count == 1
v = merge_verdict(suite, [gate.finish()], [gate.id_hashes()])
assert v.success and "no GX audit" in v.audit["summary"], v.table_failures
assert not [m for m in sys.modules if m.startswith("great_expectations")]
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)
