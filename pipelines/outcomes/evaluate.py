"""A run's realized performance, recomputed from all its label deliveries, in any order.

The union of the deliveries' distinct (ID, label) pairs is what counts: an ID labelled the same in
two deliveries counts once; an ID with two different labels is a conflict, excluded and counted,
whatever the order the deliveries came in. Deliveries joined to an earlier version of a run that
was since replaced (`--overwrite`) are listed as stale and left out. Rows are bucketed by ID hash
again, so this too holds about one bucket in memory.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.outcomes.challenger import (
    PREFIX,
    challenger_frame,
    delivery_columns,
    null_columns,
)
from pipelines.outcomes.classes import class_index
from pipelines.outcomes.deliveries import list_deliveries
from pipelines.outcomes.ids import bucket_count, bucket_of, id_hash
from pipelines.outcomes.metrics import BinaryMetrics, MulticlassMetrics
from pipelines.outcomes.partition import Buckets
from pipelines.outcomes.published import RunScores, local_copy, read_manifest
from pipelines.outcomes.settings import LabelsSettings
from pipelines.outcomes.store import Keys, Store

SCHEMA_VERSION = 1
MAX_SEGMENT_VALUES = 20  # per segment column; further values are pooled as OTHER
OTHER = "(other)"


def evaluate_run(
    store: Store,
    keys: Keys,
    run: RunScores,
    settings: LabelsSettings,
    segments: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The run's evaluation from every committed delivery (plain JSON types)."""
    markers = list_deliveries(store, keys, run.model, run.run_key)
    current = [m for m in markers if m.get("run_content_sha256") == run.content_sha256]
    stale = [m["sha256"] for m in markers if m not in current]
    carried = sorted({s for m in current for s in m.get("segments", []) if s in segments})
    with tempfile.TemporaryDirectory(prefix="batchscore-eval-") as tmp:
        folder = Path(tmp)
        acc = _accumulate(store, keys, run, current, carried, settings, folder)
        metrics, segment_metrics = acc.overall.result(), _segment_results(acc.by_segment)
        shadow = _challenger_block(run, acc, current)
    labelled, counts = acc.overall.n, acc.counts
    evaluation = {
        "schema_version": SCHEMA_VERSION,
        "run": run.ref,
        "model": run.model,
        "run_key": run.run_key,
        "run_content_sha256": run.content_sha256,
        "kind": run.kind,
        "classes": list(run.classes),
        "positive_class": run.positive_class,
        "rows_scored": run.rows_scored,
        "labelled": labelled,
        "coverage": labelled / run.rows_scored if run.rows_scored else None,
        "conflicting_ids": counts["conflicting_ids"],
        "conflicting_rows": counts["conflicting_rows"],
        "deliveries": [_delivery_summary(m) for m in current],
        "stale_deliveries": stale,
        "metrics": metrics,
        "segments": segment_metrics,
        "estimated": estimated_for_run(store, keys, run.model, run.run_key),
    }
    return evaluation if shadow is None else {**evaluation, "challenger": shadow}


Metrics = BinaryMetrics | MulticlassMetrics


@dataclass
class Accumulated:
    """What the buckets added up to: the champion's metrics overall and per segment, the
    challenger's (None without one) on the same accepted rows, and the counts."""

    overall: Metrics
    by_segment: dict[tuple[str, str], Metrics]
    challenger: Metrics | None
    counts: Counter[str]


def _challenger_block(
    run: RunScores, acc: Accumulated, markers: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The challenger's realized metrics, on the same accepted (ID, label) pairs as the
    champion's minus the rows it did not score; None for a run without a challenger."""
    if acc.challenger is None:
        return None
    return {
        "model": run.challenger_model,
        "metrics": acc.challenger.result(),
        "rows": acc.challenger.n,
        "unscored": acc.counts["challenger_unscored"],
        # joined before challenger columns were stored: their rows count as unscored
        "deliveries_without_challenger": [
            m["sha256"]
            for m in markers
            if "challenger_joined_rows" not in (m.get("run_counts") or {})
        ],
    }


def _accumulate(
    store: Store,
    keys: Keys,
    run: RunScores,
    markers: list[dict[str, Any]],
    segments: list[str],
    settings: LabelsSettings,
    folder: Path,
) -> Accumulated:
    """Bucket the deliveries' rows, then feed the accepted ones of each bucket to the metrics
    (the challenger's: the accepted rows it scored; the others are counted)."""
    rows = sum(int(m.get("rows") or 0) for m in markers)
    buckets = bucket_count(rows, settings.bucket_rows, settings.max_buckets)
    parts = _partition(store, keys, run, markers, segments, buckets, settings, folder)
    block = max(1_024, settings.bucket_rows // buckets)
    overall = _metrics(run, settings, folder, "all", block)
    by_segment: dict[tuple[str, str], Metrics] = {}
    shadow = _metrics(run, settings, folder, "challenger", block) if run.has_challenger else None
    counts: Counter[str] = Counter()
    for b in range(buckets):
        frame = _accepted(parts.read(b).to_pandas(), counts)
        parts.drop(b)
        _add(overall, run, frame)
        if shadow is not None and not frame.empty:
            scored = frame[PREFIX + "score"].notna()
            counts["challenger_unscored"] += int((~scored).sum())
            _add(shadow, run, challenger_frame(frame.loc[scored], run.proba_columns))
        for seg in segments:
            for value, rows_of in frame.groupby(_pooled(frame[seg], seg, by_segment)):
                key = (seg, str(value))
                if key not in by_segment:
                    name = f"seg{len(by_segment)}"
                    by_segment[key] = _metrics(run, settings, folder, name, block)
                _add(by_segment[key], run, rows_of)
    return Accumulated(overall, by_segment, shadow, counts)


def _metrics(
    run: RunScores, settings: LabelsSettings, folder: Path, name: str, block: int
) -> BinaryMetrics | MulticlassMetrics:
    if run.kind == "binary":
        return BinaryMetrics(folder, name, settings.calibration_bins, block)
    return MulticlassMetrics(len(run.classes))


def _partition(
    store: Store,
    keys: Keys,
    run: RunScores,
    markers: list[dict[str, Any]],
    segments: list[str],
    buckets: int,
    settings: LabelsSettings,
    folder: Path,
) -> Buckets:
    """Every delivery's rows into buckets by ID hash; segment columns a delivery lacks are null."""
    out: Buckets | None = None
    for marker in markers:
        key = keys.delivery_key(run.model, run.run_key, marker["sha256"], "parquet")
        path, temp = local_copy(store, key, folder)
        try:
            parquet = pq.ParquetFile(path)
            for batch in parquet.iter_batches(settings.batch_rows):
                table = pa.Table.from_batches([batch])
                for seg in segments:
                    if seg not in table.column_names:
                        table = table.append_column(seg, pa.nulls(len(table), pa.string()))
                keep = ["id", "label", "score", "predicted_class", *run.proba_columns, *segments]
                if run.has_challenger:
                    table = _with_challenger(table, run)
                    keep += delivery_columns(run.proba_columns)
                table = table.select(keep)
                hashes = id_hash(table.column("id").combine_chunks())
                table = table.append_column("h", pa.array(hashes))
                if out is None:
                    out = Buckets(folder, "eval", buckets, table.schema)
                out.add(table, bucket_of(hashes, buckets))
        finally:
            if temp:
                path.unlink(missing_ok=True)
    if out is None:
        schema = pa.schema([("id", pa.int64()), ("label", pa.string()), ("h", pa.uint64())])
        out = Buckets(folder, "eval", buckets, schema)
    out.close()
    return out


def _with_challenger(table: pa.Table, run: RunScores) -> pa.Table:
    """A delivery's rows with the challenger's columns: null in one stored before they were."""
    for name, column in null_columns(run.proba_columns, table.num_rows).items():
        if name not in table.column_names:
            table = table.append_column(name, column)
    return table


def _accepted(frame: pd.DataFrame, counts: Counter[str]) -> pd.DataFrame:
    """One row per ID whose deliveries agree on its label; conflicting IDs counted, dropped."""
    if frame.empty:
        return frame
    columns = [c for c in frame.columns if c != "h"]
    frame = frame.sort_values(["h", *columns], kind="stable", na_position="last")
    pairs = frame.drop_duplicates(["id", "label"])
    labels_per_id = pairs.groupby("id", sort=False)["label"].transform("size")
    conflict = labels_per_id > 1
    counts["conflicting_ids"] += int(pairs.loc[conflict, "id"].nunique())
    counts["conflicting_rows"] += int(conflict.sum())
    return pairs.loc[~conflict]


def _add(metrics: BinaryMetrics | MulticlassMetrics, run: RunScores, rows: pd.DataFrame) -> None:
    if rows.empty:
        return
    label = class_index(pa.array(rows["label"].astype(object)), run.classes)
    predicted = class_index(pa.array(rows["predicted_class"].astype(object)), run.classes)
    if isinstance(metrics, BinaryMetrics):
        positive = run.classes.index(run.positive_class or run.classes[1])
        score = rows["score"].to_numpy(dtype=np.float64)
        metrics.add(label == positive, score, predicted == positive)
    else:
        proba = rows.loc[:, list(run.proba_columns)].to_numpy(dtype=np.float64)
        metrics.add(label, predicted, proba)


def _pooled(values: pd.Series, seg: str, seen: dict[tuple[str, str], Any]) -> pd.Series:
    """Segment values as text; past MAX_SEGMENT_VALUES distinct ones, new values pool as OTHER."""
    text = values.astype(object).where(values.notna(), "(missing)").astype(str)
    known = {v for s, v in seen if s == seg}
    room = MAX_SEGMENT_VALUES - len(known)
    new = sorted(set(text) - known)
    pooled = set(new[max(room, 0) :])
    return text.where(~text.isin(pooled), OTHER)


def _segment_results(by_segment: dict[tuple[str, str], Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for (seg, value), metrics in sorted(by_segment.items()):
        out.setdefault(seg, {})[value] = metrics.result()
    return out


def _delivery_summary(marker: dict[str, Any]) -> dict[str, Any]:
    keys = ("sha256", "received_at", "rows", "source", "file_counts", "run_counts")
    return {k: marker.get(k) for k in keys}


def estimated_for_run(store: Store, keys: Keys, model: str, run_key: str) -> dict[str, Any] | None:
    """The manifest's `estimated_performance` (written by the scoring pass), if it has one."""
    manifest = read_manifest(store, keys, model, run_key)
    return (manifest or {}).get("estimated_performance")


def write_evaluation(store: Store, keys: Keys, evaluation: dict[str, Any]) -> dict[str, str]:
    """Write `labels/evaluation.json` and `evaluation.html` (replacing the previous ones)."""
    from pipelines.outcomes.page import evaluation_html

    model, run_key = evaluation["model"], evaluation["run_key"]
    json_key = keys.evaluation_key(model, run_key, "evaluation.json")
    html_key = keys.evaluation_key(model, run_key, "evaluation.html")
    store.put_bytes(json_key, json.dumps(evaluation, indent=2, sort_keys=True).encode())
    store.put_bytes(html_key, evaluation_html(evaluation).encode())
    return {"json": store.url(json_key), "html": store.url(html_key)}


def realized_for_run(store: Store, keys: Keys, model: str, run_key: str) -> dict[str, Any] | None:
    """The run's evaluation (`labels/evaluation.json`), or None before any labels arrived.

    `keys` is the module `pipelines.publish.keys` (see `outcomes.store`).
    """
    body = store.get_bytes(keys.evaluation_key(model, run_key, "evaluation.json"))
    return json.loads(body) if body else None
