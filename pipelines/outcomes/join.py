"""The bounded-memory join of one label delivery to the published scores of one or more runs.

Both sides are streamed once into B hash buckets by ID (`partition`), then joined bucket by
bucket; B grows with the rows, so peak memory is about one bucket of each side whatever the
row count. What a delivery holds per run: the distinct (ID, label) pairs whose ID the run scored
and whose label is one of its model's classes, with the published scores, in canonical order
(hash, ID); everything else is counted, never joined silently.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.errors import InputDataError
from pipelines.outcomes.challenger import AlignedPart, check_same_ids, delivery_columns
from pipelines.outcomes.classes import as_text, class_index, class_of
from pipelines.outcomes.ids import (
    INT,
    align_ids,
    bucket_count,
    bucket_of,
    id_hash,
    id_kind,
    published_ids,
)
from pipelines.outcomes.partition import Buckets
from pipelines.outcomes.published import RunScores, local_copy
from pipelines.outcomes.read import LabelFile
from pipelines.outcomes.settings import LabelsSettings
from pipelines.outcomes.store import Store

SAMPLE_IDS = 3


@dataclass
class RunJoin:
    """One run's side of a delivery: the joined rows written to `path`, and the counts."""

    run: RunScores
    path: Path
    sha: hashlib._Hash = field(repr=False)
    counts: Counter[str] = field(default_factory=Counter)
    writer: pq.ParquetWriter | None = field(default=None, repr=False)

    @property
    def digest(self) -> str:
        return self.sha.hexdigest()


@dataclass
class Joined:
    """A delivery joined: file-level counts and one `RunJoin` per run."""

    counts: Counter[str]
    runs: list[RunJoin]
    id_column: str
    sample_label_ids: list[str]
    sample_published_ids: list[str]


def join_delivery(
    store: Store,
    runs: Sequence[RunScores],
    labels: LabelFile,
    settings: LabelsSettings,
    folder: Path,
) -> Joined:
    """Join `labels` to the scores of `runs` in bounded memory; rows land in files in `folder`."""
    total = max(sum(r.rows_scored for r in runs), labels.rows)
    buckets = bucket_count(total, settings.bucket_rows, settings.max_buckets)
    kinds, sample_published = set(), []
    scored: list[Buckets] = []
    for i, run in enumerate(runs):
        kind, part_buckets, sample = _partition_scores(store, run, i, buckets, settings, folder)
        kinds.add(kind)
        scored.append(part_buckets)
        sample_published = sample_published or sample
    if len(kinds) > 1:
        raise InputDataError(
            "the chosen runs publish their IDs as different types (integers in some, text in "
            "others), so one label file cannot match them all exactly",
            fix="add the labels to one run at a time (--run-key)",
        )
    kind = kinds.pop() if kinds else INT
    counts: Counter[str] = Counter()
    label_buckets, sample_labels = _partition_labels(
        labels, kind, buckets, settings, folder, counts
    )
    joins = [
        RunJoin(r, folder / f"delivery-{i:04d}.parquet", _hasher(r)) for i, r in enumerate(runs)
    ]
    for b in range(buckets):
        _join_bucket(label_buckets.read(b), [s.read(b) for s in scored], joins, labels, counts)
        label_buckets.drop(b)
        for s in scored:
            s.drop(b)
    for j in joins:
        if j.writer is not None:
            j.writer.close()
    return Joined(counts, joins, labels.id_column, sample_labels, sample_published)


def _hasher(run: RunScores) -> hashlib._Hash:
    """The delivery's content hash starts from the run's: equal labels for a replaced run differ."""
    return hashlib.sha256(f"{run.model}/{run.run_key}/{run.content_sha256}\n".encode())


def _partition_scores(
    store: Store,
    run: RunScores,
    index: int,
    buckets: int,
    settings: LabelsSettings,
    folder: Path,
) -> tuple[str, Buckets, list[str]]:
    """Stream a run's scores parts into buckets: hash, ID, score, predicted class, probabilities,
    and, for a run with a challenger, the challenger's of the same rows beside them."""
    out: Buckets | None = None
    kind, sample = INT, []
    shadows = run.challenger_keys or (None,) * len(run.part_keys)
    for key, shadow_key in zip(run.part_keys, shadows, strict=True):
        with _opened(store, key, folder) as path, _opened(store, shadow_key, folder) as shadow:
            parquet = pq.ParquetFile(path)
            names = parquet.schema_arrow.names
            id_column = run.id_column or names[0]
            wanted = [id_column, "score", "predicted_class", *run.proba_columns]
            missing = [c for c in wanted if c not in names]
            if missing:
                raise InputDataError(
                    f"run {run.ref}'s scores part has no column(s) {missing}; it has {names}",
                    where=store.url(key),
                )
            kind = id_kind(parquet.schema_arrow.field(id_column).type)
            if out is None:
                out = Buckets(folder, f"scores-{index:04d}", buckets, _scores_schema(run, kind))
            aligned = None
            if shadow is not None and shadow_key is not None:
                aligned = AlignedPart(shadow, wanted, settings.batch_rows, store.url(shadow_key))
            for batch in parquet.iter_batches(settings.batch_rows, columns=wanted):
                ids = published_ids(batch.column(0), kind)
                sample = sample or [str(v) for v in ids.slice(0, SAMPLE_IDS).to_pylist()]
                hashes = id_hash(ids)
                table = {"h": pa.array(hashes), "id": ids, **_score_columns(run, batch, "")}
                if run.has_challenger:
                    table |= _challenger_columns(run, batch, aligned)
                out.add(pa.table(table), bucket_of(hashes, buckets))
            if aligned is not None:
                aligned.finish()
    if out is None:
        out = Buckets(folder, f"scores-{index:04d}", buckets, _scores_schema(run, kind))
    out.close()
    return kind, out, sample


@contextmanager
def _opened(store: Store, key: str | None, folder: Path) -> Iterator[Path | None]:
    """A local file with a published part's bytes (None for no part), removed after if a copy."""
    if key is None:
        yield None
        return
    path, temp = local_copy(store, key, folder)
    try:
        yield path
    finally:
        if temp:
            path.unlink(missing_ok=True)


def _score_columns(run: RunScores, batch: pa.RecordBatch | pa.Table, prefix: str) -> dict:
    """Score, predicted class index and probabilities of a batch (columns 1, 2, 3...)."""
    columns = {
        f"{prefix}score": batch.column(1).cast(pa.float64()),
        f"{prefix}pred": pa.array(class_index(batch.column(2), run.classes)),
    }
    for k in range(len(run.proba_columns)):
        columns[f"{prefix}p{k}"] = batch.column(3 + k).cast(pa.float64())
    return columns


def _challenger_columns(
    run: RunScores, batch: pa.RecordBatch, aligned: AlignedPart | None
) -> dict[str, pa.Array]:
    """The challenger's scores of the batch's rows (null if its shard has no challenger part)."""
    if aligned is None:
        rows = batch.num_rows
        return {
            "c_score": pa.nulls(rows, pa.float64()),
            "c_pred": pa.array(np.full(rows, -1, np.int32)),
            **{f"c_p{k}": pa.nulls(rows, pa.float64()) for k in range(len(run.proba_columns))},
        }
    shadow = aligned.take(batch.num_rows)
    check_same_ids(batch.column(0), shadow.column(0).combine_chunks(), aligned.where)
    columns = _score_columns(run, shadow, "c_")
    return {k: v.combine_chunks() if isinstance(v, pa.ChunkedArray) else v
            for k, v in columns.items()}  # fmt: skip


def _scores_schema(run: RunScores, kind: str) -> pa.Schema:
    id_type = pa.int64() if kind == INT else pa.string()
    fields = [("h", pa.uint64()), ("id", id_type), ("score", pa.float64()), ("pred", pa.int32())]
    fields += [(f"p{k}", pa.float64()) for k in range(len(run.proba_columns))]
    if run.has_challenger:
        fields += [("c_score", pa.float64()), ("c_pred", pa.int32())]
        fields += [(f"c_p{k}", pa.float64()) for k in range(len(run.proba_columns))]
    return pa.schema(fields)


def _partition_labels(
    labels: LabelFile,
    kind: str,
    buckets: int,
    settings: LabelsSettings,
    folder: Path,
    counts: Counter[str],
) -> tuple[Buckets, list[str]]:
    """Stream the label file into buckets: hash, ID (as published), label text, segments."""
    id_type = pa.int64() if kind == INT else pa.string()
    fields = [("h", pa.uint64()), ("id", id_type), ("label", pa.string()), ("alt", pa.string())]
    fields += [(f"seg_{s}", pa.string()) for s in labels.segments]
    out = Buckets(folder, "labels", buckets, pa.schema(fields))
    sample: list[str] = []
    for batch in labels.batches(settings.batch_rows):
        counts["rows_read"] += batch.num_rows
        raw = batch.column(0)
        sample = sample or [str(v) for v in raw.slice(0, SAMPLE_IDS).to_pylist()]
        ids, usable = align_ids(raw, kind, str(labels.path))
        text, alt = as_text(batch.column(1))
        has_label = np.asarray(text.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        counts["invalid_id_rows"] += int((~usable).sum())
        counts["missing_label_rows"] += int((usable & ~has_label).sum())
        keep = pa.array(usable & has_label)
        table = {"id": ids.filter(keep), "label": text.filter(keep), "alt": alt.filter(keep)}
        for k, s in enumerate(labels.segments):
            table[f"seg_{s}"] = batch.column(2 + k).cast(pa.string()).filter(keep)
        hashes = id_hash(table["id"])
        out.add(pa.table({"h": pa.array(hashes), **table}), bucket_of(hashes, buckets))
    out.close()
    return out, sample


def _join_bucket(
    labels: pa.Table,
    scored: list[pa.Table],
    joins: list[RunJoin],
    file: LabelFile,
    counts: Counter[str],
) -> None:
    """Join one bucket: distinct (ID, label) pairs against each run's scores of that bucket."""
    lab = labels.to_pandas()
    pairs = lab.drop_duplicates(["id", "label"]).sort_values(["h", "id", "label"], kind="stable")
    counts["duplicate_rows"] += len(lab) - len(pairs)
    per_id = pairs.groupby("id", sort=False)["label"].transform("size")
    counts["conflicting_ids"] += int(pairs.loc[per_id > 1, "id"].nunique())
    matched = np.zeros(len(pairs), dtype=bool)
    for table, join in zip(scored, joins, strict=True):
        sc = table.to_pandas().drop(columns=["h"])
        repeated = sc["id"].duplicated(keep=False)
        join.counts["scored_ids_repeated"] += int(sc.loc[repeated, "id"].nunique())
        sc = sc.loc[~repeated]
        in_run = pairs["id"].isin(sc["id"]).to_numpy()
        matched |= in_run
        hit = pairs.loc[in_run].merge(sc, on="id", how="inner", sort=False)
        hit = hit.sort_values(["h", "id", "label"], kind="stable")
        cls = class_of(hit["label"].astype(object), hit["alt"].astype(object), join.run.classes)
        join.counts["matched_pairs"] += len(hit)
        join.counts["out_of_class_rows"] += int((cls < 0).sum())
        hit = hit.loc[cls >= 0]
        _write(join, hit, cls[cls >= 0], file)
    known = set(pairs.loc[matched, "id"])
    counts["unknown_id_rows"] += int((~lab["id"].isin(known)).sum())


def _write(join: RunJoin, hit: pd.DataFrame, cls: np.ndarray, file: LabelFile) -> None:
    """Append a bucket's joined rows to the run's delivery file and to its content hash."""
    if hit.empty:
        return
    run = join.run
    classes = np.asarray(run.classes, dtype=object)
    pred = hit["pred"].to_numpy()
    columns: dict[str, pa.Array] = {
        "id": pa.array(hit["id"].to_numpy(), pa.int64())
        if pd.api.types.is_integer_dtype(hit["id"])
        else pa.array(hit["id"].astype(object).to_numpy(), pa.string()),
        "label": pa.array(classes[cls], pa.string()),
        "score": pa.array(hit["score"].to_numpy(), pa.float64()),
        "predicted_class": pa.array(
            np.where(pred >= 0, classes[np.maximum(pred, 0)], None), pa.string()
        ),
    }
    for k, name in enumerate(run.proba_columns):
        columns[name] = pa.array(hit[f"p{k}"].to_numpy(), pa.float64())
    if run.has_challenger:
        columns |= _challenger_written(run, hit, classes)
        join.counts["challenger_joined_rows"] += len(hit)
        join.counts["challenger_unscored_rows"] += int(hit["c_score"].isna().sum())
    for s in file.segments:
        columns[s] = pa.array(hit[f"seg_{s}"].astype(object).to_numpy(), pa.string())
    table = pa.table(columns)
    if join.writer is None:
        join.writer = pq.ParquetWriter(join.path, table.schema, compression="zstd")
    join.writer.write_table(table)
    join.counts["joined_rows"] += table.num_rows
    for name in ("id", "label", *file.segments):
        join.sha.update(_canonical(table.column(name)))


def _challenger_written(
    run: RunScores, hit: pd.DataFrame, classes: np.ndarray
) -> dict[str, pa.Array]:
    """The challenger's columns of joined rows, as the delivery file holds them (null unscored)."""
    pred = hit["c_pred"].to_numpy()
    names = delivery_columns(run.proba_columns)
    columns = {
        names[0]: pa.array(hit["c_score"].to_numpy(), pa.float64(), from_pandas=True),
        names[1]: pa.array(np.where(pred >= 0, classes[np.maximum(pred, 0)], None), pa.string()),
    }
    for k, name in enumerate(names[2:]):
        columns[name] = pa.array(hit[f"c_p{k}"].to_numpy(), pa.float64(), from_pandas=True)
    return columns


def _canonical(column: pa.ChunkedArray) -> bytes:
    """A column's values as bytes that depend on the values only (not on Arrow's buffers)."""
    values = column.to_pylist()
    if pa.types.is_integer(column.type):
        return b"i" + np.asarray(values, dtype=np.int64).tobytes()
    return b"s" + "\x1f".join("\x00" if v is None else v for v in values).encode() + b"\x1e"
