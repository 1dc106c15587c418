"""The data-quality gate: GX Core 1.x suites evaluated over a stream, merged into one verdict.

A suite is a GX ExpectationSuite JSON file in `validation/`. Each expectation is one of three
kinds, decided when the suite is loaded (anything else is refused, so nothing is silently skipped):

* **schema** (columns, column types): run by GX on every batch; failing in any batch fails the
  run (`check_batch` raises at once unless `fail_fast=False`).
* **row** (not-null, between, in-set, regex, lengths): run by GX on every batch *and* by our own
  vectorized masks, which say *which* rows failed so they can be quarantined with a reason. The
  mask's failure count must equal GX's `unexpected_count` for every expectation and batch, or the
  gate stops with `GateConsistencyError`: routing can never silently drift from GX.
* **aggregate** (row count, ID uniqueness, column min/max/mean/sum, share of non-null values):
  computed exactly over the whole input from per-shard partial state (counts, sums, min, max,
  sorted ID hashes), never per batch. Column statistics describe the rows that will be scored
  (rows quarantined by a row-level expectation, or by the caller, are left out), so one bad value
  is quarantined rather than failing the table; row count and uniqueness cover every input row.

`StreamingGate` runs in each shard/worker; `merge_verdict` joins the shards' `GateState`s into a
`QualityVerdict`. The verdict fails on any schema or aggregate failure, an empty input, a
quarantined share above the threshold, or when fewer expectations were evaluated than the suite
holds (a misconfigured suite must not pass by checking nothing).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipelines.errors import ConfigError, QualityGateError
from pipelines.quality.uniqueness import IdHashCollector, find_duplicates, unmix64

Kind = Literal["schema", "row", "aggregate"]
MAX_EXAMPLES = 20
MAX_REASON_KINDS = 200
RESULT_FORMAT = "BASIC"  # unexpected_count per expectation; cheapest format that has it

SCHEMA_TYPES = frozenset(
    {
        "expect_table_columns_to_match_set",
        "expect_table_columns_to_match_ordered_list",
        "expect_column_to_exist",
        "expect_table_column_count_to_equal",
        "expect_table_column_count_to_be_between",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_be_in_type_list",
        "expect_column_type_to_be",
    }
)
ROW_TYPES = frozenset(
    {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_null",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_in_set",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_not_match_regex",
        "expect_column_value_lengths_to_be_between",
        "expect_column_value_lengths_to_equal",
    }
)
AGGREGATE_TYPES = frozenset(
    {
        "expect_table_row_count_to_be_between",
        "expect_table_row_count_to_equal",
        "expect_column_values_to_be_unique",
        "expect_column_min_to_be_between",
        "expect_column_max_to_be_between",
        "expect_column_mean_to_be_between",
        "expect_column_sum_to_be_between",
        "expect_column_proportion_of_non_null_values_to_be_between",
    }
)
_COLUMN_STATS = AGGREGATE_TYPES - {
    "expect_table_row_count_to_be_between",
    "expect_table_row_count_to_equal",
    "expect_column_values_to_be_unique",
}


class GateConsistencyError(QualityGateError):
    """Our row masks and GX disagree: a bug or a GX behaviour change, never a data problem."""


# --------------------------------------------------------------------------------------------
# Suites


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation of a suite, with how the gate evaluates it."""

    index: int
    id: str
    type: str
    kwargs: dict[str, Any]  # as written in the suite file
    kind: Kind
    severity: str  # "critical" fails/quarantines; "warning"/"info" are only reported
    label: str  # e.g. "expect_column_values_to_be_between(age, 18..120)": the quarantine reason

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column")

    @property
    def critical(self) -> bool:
        return self.severity == "critical"

    @property
    def how(self) -> str:
        return "exact-merged" if self.kind == "aggregate" else "gx-per-batch"


class Suite:
    """A parsed, checked suite: the GX ExpectationSuite plus our classification of each entry.

    Pickles as its JSON (the GX objects are rebuilt lazily), so it is cheap to ship to workers.
    """

    def __init__(self, raw: dict[str, Any], source: str) -> None:
        self.source = source
        self.raw = raw
        self.name: str = raw["name"]
        self.specs: tuple[ExpectationSpec, ...] = _classify(raw, source)
        canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
        self.digest = hashlib.sha256(canonical.encode()).hexdigest()[:16]
        uniques = [s for s in self.specs if s.type == "expect_column_values_to_be_unique"]
        if len({s.column for s in uniques}) > 1:
            raise ConfigError(
                f"suite {self.name!r} checks uniqueness of several columns "
                f"{sorted({str(s.column) for s in uniques})}; the streaming gate supports one "
                "(the ID column)",
                where=source,
            )
        self.unique_column: str | None = uniques[0].column if uniques else None
        self._gx_suites: dict[tuple[str, ...], Any] | None = None

    def __len__(self) -> int:
        return len(self.specs)

    def __repr__(self) -> str:
        return f"Suite({self.name!r}, {len(self)} expectations, from {self.source})"

    def __getstate__(self) -> dict[str, Any]:
        return {"raw": self.raw, "source": self.source}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["raw"], state["source"])  # type: ignore[misc]

    @property
    def gx_specs(self) -> tuple[ExpectationSpec, ...]:
        """The expectations GX runs on every batch (schema and row-level)."""
        return tuple(s for s in self.specs if s.kind != "aggregate")

    def gx_suite(self, ids: tuple[str, ...] | None = None) -> Any:
        """The GX ExpectationSuite of `gx_specs` (or of the given ids), built once per process."""
        key = ids if ids is not None else tuple(s.id for s in self.gx_specs)
        if self._gx_suites is None:
            self._gx_suites = {}
        if key not in self._gx_suites:
            from great_expectations.core import ExpectationSuite

            items = {e["id"]: e for e in _expectation_items(self.raw)}
            entries = [items[i] for i in key]
            suite = ExpectationSuite(name=self.name, expectations=entries)
            if len(suite.expectations) != len(entries):  # GX logs and drops invalid entries
                raise ConfigError(
                    f"GX accepted {len(suite.expectations)} of {len(entries)} expectations",
                    where=self.source,
                )
            self._gx_suites[key] = suite
        return self._gx_suites[key]


def load_suite(path: str | Path) -> Suite:
    """Read and check a GX ExpectationSuite JSON file; every problem is one ConfigError.

    Refused: unreadable JSON, unknown expectation types, invalid kwargs (checked by GX's own
    models), types the streaming gate cannot evaluate exactly or route, `row_condition`, `mostly`
    below 1 on a routed expectation, and suite parameters (`$PARAMETER`).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"expectation suite {path} not found",
            fix="check validation.input_suite / validation.output_suite in params.yaml",
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"expectation suite is not valid JSON: {exc}", where=str(path)) from None
    return parse_suite(raw, str(path))


def parse_suite(raw: Any, source: str = "<suite>") -> Suite:
    """Like `load_suite`, for a suite already parsed from JSON (`source` names it in errors)."""
    if not isinstance(raw, dict):
        raise ConfigError("an expectation suite must be a JSON object", where=source)
    raw = dict(raw)
    if not raw.get("name"):
        raw["name"] = Path(source).stem or "suite"
    if not isinstance(raw.get("expectations"), list):
        raise ConfigError(
            'an expectation suite needs an "expectations" list (GX ExpectationSuite JSON)',
            where=source,
        )
    if not raw["expectations"]:
        raise ConfigError(
            "the suite has no expectations: a gate that checks nothing cannot fail",
            where=source,
        )
    return Suite(raw, source)


def _expectation_items(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The suite's expectation dicts, each with an id (stable: derived from name and position)."""
    items = []
    for i, item in enumerate(raw["expectations"]):
        item = dict(item)
        item.setdefault("id", str(uuid.uuid5(uuid.NAMESPACE_URL, f"{raw['name']}#{i}")))
        items.append(item)
    return items


def _classify(raw: dict[str, Any], source: str) -> tuple[ExpectationSpec, ...]:
    specs = []
    problems: list[ConfigError] = []
    seen_ids: set[str] = set()
    for i, item in enumerate(_expectation_items(raw)):
        try:
            specs.append(_spec(i, item, source, seen_ids))
        except ConfigError as exc:  # keep going: one message lists every expectation to fix
            problems.append(exc)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        lines = [f"  {p.where.removeprefix(source + ', ')}: {p.what}" for p in problems]
        raise ConfigError(
            f"{len(problems)} of {len(specs) + len(problems)} expectations cannot be used:\n"
            + "\n".join(lines)
            + "\n",
            where=source,
            fix=_SUPPORTED_HINT,
        )
    return tuple(specs)


def _spec(i: int, item: dict[str, Any], source: str, seen_ids: set[str]) -> ExpectationSpec:
    """One expectation, checked and classified, or a ConfigError saying why it cannot be used."""
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )
    from great_expectations.expectations.registry import list_registered_expectation_implementations

    where = f"{source}, expectation #{i}"

    def bad(problem: str, where: str = where) -> ConfigError:
        return ConfigError(problem, where=where, fix=_SUPPORTED_HINT)

    if not isinstance(item.get("type"), str) or not isinstance(item.get("kwargs"), dict):
        raise bad('each expectation needs a "type" string and a "kwargs" object')
    etype, kwargs = item["type"], item["kwargs"]
    where = f"{source}, expectation #{i} ({etype})"
    if item["id"] in seen_ids:
        raise bad(f"duplicate expectation id {item['id']!r}", where)
    seen_ids.add(item["id"])
    if _has_parameter(kwargs):
        raise bad("suite parameters ($PARAMETER) are not supported: write the values", where)
    try:
        config = ExpectationConfiguration(**{k: v for k, v in item.items() if k != "id"})
        expectation = config.to_domain_obj()
    except Exception as exc:  # GX raises pydantic, KeyError, its own types...
        message = getattr(exc, "message", None) or str(exc)
        if "not found" in message and etype in message:
            known = list_registered_expectation_implementations()
            close = difflib.get_close_matches(etype, known, n=1, cutoff=0.8)
            message = f"unknown expectation type {etype!r}" + (
                f" (did you mean {close[0]!r}?)" if close else ""
            )
        raise bad(f"GX rejects this expectation: {message}", where) from None
    if etype in SCHEMA_TYPES:
        kind: Kind = "schema"
    elif etype in ROW_TYPES:
        kind = "row"
    elif etype in AGGREGATE_TYPES:
        kind = "aggregate"
    else:
        raise bad(
            "valid GX, but not supported by the streaming gate: neither a row-level check "
            "it can route to quarantine nor an aggregate it can merge exactly across batches",
            where,
        )
    if getattr(expectation, "row_condition", None):
        raise bad("row_condition is not supported by the streaming gate", where)
    mostly = getattr(expectation, "mostly", 1.0)
    if mostly is not None and mostly < 1.0:
        raise bad(
            f"mostly={mostly} is not supported: every unexpected row is quarantined; tolerate "
            "bad rows with validation.max_quarantine_fraction instead",
            where,
        )
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    if isinstance(lo, int | float) and isinstance(hi, int | float) and lo > hi:
        raise bad(f"min_value {lo} is greater than max_value {hi}", where)
    if etype in ROW_TYPES | _COLUMN_STATS and not kwargs.get("column"):
        raise bad("a column expectation needs kwargs.column", where)
    severity = str(getattr(expectation.severity, "value", expectation.severity or "critical"))
    return ExpectationSpec(i, item["id"], etype, kwargs, kind, severity, _label(etype, kwargs))


_SUPPORTED_HINT = (
    "see validation/README.md for the supported expectation types "
    f"(schema: {len(SCHEMA_TYPES)}, row-level: {len(ROW_TYPES)}, aggregate: {len(AGGREGATE_TYPES)})"
)


def _has_parameter(value: Any) -> bool:
    if isinstance(value, dict):
        return "$PARAMETER" in value or any(_has_parameter(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_parameter(v) for v in value)
    return False


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return "" if value is None else str(value)


def _label(etype: str, kw: dict[str, Any]) -> str:
    """A short, stable description: the quarantine reason and the report's row title."""
    col = kw.get("column")
    args: list[str] = [str(col)] if col is not None else []
    if "min_value" in kw or "max_value" in kw:
        rng = f"{_fmt(kw.get('min_value'))}..{_fmt(kw.get('max_value'))}"
        strict = [s for s in ("strict_min", "strict_max") if kw.get(s)]
        prefix = "len " if "lengths" in etype else ""
        args.append(prefix + rng + (f" {' '.join(strict)}" if strict else ""))
    if "value_set" in kw:
        values = list(kw["value_set"] or [])
        shown = ", ".join(_fmt(v) for v in values[:6])
        args.append("{" + shown + (f", ... +{len(values) - 6}" if len(values) > 6 else "") + "}")
    if "regex" in kw:
        args.append(f"/{kw['regex']}/")
    if "value" in kw:
        args.append(("len == " if "lengths" in etype else "== ") + _fmt(kw["value"]))
    if "type_" in kw:
        args.append(str(kw["type_"]))
    if "type_list" in kw:
        args.append("|".join(map(str, kw["type_list"] or [])))
    if "column_set" in kw or "column_list" in kw:
        cols = kw.get("column_set") or kw.get("column_list") or []
        args.append(f"{len(cols)} columns" + (", exact" if kw.get("exact_match") else ""))
    return f"{etype}({', '.join(args)})"


# --------------------------------------------------------------------------------------------
# GX: one ephemeral context per process


_GX_LOCK = threading.Lock()
_GX_BATCH_DEFINITION: Any = None


def _gx_batch_definition() -> Any:
    """The process's GX batch definition over an in-memory dataframe asset (built once)."""
    global _GX_BATCH_DEFINITION
    with _GX_LOCK:
        if _GX_BATCH_DEFINITION is None:
            import great_expectations as gx
            import great_expectations.execution_engine.pandas_execution_engine as gx_pandas
            from great_expectations.data_context.types.base import ProgressBarsConfig

            # GX fingerprints every batch (hash_pandas_object + md5 over all cells, twice per
            # `Batch.validate`): ~0.35 s per 500k rows, for metadata we never read. Frames above
            # this size threshold skip it; 0 skips it always. Validation results are unchanged.
            if hasattr(gx_pandas, "HASH_THRESHOLD"):
                gx_pandas.HASH_THRESHOLD = 0
            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(
                globally=False, metric_calculations=False
            )
            with contextlib.suppress(Exception):  # analytics may be absent from this build
                context.enable_analytics(False)
            source = context.data_sources.add_pandas("batchscore")
            asset = source.add_dataframe_asset("batch")
            _GX_BATCH_DEFINITION = asset.add_batch_definition_whole_dataframe("whole")
        return _GX_BATCH_DEFINITION


def _run_gx(suite: Suite, df: pd.DataFrame) -> dict[str, Any]:
    """Validate one batch with GX; results keyed by expectation id (GX reorders them).

    GX drops the nulls of a column before a null-skipping map expectation by filtering the
    *whole* frame (every column copied, ~0.2 us per row and column with nulls). So expectations
    on columns that hold nulls in this batch run in a second call on just those columns: same
    values, same GX code, a fraction of the copying. Everything else runs on the full batch.
    """
    narrow_cols = sorted(
        {
            s.column
            for s in suite.gx_specs
            if s.kind == "row"
            and s.type not in _NULL_TYPES
            and s.column in df.columns
            and df[s.column].hasnans
        }
    )
    narrow = tuple(
        s.id
        for s in suite.gx_specs
        if s.kind == "row" and s.type not in _NULL_TYPES and s.column in narrow_cols
    )
    wide = tuple(s.id for s in suite.gx_specs if s.id not in narrow)
    results: dict[str, Any] = {}
    for ids, frame in ((wide, df), (narrow, df[narrow_cols] if narrow else None)):
        if not ids:
            continue
        batch = _gx_batch_definition().get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(suite.gx_suite(ids), result_format=RESULT_FORMAT)
        results.update({r.expectation_config.id: r for r in result.results})
    return results


_NULL_TYPES = frozenset({"expect_column_values_to_not_be_null", "expect_column_values_to_be_null"})


# --------------------------------------------------------------------------------------------
# Row masks: the same semantics as GX's pandas metrics, vectorized, returning WHICH rows fail.
# GX counts; a mask locates. It is computed only where GX counted unexpected rows (clean data
# pays for GX alone) and must agree with GX's count.


def _between(values: Any, kw: dict[str, Any]) -> Any:
    lo, hi = kw.get("min_value"), kw.get("max_value")
    ok = None
    if lo is not None:
        ok = (values > lo) if kw.get("strict_min") else (values >= lo)
    if hi is not None:
        upper = (values < hi) if kw.get("strict_max") else (values <= hi)
        ok = upper if ok is None else ok & upper
    return ok


def _row_mask(spec: ExpectationSpec, column: pd.Series) -> tuple[np.ndarray, int]:
    """(unexpected rows, missing count) for one routed expectation on one column."""
    kw, etype = spec.kwargs, spec.type
    isnull = column.isna().to_numpy()
    if etype == "expect_column_values_to_not_be_null":
        return isnull, 0
    if etype == "expect_column_values_to_be_null":
        return ~isnull, 0
    missing = int(isnull.sum())
    present = ~isnull
    if etype == "expect_column_values_to_be_between":
        if column.dtype.kind in "iuf":  # numpy numbers: NaN compares False, masked by `present`
            ok = _between(column.to_numpy(), kw)
        else:
            lo, hi = kw.get("min_value"), kw.get("max_value")
            if isinstance(column.dtype, pd.DatetimeTZDtype) or column.dtype.kind == "M":
                kw = {**kw, "min_value": _when(lo), "max_value": _when(hi)}
            inside = _between(column[present], kw).to_numpy(dtype=bool, na_value=True)
            out = np.zeros(len(column), bool)
            out[np.flatnonzero(present)[~inside]] = True  # positional: any index works
            return out, missing
        return present & ~np.asarray(ok, dtype=bool), missing
    if etype in ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set"):
        value_set = kw.get("value_set")
        if value_set is None:
            return np.zeros(len(column), bool), missing
        if etype.endswith("not_be_in_set") and pd.api.types.is_datetime64_any_dtype(column):
            from great_expectations.expectations.metrics.util import parse_value_set

            value_set = parse_value_set(value_set)
        inside = column.isin(value_set).to_numpy(dtype=bool, na_value=False)
        return present & (inside if etype.endswith("not_be_in_set") else ~inside), missing
    sub = column[present].astype(str)
    if etype in ("expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex"):
        hit = sub.str.contains(kw["regex"]).to_numpy(dtype=bool, na_value=False)
        bad_sub = hit if "not_match" in etype else ~hit
    else:  # value lengths
        lengths = sub.str.len().to_numpy()
        if etype == "expect_column_value_lengths_to_equal":
            bad_sub = lengths != kw["value"]
        else:
            bad_sub = ~np.asarray(_between(lengths, kw), dtype=bool)
    out = np.zeros(len(column), bool)
    out[np.flatnonzero(present)[bad_sub]] = True
    return out, missing


def _when(value: Any) -> Any:
    if isinstance(value, str):
        from dateutil.parser import parse

        return parse(value)
    return value


# --------------------------------------------------------------------------------------------
# Streaming state


@dataclass
class ExpectationState:
    """One expectation's partial result in one shard (JSON-serialisable)."""

    index: int
    batches_evaluated: int = 0
    batches_failed: int = 0
    element_count: int = 0
    unexpected_count: int = 0
    missing_count: int = 0
    gx_unexpected_count: int = 0
    rows_quarantined: int = 0
    examples: list[Any] = field(default_factory=list)
    example_ids: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    observed: Any = None
    # column statistics over rows that will be scored (aggregate kind)
    rows: int = 0
    non_null: int = 0
    total: float | int = 0
    minimum: float | int | None = None
    maximum: float | int | None = None

    def add_error(self, message: str) -> None:
        if message not in self.errors and len(self.errors) < 5:
            self.errors.append(message)


@dataclass
class GateState:
    """One shard's gate result: picklable and JSON-serialisable (`to_json` / `from_json`).

    The sorted ID hashes are not in here (8 bytes a row): take them from `gate.id_hashes()`.
    """

    suite_name: str
    suite_digest: str
    id_column: str | None
    id_kind: str = "none"  # "int" (exact, invertible hashes), "hash", or "none"
    rows: int = 0
    rows_quarantined: int = 0  # flagged by this gate or already quarantined by the caller
    rows_flagged: int = 0  # flagged by this gate's critical row-level expectations
    batches: int = 0
    columns: list[str] | None = None
    dtypes: dict[str, str] = field(default_factory=dict)
    expectations: list[ExpectationState] = field(default_factory=list)
    reason_counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(
        default_factory=lambda: {"gx_seconds": 0.0, "mask_seconds": 0.0, "hash_seconds": 0.0}
    )

    def to_json(self) -> dict[str, Any]:
        return _json_safe(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GateState:
        data = dict(data)
        exps = []
        for e in data.get("expectations", []):
            e = dict(e)
            for key in ("total", "minimum", "maximum"):  # non-finite floats travel as text
                if isinstance(e.get(key), str):
                    e[key] = float(e[key])
            exps.append(ExpectationState(**e))
        data["expectations"] = exps
        return cls(**data)


@dataclass
class BatchOutcome:
    """Which rows of a batch failed a critical row-level expectation, and why."""

    bad_mask: np.ndarray  # bool, len(df)
    reasons: np.ndarray  # object array of str, aligned with df[bad_mask]
    rows: int
    gx_seconds: float
    mask_seconds: float

    @property
    def bad_count(self) -> int:
        return int(self.bad_mask.sum())


class StreamingGate:
    """Validates one shard batch by batch; `finish()` gives the shard's mergeable state.

    Call `check_batch` with batches of `validation.batch_rows` rows (GX costs a fixed ~0.2 s per
    call, whatever the size), after the data contract has typed the columns. Memory is one batch
    plus 8 bytes per ID seen (the sorted hashes of this shard).
    """

    def __init__(self, suite: Suite, id_column: str | None = None, *, fail_fast: bool = True):
        if id_column and suite.unique_column and suite.unique_column != id_column:
            raise ConfigError(
                f"suite {suite.name!r} checks uniqueness of {suite.unique_column!r} but the ID "
                f"column is {id_column!r}",
                where=suite.source,
                fix="make expect_column_values_to_be_unique name the ID column (data.id_column)",
            )
        self.suite = suite
        self.id_column = id_column or suite.unique_column
        self.fail_fast = fail_fast
        self._ids = IdHashCollector()
        self._state = GateState(
            suite.name,
            suite.digest,
            self.id_column,
            expectations=[ExpectationState(s.index) for s in suite.specs],
        )
        self._finished = False

    # ---- per batch

    def check_batch(
        self, df: pd.DataFrame, already_quarantined: np.ndarray | None = None
    ) -> BatchOutcome:
        """Validate one batch. Rows the caller already quarantined (e.g. unparseable values)
        count toward the quarantined share and are left out of column statistics.

        Raises QualityGateError on a schema failure when `fail_fast` (the default), and
        GateConsistencyError if a mask disagrees with GX.
        """
        if self._finished:
            raise RuntimeError("check_batch after finish()")
        st, n = self._state, len(df)
        if already_quarantined is not None and already_quarantined.shape != (n,):
            raise ValueError(
                f"already_quarantined has shape {already_quarantined.shape}, not ({n},)"
            )
        if st.columns is None:
            st.columns = [str(c) for c in df.columns]
            st.dtypes = {str(c): str(t) for c, t in df.dtypes.items()}
        t0 = time.perf_counter()
        try:
            results = _run_gx(self.suite, df) if self.suite.gx_specs else {}
        except Exception as exc:  # GX itself failed, not one expectation: say so, keep the cause
            raise QualityGateError(
                f"GX could not validate a batch of {n} rows with suite {self.suite.name!r}: "
                f"{type(exc).__name__}: {exc}",
                where=self.suite.source,
                fix="check the batch's columns and dtypes (duplicate names, nested objects)",
            ) from exc
        t_gx = time.perf_counter() - t0
        t1 = time.perf_counter()
        problems: list[str] = []
        flagged: list[tuple[ExpectationSpec, np.ndarray]] = []
        for spec in self.suite.gx_specs:
            acc = st.expectations[spec.index]
            res = results.get(spec.id)
            error = _gx_error(spec, res, df)
            if error:
                acc.add_error(error)
                problems.append(error)
                continue
            acc.batches_evaluated += 1
            if spec.kind == "schema":
                if not res.success:
                    acc.batches_failed += 1
                    message = _schema_message(spec, res, df)
                    acc.observed = _jsonable(res.result.get("observed_value"))
                    acc.add_error(message)
                    if spec.critical:
                        problems.append(message)
                continue
            gx_count = res.result.get("unexpected_count")
            gx_missing = 0 if spec.type in _NULL_TYPES else res.result.get("missing_count")
            if gx_count == 0 and gx_missing is not None:  # nothing to locate: skip the mask
                mask, count, missing = None, 0, int(gx_missing)
            else:
                mask, missing = _row_mask(spec, df[spec.column])
                count = int(mask.sum())
                if gx_count is None or count != int(gx_count):
                    raise GateConsistencyError(
                        f"{spec.label}: our mask flags {count} rows, GX counts {gx_count} "
                        f"unexpected in this batch of {n} rows "
                        f"(column dtype {df[spec.column].dtype})",
                        where=self.suite.source,
                        fix="a bug in batchscore's gate or a GX behaviour change; pin "
                        "great-expectations to the tested version and report it",
                    )
            acc.element_count += n
            acc.unexpected_count += count
            acc.missing_count += missing
            acc.gx_unexpected_count += int(gx_count)
            if mask is not None and count:
                acc.batches_failed += 1
                self._examples(acc, df, spec.column, mask)
                if spec.critical:
                    flagged.append((spec, mask))
        if problems and self.fail_fast:
            raise _gate_error(self.suite, problems, "batch")
        bad = np.zeros(n, bool)
        reasons = np.empty(0, dtype=object)
        if flagged:
            bad = np.logical_or.reduce([m for _, m in flagged])
            reasons = self._reasons(flagged, bad)
            for spec, m in flagged:
                st.expectations[spec.index].rows_quarantined += int(m.sum())
        out_of_scoring = bad if already_quarantined is None else bad | already_quarantined
        self._aggregate(df, ~out_of_scoring if out_of_scoring.any() else None)
        t_mask = time.perf_counter() - t1
        st.rows += n
        st.batches += 1
        st.rows_flagged += int(bad.sum())
        st.rows_quarantined += int(out_of_scoring.sum())
        st.timings["gx_seconds"] += t_gx
        st.timings["mask_seconds"] += t_mask
        return BatchOutcome(bad, reasons, n, t_gx, t_mask)

    def _examples(self, acc: ExpectationState, df: pd.DataFrame, col: str, mask: np.ndarray):
        room = MAX_EXAMPLES - len(acc.examples)
        if room <= 0:
            return
        rows = np.flatnonzero(mask)[:room]
        acc.examples.extend(_jsonable(v) for v in df[col].iloc[rows].tolist())
        if self.id_column and self.id_column in df.columns:
            acc.example_ids.extend(_jsonable(v) for v in df[self.id_column].iloc[rows].tolist())

    def _reasons(
        self, flagged: list[tuple[ExpectationSpec, np.ndarray]], bad: np.ndarray
    ) -> np.ndarray:
        """One "; "-joined reason per bad row, built once per distinct combination of failures."""
        rows = np.flatnonzero(bad)
        matrix = np.stack([m[rows] for _, m in flagged], axis=1)
        combos, inverse = np.unique(matrix, axis=0, return_inverse=True)
        labels = np.array(
            ["; ".join(flagged[j][0].label for j in np.flatnonzero(c)) for c in combos],
            dtype=object,
        )
        counts = np.bincount(inverse.ravel(), minlength=len(combos))
        rc = self._state.reason_counts
        for label, c in zip(labels, counts, strict=True):
            key = label if label in rc or len(rc) < MAX_REASON_KINDS else "(other combinations)"
            rc[key] = rc.get(key, 0) + int(c)
        return labels[inverse.ravel()]

    def _aggregate(self, df: pd.DataFrame, keep: np.ndarray | None) -> None:
        st = self._state
        if self.suite.unique_column:
            t = time.perf_counter()
            if self.suite.unique_column in df.columns:
                self._ids.add(df[self.suite.unique_column])
            st.timings["hash_seconds"] += time.perf_counter() - t
        stats: dict[str, tuple[int, int, Any, Any, Any] | str] = {}
        for spec in self.suite.specs:
            if spec.kind != "aggregate":
                continue
            acc = st.expectations[spec.index]
            col = spec.column
            if col is not None and col not in df.columns:
                acc.add_error(_missing_column(spec, df))
                continue
            acc.batches_evaluated += 1
            if spec.type not in _COLUMN_STATS:
                continue
            if col not in stats:
                stats[col] = _column_stats(df[col], keep)
            s = stats[col]
            if isinstance(s, str):
                acc.add_error(f"{spec.label}: {s}")
                continue
            rows, non_null, total, lo, hi = s
            acc.rows += rows
            acc.non_null += non_null
            acc.total = acc.total + total
            if lo is not None:
                acc.minimum = lo if acc.minimum is None else min(acc.minimum, lo)
                acc.maximum = hi if acc.maximum is None else max(acc.maximum, hi)

    # ---- end of shard

    def finish(self) -> GateState:
        """This shard's partial state (call once, after the last batch)."""
        self._finished = True
        st = self._state
        if self.suite.unique_column:
            t = time.perf_counter()
            self._ids.sorted()
            st.timings["hash_seconds"] += time.perf_counter() - t
            st.id_kind = self._ids.kind
        return st

    def id_hashes(self) -> np.ndarray:
        """Sorted uint64 hashes of this shard's non-null IDs (empty if the suite has no
        uniqueness expectation); save with `uniqueness.save_part`."""
        return self._ids.sorted()


def _column_stats(
    column: pd.Series, keep: np.ndarray | None
) -> tuple[int, int, Any, Any, Any] | str:
    """(rows, non-null, sum, min, max) over the kept rows, or a reason it cannot be computed."""
    if column.dtype.kind not in "iufb":
        return f"column {column.name!r} has dtype {column.dtype}, not numeric"
    values = column.to_numpy()
    if keep is not None:
        values = values[keep]
    rows = len(values)
    if values.dtype.kind == "f":
        values = values[~np.isnan(values)]
    if not len(values):
        return rows, 0, 0, None, None
    if values.dtype.kind in "iub":
        return (
            rows,
            len(values),
            int(values.sum(dtype=np.int64)),
            int(values.min()),
            int(values.max()),
        )
    return rows, len(values), float(values.sum()), float(values.min()), float(values.max())


def _gx_error(spec: ExpectationSpec, res: Any, df: pd.DataFrame) -> str | None:
    """Why GX could not evaluate this expectation on this batch, or None."""
    if spec.column is not None and spec.column not in df.columns:
        return _missing_column(spec, df)
    if res is None:
        return f"{spec.label}: GX returned no result for it"
    text = _gx_exception(res.exception_info or {})
    if text is not None:
        return f"{spec.label}: GX could not evaluate it: {text[:300]}"
    return None


def _gx_exception(info: dict[str, Any]) -> str | None:
    """The exception message in a GX result, flat or keyed by failed metric (both occur)."""
    if info.get("raised_exception"):
        lines = str(info.get("exception_message") or "unknown error").strip().splitlines()
        return lines[0] if lines else "unknown error"
    for value in info.values():
        if isinstance(value, dict) and (found := _gx_exception(value)) is not None:
            return found
    return None


def _missing_column(spec: ExpectationSpec, df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    close = difflib.get_close_matches(str(spec.column), cols, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{spec.label}: column {spec.column!r} is not in the input{hint}"


def _schema_message(spec: ExpectationSpec, res: Any, df: pd.DataFrame) -> str:
    kw, cols = spec.kwargs, [str(c) for c in df.columns]
    if spec.type == "expect_table_columns_to_match_set":
        expected = list(kw.get("column_set") or [])
        missing = [c for c in expected if c not in cols]
        extra = [c for c in cols if c not in expected] if kw.get("exact_match", True) else []
        parts = []
        if missing:
            parts.append(f"missing column(s) {missing}")
        if extra:
            parts.append(f"unexpected column(s) {extra}")
        renames = [
            f"{m!r} -> {c[0]!r}"
            for m in missing
            if (c := difflib.get_close_matches(m, extra, n=1, cutoff=0.6))
        ]
        if renames:
            parts.append(f"renamed? {', '.join(renames)}")
        return f"{spec.label}: {'; '.join(parts) or 'columns differ'}"
    if spec.type == "expect_table_columns_to_match_ordered_list":
        return f"{spec.label}: columns are {cols}, expected {list(kw.get('column_list') or [])}"
    if spec.column is not None and "type" in spec.type:
        wanted = kw.get("type_") or kw.get("type_list")
        observed = res.result.get("observed_value") or df[spec.column].dtype
        return (
            f"{spec.label}: column {spec.column!r} has type {observed} "
            f"(pandas dtype {df[spec.column].dtype}), expected {wanted}"
        )
    observed = res.result.get("observed_value")
    return f"{spec.label}: observed {observed!r}"


# --------------------------------------------------------------------------------------------
# Merge


@dataclass
class ExpectationResult:
    """One expectation's result over the whole input."""

    index: int
    id: str
    type: str
    kwargs: dict[str, Any]
    column: str | None
    kind: str
    severity: str
    how: str  # "gx-per-batch" | "exact-merged"
    label: str
    evaluated: bool
    success: bool
    element_count: int = 0
    unexpected_count: int = 0
    missing_count: int = 0
    unexpected_percent: float = 0.0
    rows_quarantined: int = 0
    gx_unexpected_count: int | None = None
    observed_value: Any = None
    examples: list[Any] = field(default_factory=list)
    example_ids: list[Any] = field(default_factory=list)
    message: str | None = None


@dataclass
class QualityVerdict:
    """The gate's answer for a whole input: `success`, and why not."""

    suite_name: str
    suite_source: str
    success: bool
    table_failures: list[str]
    warnings: list[str]
    expectations: list[ExpectationResult]
    rows_in: int
    rows_quarantined: int
    max_quarantine_fraction: float
    evaluated_expectations: int
    suite_size: int
    batches: int
    reason_counts: dict[str, int]
    timings: dict[str, float]

    @property
    def quarantine_fraction(self) -> float:
        return self.rows_quarantined / self.rows_in if self.rows_in else 0.0

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["quarantine_fraction"] = self.quarantine_fraction
        return _json_safe(data)

    def raise_for_failure(self) -> None:
        """Raise one QualityGateError listing every table-level problem, if any."""
        if not self.success:
            raise _gate_error(self.suite_source, self.table_failures, "input", self)


def merge_verdict(
    suite: Suite,
    states: Sequence[GateState | dict[str, Any]],
    id_hash_arrays: Sequence[np.ndarray] = (),
    max_quarantine_fraction: float = 0.05,
    *,
    extra_quarantined: int = 0,
) -> QualityVerdict:
    """Join shard states into one verdict; aggregates are computed exactly here.

    `id_hash_arrays`: each shard's `gate.id_hashes()` (arrays or `np.memmap`s from
    `uniqueness.load_parts`); needed when the suite checks uniqueness. `extra_quarantined`:
    rows rejected before they reached the gate (e.g. malformed CSV lines); they count in
    rows_in and in the quarantined share.
    """
    sts = [s if isinstance(s, GateState) else GateState.from_json(s) for s in states]
    failures: list[str] = []
    warnings: list[str] = []
    stale = sorted({s.suite_digest for s in sts} - {suite.digest})
    if stale:
        failures.append(
            f"{len(stale)} shard(s) were validated with a different version of suite "
            f"{suite.name!r}; re-run them"
        )
    rows_in = sum(s.rows for s in sts) + extra_quarantined
    rows_q = sum(s.rows_quarantined for s in sts) + extra_quarantined
    batches = sum(s.batches for s in sts)
    if rows_in == 0:
        failures.append(
            "the input has 0 rows: nothing to score (every row-level expectation passes "
            "vacuously on an empty table, so this is checked on its own)"
        )
    results = []
    unscorable: list[str] = []  # column statistics with no scored row: one line, not six
    for spec in suite.specs:
        accs = [s.expectations[spec.index] for s in sts if len(s.expectations) > spec.index]
        res = (
            _merge_aggregate(spec, accs, sts, rows_in - extra_quarantined, id_hash_arrays)
            if spec.kind == "aggregate"
            else _merge_gx(spec, accs, batches)
        )
        results.append(res)
        no_rows = spec.type in _COLUMN_STATS and res.evaluated and not res.element_count
        if no_rows and spec.critical:
            unscorable.append(spec.label)
        elif res.evaluated and not res.success and res.kind != "row":
            (failures if spec.critical else warnings).append(res.message or spec.label)
        elif res.kind == "row" and res.unexpected_count and not spec.critical:
            warnings.append(f"{spec.label}: {res.unexpected_count} unexpected row(s) (not routed)")
    if unscorable:
        failures.append(
            f"{len(unscorable)} column statistic(s) have no scored rows to be computed on: "
            + "; ".join(unscorable)
        )
    evaluated = sum(r.evaluated for r in results)
    if evaluated != len(suite):
        missing = [r for r in results if not r.evaluated]
        detail = "; ".join(r.message or r.label for r in missing[:5])
        failures.append(
            f"suite {suite.name}: {len(suite)} expectations, only {evaluated} evaluated"
            + (f" (not evaluated: {detail}{' ...' if len(missing) > 5 else ''})" if detail else "")
        )
    reason_counts: dict[str, int] = {}
    for s in sts:
        for k, v in s.reason_counts.items():
            reason_counts[k] = reason_counts.get(k, 0) + v
    if rows_in and rows_q / rows_in > max_quarantine_fraction:
        top = sorted(reason_counts.items(), key=lambda kv: -kv[1])[:3]
        failures.append(
            f"{rows_q} of {rows_in} rows ({rows_q / rows_in:.2%}) quarantined, above "
            f"validation.max_quarantine_fraction={max_quarantine_fraction:g}"
            + (f"; top reasons: {'; '.join(f'{k} x{v}' for k, v in top)}" if top else "")
        )
    timings = {k: 0.0 for k in ("gx_seconds", "mask_seconds", "hash_seconds")}
    for s in sts:
        for k, v in s.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    return QualityVerdict(
        suite.name,
        suite.source,
        not failures,
        failures,
        warnings,
        results,
        rows_in,
        rows_q,
        max_quarantine_fraction,
        evaluated,
        len(suite),
        batches,
        dict(sorted(reason_counts.items(), key=lambda kv: -kv[1])),
        timings,
    )


def _base(spec: ExpectationSpec, evaluated: bool, success: bool, **kw: Any) -> ExpectationResult:
    return ExpectationResult(
        spec.index,
        spec.id,
        spec.type,
        spec.kwargs,
        spec.column,
        spec.kind,
        spec.severity,
        spec.how,
        spec.label,
        evaluated,
        success,
        **kw,
    )


def _merge_gx(
    spec: ExpectationSpec, accs: list[ExpectationState], batches: int
) -> ExpectationResult:
    errors = [e for a in accs for e in a.errors]
    evaluated_batches = sum(a.batches_evaluated for a in accs)
    evaluated = batches > 0 and evaluated_batches == batches
    if spec.kind == "schema":
        failed = sum(a.batches_failed for a in accs)
        observed = next((a.observed for a in accs if a.observed is not None), None)
        message = None
        if not evaluated:
            message = errors[0] if errors else f"{spec.label}: no batch was validated"
        elif failed:
            message = errors[0] if errors else spec.label
        return _base(
            spec,
            evaluated,
            evaluated and not failed,
            observed_value=observed,
            message=message,
            unexpected_count=failed,
        )
    element = sum(a.element_count for a in accs)
    unexpected = sum(a.unexpected_count for a in accs)
    missing = sum(a.missing_count for a in accs)
    examples = [x for a in accs for x in a.examples][:MAX_EXAMPLES]
    ids = [x for a in accs for x in a.example_ids][:MAX_EXAMPLES]
    pct = 100.0 * unexpected / (element - missing) if element - missing > 0 else 0.0
    if not evaluated:
        message = errors[0] if errors else f"{spec.label}: no batch was validated"
    elif unexpected:
        message = f"{spec.label}: {unexpected} unexpected row(s), e.g. {examples[:5]}"
    else:
        message = None
    return _base(
        spec,
        evaluated,
        evaluated and unexpected == 0,
        element_count=element,
        unexpected_count=unexpected,
        missing_count=missing,
        unexpected_percent=pct,
        rows_quarantined=sum(a.rows_quarantined for a in accs),
        gx_unexpected_count=sum(a.gx_unexpected_count for a in accs),
        examples=examples,
        example_ids=ids,
        message=message,
    )


def _in_range(value: float | None, kw: dict[str, Any]) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    ok = _between(value, kw)
    return True if ok is None else bool(ok)


def _merge_aggregate(
    spec: ExpectationSpec,
    accs: list[ExpectationState],
    states: list[GateState],
    rows: int,
    id_hash_arrays: Sequence[np.ndarray],
) -> ExpectationResult:
    errors = [e for a in accs for e in a.errors]
    if errors:
        return _base(spec, False, False, message=errors[0])
    kw = spec.kwargs
    if spec.type in ("expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"):
        ok = rows == kw["value"] if "value" in kw else _in_range(rows, kw)
        expected = f"exactly {_fmt(kw['value'])}" if "value" in kw else _range_text(kw)
        return _base(
            spec,
            True,
            ok,
            element_count=rows,
            observed_value=rows,
            message=None if ok else f"{spec.label}: the input has {rows} rows, expected {expected}",
        )
    if spec.type == "expect_column_values_to_be_unique":
        parts = list(id_hash_arrays)
        if len(parts) != len(states):
            raise ValueError(
                f"merge_verdict got {len(parts)} ID hash parts for {len(states)} shard states"
            )
        report = find_duplicates(parts)
        exact = all(s.id_kind in ("int", "none") for s in states)
        examples: list[Any] = (
            [int(v) for v in unmix64(np.array(report.examples, np.uint64)).view(np.int64)]
            if exact
            else [f"hash:{h:016x}" for h in report.examples]
        )
        message = None
        if not report.ok:
            message = (
                f"{spec.label}: {report.values} duplicated value(s) on {report.rows} rows, "
                f"e.g. {examples[:10]}"
            )
        return _base(
            spec,
            True,
            report.ok,
            element_count=report.total,
            unexpected_count=report.rows,
            observed_value=report.values,
            unexpected_percent=100.0 * report.rows / report.total if report.total else 0.0,
            examples=examples,
            message=message,
        )
    n_rows = sum(a.rows for a in accs)
    non_null = sum(a.non_null for a in accs)
    mins = [a.minimum for a in accs if a.minimum is not None]
    maxs = [a.maximum for a in accs if a.maximum is not None]
    totals = [a.total for a in accs]
    total: float | int = (
        sum(totals) if all(isinstance(t, int) for t in totals) else math.fsum(totals)
    )
    observed: float | int | None
    if spec.type == "expect_column_proportion_of_non_null_values_to_be_between":
        observed = non_null / n_rows if n_rows else None
    elif not non_null:
        observed = None
    elif spec.type == "expect_column_min_to_be_between":
        observed = min(mins)
    elif spec.type == "expect_column_max_to_be_between":
        observed = max(maxs)
    elif spec.type == "expect_column_sum_to_be_between":
        observed = total
    else:
        observed = total / non_null
    ok = _in_range(observed, kw)
    message = None
    if not ok:
        shown = "no values" if observed is None else f"{observed:.6g}"
        message = (
            f"{spec.label}: observed {shown} over {n_rows} scored rows "
            f"({non_null} non-null), expected {_range_text(kw)}"
        )
    return _base(
        spec,
        True,
        ok,
        element_count=n_rows,
        missing_count=n_rows - non_null,
        observed_value=observed,
        message=message,
    )


def _range_text(kw: dict[str, Any]) -> str:
    lo, hi = kw.get("min_value"), kw.get("max_value")
    parts = []
    if lo is not None:
        parts.append(f"{'>' if kw.get('strict_min') else '>='} {_fmt(lo)}")
    if hi is not None:
        parts.append(f"{'<' if kw.get('strict_max') else '<='} {_fmt(hi)}")
    return " and ".join(parts) or "anything"


def _gate_error(
    source: Suite | str,
    problems: Iterable[str],
    scope: str,
    verdict: QualityVerdict | None = None,
) -> QualityGateError:
    path = source.source if isinstance(source, Suite) else source
    name = source.name if isinstance(source, Suite) else (verdict.suite_name if verdict else path)
    problems = list(dict.fromkeys(problems))
    lines = [f"quality gate failed: suite {name!r} ({path}) found {len(problems)} problem(s)"]
    lines += [f"  - {p}" for p in problems]
    if verdict is not None:
        lines.append(
            f"  rows in: {verdict.rows_in}, quarantined: {verdict.rows_quarantined} "
            f"({verdict.quarantine_fraction:.2%}); expectations evaluated: "
            f"{verdict.evaluated_expectations}/{verdict.suite_size}"
        )
    elif scope == "batch":
        lines.append("  (found while validating a batch; nothing was scored from it)")
    return QualityGateError(
        "\n".join(lines),
        fix="fix the input (see the quality report for failing values), or, if the data is "
        f"right and the suite is out of date, update {path}",
    )


def _json_safe(value: Any) -> Any:
    """Strict-JSON copy of nested dicts/lists (no NaN/inf literals, no numpy types)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, str):
        return value
    return _jsonable(value)


def _jsonable(value: Any) -> Any:
    """JSON-safe example value: NaN/inf as text, numpy as Python, long text cut to 200 chars."""
    if value is None or isinstance(value, bool | str):
        return value[:200] if isinstance(value, str) else value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, int):
        return value
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | np.datetime64):
        return str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return re.sub(r"\s+", " ", str(value))[:200]


__all__ = [
    "AGGREGATE_TYPES",
    "ROW_TYPES",
    "SCHEMA_TYPES",
    "BatchOutcome",
    "ExpectationResult",
    "ExpectationSpec",
    "GateConsistencyError",
    "GateState",
    "QualityVerdict",
    "StreamingGate",
    "Suite",
    "load_suite",
    "merge_verdict",
    "parse_suite",
]
