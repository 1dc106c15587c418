"""Streaming input: inspect a Parquet/CSV file, split it into shards, read bounded batches.

Memory depends on `batch_rows`, never on the file: Parquet is read row group by row group with
`pre_buffer=False` (the default pre-buffering grows with the file), CSV block by block. CSV
columns are read as text and typed later by the data contract, so a stray "abc" in a numeric
column quarantines one row instead of failing the whole read; lines with the wrong number of
fields are captured (never NaN-filled) and reported as bad lines.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipelines.errors import InputDataError

_CSV_BLOCK = 8 << 20


@dataclass(frozen=True)
class InputInfo:
    """What the file holds, read from its footer/header only."""

    path: Path
    format: str
    columns: dict[str, str]  # name -> arrow type ("string" for every CSV column)
    num_rows: int | None  # None for CSV (unknown until read)
    row_group_rows: tuple[int, ...] = ()


@dataclass(frozen=True)
class Shard:
    """A slice of the input scored as one unit (one process, or one Airflow mapped task)."""

    index: int
    row_groups: tuple[int, ...] | None  # None = the whole file (CSV)
    rows: int | None


@dataclass
class BadLines:
    """CSV lines whose field count did not match the header: counted, kept as quarantine rows."""

    count: int = 0
    rows: list[dict[str, object]] = field(default_factory=list)
    keep: int = 10_000


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
        if len(set(header)) != len(header):
            dupes = sorted({h for h in header if header.count(h) > 1})
            raise InputDataError(f"CSV header repeats column(s) {dupes}", where=str(path))
        return InputInfo(path, "csv", {h: "string" for h in header}, None)
    try:
        meta = pq.ParquetFile(path, pre_buffer=False)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputDataError(
            f"input file {path} is not a readable Parquet file ({exc})",
            fix="check that the upload finished; if it is CSV, set data.format: csv",
        ) from None
    schema = meta.schema_arrow
    groups = tuple(meta.metadata.row_group(i).num_rows for i in range(meta.num_row_groups))
    return InputInfo(
        path,
        "parquet",
        {f.name: str(f.type) for f in schema},
        meta.metadata.num_rows,
        groups,
    )


def plan_shards(info: InputInfo, shard_rows: int) -> list[Shard]:
    """Group whole row groups into shards of about `shard_rows` rows (CSV: one shard)."""
    if info.format == "csv" or not info.row_group_rows:
        return [Shard(0, None, info.num_rows)]
    shards: list[Shard] = []
    current: list[int] = []
    rows = 0
    for i, n in enumerate(info.row_group_rows):
        if current and rows + n > shard_rows:
            shards.append(Shard(len(shards), tuple(current), rows))
            current, rows = [], 0
        current.append(i)
        rows += n
    if current or not shards:
        shards.append(Shard(len(shards), tuple(current), rows))
    return shards


def read_batches(
    info: InputInfo, shard: Shard, batch_rows: int, bad_lines: BadLines | None = None
) -> Iterator[pd.DataFrame]:
    """Yield DataFrames of at most `batch_rows` rows from one shard, in file order."""
    tables = (
        _parquet_tables(info, shard, batch_rows)
        if info.format == "parquet"
        else (_csv_tables(info, batch_rows, bad_lines if bad_lines is not None else BadLines()))
    )
    for table in tables:
        yield table.to_pandas(split_blocks=True, self_destruct=True)


def _parquet_tables(info: InputInfo, shard: Shard, batch_rows: int) -> Iterator[pa.Table]:
    pf = pq.ParquetFile(info.path, pre_buffer=False)
    groups = list(shard.row_groups) if shard.row_groups is not None else None
    if groups == []:
        return
    try:
        yield from _rebatch(pf.iter_batches(batch_size=batch_rows, row_groups=groups), batch_rows)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputDataError(
            f"input file {info.path} is corrupt: reading shard {shard.index} failed ({exc})",
            fix="re-export or re-pull the file; nothing was published",
        ) from None


def _csv_tables(info: InputInfo, batch_rows: int, bad: BadLines) -> Iterator[pa.Table]:
    names = list(info.columns)

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad.count += 1
        if len(bad.rows) < bad.keep:
            bad.rows.append(
                {
                    "line": row.number,
                    "text": (row.text or "")[:2_000],
                    "reason": f"csv line has {row.actual_columns} fields, "
                    f"header has {row.expected_columns}",
                }
            )
        return "skip"

    try:
        reader = pacsv.open_csv(
            info.path,
            read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK, use_threads=False),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=True
            ),
        )
        yield from _rebatch(reader, batch_rows)
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise InputDataError(
            f"CSV file {info.path} cannot be parsed ({exc})",
            fix="check the file's quoting and encoding (UTF-8 expected)",
        ) from None


def _rebatch(batches: Iterator[pa.RecordBatch], batch_rows: int) -> Iterator[pa.Table]:
    """Merge small record batches (row-group or block sized) into tables of ~batch_rows."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        while batch.num_rows:
            take = min(batch.num_rows, batch_rows - rows)
            pending.append(batch.slice(0, take))
            rows += take
            batch = batch.slice(take)
            if rows == batch_rows:
                yield pa.Table.from_batches(pending)
                pending, rows = [], 0
    if rows:
        yield pa.Table.from_batches(pending)
