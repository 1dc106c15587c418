"""`starter_suite` on frames, checked by the real streaming gate in-process (no mocks)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.errors import ConfigError
from pipelines.project.sample import guess_id_column, looks_like_id
from pipelines.project.starter_suite import numeric_range, starter_suite
from pipelines.quality.gate import StreamingGate
from pipelines.quality.spec import AGGREGATE_TYPES, ROW_TYPES, SCHEMA_TYPES
from pipelines.quality.suite import parse_suite
from pipelines.quality.verdict import QualityVerdict, merge_verdict
from tests.project.conftest import make_frame

ID = "account_id"


def gate(raw: dict, frame: pd.DataFrame) -> tuple[QualityVerdict, np.ndarray]:
    """The suite loaded as a run loads it, run over `frame`; the verdict and quarantined rows."""
    suite = parse_suite(raw, "starter.json")
    streaming = StreamingGate(suite, ID, fail_fast=False)
    outcome = streaming.check_batch(frame)
    verdict = merge_verdict(suite, [streaming.finish()], [streaming.id_hashes()], 0.05)
    return verdict, outcome.bad_mask


def by_type(raw: dict, etype: str, column: str | None = None) -> dict:
    found = [
        e for e in raw["expectations"] if e["type"] == etype and e["kwargs"].get("column") == column
    ]
    assert len(found) == 1, (etype, column)
    return found[0]


def test_the_starter_suite_passes_on_its_sample_and_uses_only_supported_types() -> None:
    frame = make_frame()
    raw = starter_suite(frame, ID, "own_input")
    supported = SCHEMA_TYPES | ROW_TYPES | AGGREGATE_TYPES
    assert {e["type"] for e in raw["expectations"]} <= supported
    assert all(e["notes"] and e["meta"] == {} and e["id"] for e in raw["expectations"])
    assert len({e["id"] for e in raw["expectations"]}) == len(raw["expectations"])
    verdict, bad = gate(raw, frame)
    assert verdict.success, verdict.table_failures
    assert verdict.evaluated_expectations == len(raw["expectations"])
    assert not bad.any() and verdict.rows_quarantined == 0


def test_what_the_suite_says_about_each_kind_of_column() -> None:
    frame = make_frame()
    raw = starter_suite(frame, ID, "own_input")
    columns = by_type(raw, "expect_table_columns_to_match_set")["kwargs"]
    assert columns == {"column_set": list(frame.columns), "exact_match": True}
    rows = by_type(raw, "expect_table_row_count_to_be_between")["kwargs"]
    assert rows == {"min_value": 1, "max_value": None}
    for etype in ("expect_column_values_to_not_be_null", "expect_column_values_to_be_unique"):
        by_type(raw, etype, ID)
    plan = by_type(raw, "expect_column_values_to_be_in_set", "plan")["kwargs"]
    assert plan["value_set"] == ["basic", "plus", "premium"]
    age = by_type(raw, "expect_column_values_to_be_between", "age")["kwargs"]
    assert isinstance(age["min_value"], int) and age["min_value"] <= 18  # whole numbers: ints
    assert 90 < age["max_value"] < 100  # widened by ~10% of the range, not unbounded
    balance = by_type(raw, "expect_column_values_to_be_between", "balance")
    assert balance["kwargs"]["min_value"] <= frame["balance"].min()
    assert balance["kwargs"]["max_value"] >= frame["balance"].max()
    assert "0.1%..99.9% quantiles widened by 10%" in balance["notes"]
    # income has missing values: no not-null, but a bound on their share instead
    assert not [
        e
        for e in raw["expectations"]
        if e["type"] == "expect_column_values_to_not_be_null" and e["kwargs"]["column"] == "income"
    ]
    share = by_type(raw, "expect_column_proportion_of_non_null_values_to_be_between", "income")
    assert 0.8 <= share["kwargs"]["min_value"] < frame["income"].notna().mean()


def test_ranges_hold_the_sample_and_stop_at_zero_for_non_negative_columns() -> None:
    rng = np.random.default_rng(5)
    for values in (rng.exponential(3, 5_000), rng.normal(-40, 7, 5_000), np.full(50, 2.5)):
        lo, hi, note = numeric_range(values)
        assert lo <= values.min() and hi >= values.max(), note
        assert hi > lo
    lo, _, note = numeric_range(rng.exponential(3, 5_000))
    assert lo == 0 and "kept at 0" in note
    lo, hi, _ = numeric_range(np.array([1.0, 1.0, 1000.0]))  # an outlier is never cut off
    assert lo <= 1 and hi >= 1000


def test_a_text_column_with_many_values_gets_no_value_set() -> None:
    frame = make_frame(500)
    frame["comment"] = [f"note {i}" for i in range(len(frame))]
    raw = starter_suite(frame, ID, "own_input")
    kinds = {e["type"] for e in raw["expectations"] if e["kwargs"].get("column") == "comment"}
    assert kinds == {"expect_column_values_to_be_of_type", "expect_column_values_to_not_be_null"}
    assert gate(raw, frame)[0].success


def test_refusals_say_what_and_how_to_fix() -> None:
    frame = make_frame(200)
    with pytest.raises(ConfigError, match="did you mean 'account_id'") as unknown:
        starter_suite(frame, "acount_id", "x")
    assert unknown.value.where == "--id-column"
    dup = frame.copy()
    dup.loc[5, ID] = dup.loc[6, ID]
    with pytest.raises(ConfigError, match="not unique in the sample") as repeated:
        starter_suite(dup, ID, "x")
    assert repeated.value.fix
    with pytest.raises(ConfigError, match="no rows"):
        starter_suite(frame.iloc[:0], ID, "x")


def test_the_id_column_is_guessed_only_when_exactly_one_fits() -> None:
    frame = make_frame(300)
    features = {"age", "balance", "income", "plan", "region"}
    assert guess_id_column(frame, features) == ID
    frame["order_id"] = np.arange(len(frame))
    with pytest.raises(ConfigError, match="several columns could be the ID"):
        guess_id_column(frame, features)
    with pytest.raises(ConfigError, match="no column the model does not use") as none:
        guess_id_column(frame[sorted(features)], features)
    assert "--id-column" in (none.value.fix or "")
    names = ["customer_id", "ID", "orderId", "uuid", "id_number", "customerKey"]
    assert all(looks_like_id(n) for n in names)
    assert not any(looks_like_id(n) for n in ["paid", "valid", "idle_days", "video"])
