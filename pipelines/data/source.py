"""The input's layout: inspect a Parquet/CSV file from its footer/header, split it into shards.

Only metadata is read here, so planning costs the same for any file size. A shard is whole
Parquet row groups (with the byte span they occupy, which `pipelines.data.proof` hashes), or the
whole file for CSV. Reading the rows is `pipelines.data.read`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.errors import InputDataError


@dataclass(frozen=True)
class InputInfo:
    """What the file holds, read from its footer/header only."""

    path: Path
    format: str
    columns: dict[str, str]  # name -> arrow type ("string" for every CSV column)
    num_rows: int | None  # None for CSV (unknown until read)
    row_group_rows: tuple[int, ...] = ()
    row_group_spans: tuple[tuple[int, int], ...] = ()  # byte [start, end) of each row group


@dataclass(frozen=True)
class Shard:
    """A slice of the input scored as one unit (one process, or one Airflow mapped task)."""

    index: int
    row_groups: tuple[int, ...] | None  # None = the whole file (CSV)
    rows: int | None
    span: tuple[int, int] | None = None  # the bytes it reads; None = the whole file


def inspect_input(path: Path, fmt: str) -> InputInfo:
    """Open the file's metadata; any unreadable file becomes one clear InputDataError."""
    if not path.exists():
        raise InputDataError(
            f"input file {path} not found",
            fix="check data.path in params.yaml (or --input); for DVC data run `dvc pull`",
        )
    if path.is_dir():
        raise InputDataError(f"input path {path} is a folder; point data.path at one file")
    if path.stat().st_size == 0:
        raise InputDataError(
            f"input file {path} is empty (0 bytes)",
            fix="the upstream export probably failed; re-run it, then score again",
        )
    if fmt == "csv":
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            header = next(csv.reader(fh), None)
        if not header or not any(h.strip() for h in header):
            raise InputDataError(f"CSV file {path} has no header line")
        _refuse_repeated(header, path)
        return InputInfo(path, "csv", {h: "string" for h in header}, None)
    try:
        meta = pq.ParquetFile(path, pre_buffer=False)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputDataError(
            f"input file {path} is not a readable Parquet file ({exc})",
            fix="check that the upload finished; if it is CSV, set data.format: csv",
        ) from None
    schema = meta.schema_arrow
    _refuse_repeated(schema.names, path)
    md = meta.metadata
    groups = tuple(md.row_group(i).num_rows for i in range(md.num_row_groups))
    spans = tuple(_row_group_span(md.row_group(i)) for i in range(md.num_row_groups))
    return InputInfo(
        path, "parquet", {f.name: str(f.type) for f in schema}, md.num_rows, groups, spans
    )


def _refuse_repeated(names: list[str], path: Path) -> None:
    if len(set(names)) != len(names):
        dupes = sorted({h for h in names if names.count(h) > 1})
        raise InputDataError(
            f"the input repeats column name(s) {dupes}",
            where=str(path),
            fix="give every column its own name in the export",
        )


def _row_group_span(rg: pq.RowGroupMetaData) -> tuple[int, int]:
    starts, ends = [], []
    for j in range(rg.num_columns):
        col = rg.column(j)
        start = col.data_page_offset
        if col.has_dictionary_page and col.dictionary_page_offset is not None:
            start = min(start, col.dictionary_page_offset)
        starts.append(start)
        ends.append(start + col.total_compressed_size)
    return (min(starts), max(ends)) if starts else (0, 0)


def plan_shards(info: InputInfo, shard_rows: int) -> list[Shard]:
    """Group whole row groups into shards of about `shard_rows` rows (CSV: one shard)."""
    if info.format == "csv" or not info.row_group_rows:
        return [Shard(0, None, info.num_rows)]
    groups: list[list[int]] = []
    rows = 0
    for i, n in enumerate(info.row_group_rows):
        if groups and groups[-1] and rows + n > shard_rows:
            groups.append([])
            rows = 0
        if not groups:
            groups.append([])
        groups[-1].append(i)
        rows += n
    shards = []
    for k, members in enumerate(groups):
        spans = [info.row_group_spans[i] for i in members] if info.row_group_spans else []
        span = (min(s for s, _ in spans), max(e for _, e in spans)) if spans else None
        shards.append(Shard(k, tuple(members), sum(info.row_group_rows[i] for i in members), span))
    return shards
