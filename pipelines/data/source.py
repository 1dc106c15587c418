"""Streaming input: inspect a Parquet/CSV file, split it into shards, read bounded batches.

Memory depends on `batch_rows`, never on the file: Parquet is read row group by row group with
`pre_buffer=False` (the default pre-buffering grows with the file), CSV block by block. CSV
columns are read as text, verbatim ("NA" stays "NA", "007" stays "007"), and typed later by the
data contract, so a stray "abc" in a numeric column quarantines one row instead of failing the
read. Lines with the wrong number of fields are kept whole as bad lines (never NaN-filled).

Two promises are checked here rather than trusted: every record of the file is accounted for
(a CSV's records are counted from its bytes and reconciled with what the parser returned, so a
parser that swallows lines fails the run), and a shard reads exactly the bytes the plan hashed
(`InputProof`), however long after planning and on whichever machine it runs.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipelines.errors import InputChangedError, InputDataError

_CSV_BLOCK = 8 << 20
_HASH_BLOCK = 1 << 20
# Integer IDs with nulls must not become float64 (IDs above 2**53 would change value).
_NULLABLE_INTS = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.uint8(): pd.UInt8Dtype(),
    pa.uint16(): pd.UInt16Dtype(),
    pa.uint32(): pd.UInt32Dtype(),
    pa.uint64(): pd.UInt64Dtype(),
}


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


@dataclass(frozen=True)
class InputProof:
    """What the planned bytes were, so a shard can prove it reads the same ones.

    Made in the single pass that hashes the file at plan time. A shard checks the file's size,
    its Parquet footer (row-group layout) and the sha256 of its own byte span before reading, and
    that the file did not change while it read; a CSV (one shard) is hashed whole again.
    """

    sha256: str
    size: int
    footer_sha256: str | None = None
    shard_sha256: tuple[str, ...] = ()
    csv_records: int | None = None  # records after the header (blank lines not counted)


@dataclass
class BadLines:
    """CSV lines whose field count did not match the header, kept whole.

    The reader fills `pending`; the caller drains it after every batch (so a file full of bad
    lines stays in bounded memory) into the quarantine's bad-lines part.
    """

    count: int = 0
    pending: list[dict[str, object]] = field(default_factory=list)
    multiline: str | None = None  # first record that spans lines: the file cannot be trusted

    def drain(self) -> list[dict[str, object]]:
        rows, self.pending = self.pending, []
        return rows


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


def prove_input(info: InputInfo, shards: list[Shard]) -> InputProof:
    """Hash the file once: whole-file sha256, each shard's span, the footer, CSV records."""
    spans = [s.span or (0, 0) for s in shards if s.row_groups is not None]
    span_hashes = [hashlib.sha256() for _ in spans]
    whole = hashlib.sha256()
    lines = _LineCounter() if info.format == "csv" else None
    offset = 0
    with open(info.path, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            whole.update(block)
            if lines is not None:
                lines.feed(block)
            end = offset + len(block)
            for (a, b), h in zip(spans, span_hashes, strict=True):
                if a < end and b > offset:
                    h.update(block[max(a, offset) - offset : min(b, end) - offset])
            offset = end
    footer = _footer_sha256(info.path) if info.format == "parquet" else None
    return InputProof(
        sha256=whole.hexdigest(),
        size=offset,
        footer_sha256=footer,
        shard_sha256=tuple(h.hexdigest() for h in span_hashes),
        csv_records=lines.records() if lines is not None else None,
    )


def check_shard_bytes(info: InputInfo, shard: Shard, proof: InputProof) -> os.stat_result:
    """Refuse to read a shard whose bytes are not the ones planned; returns the file's stat.

    Raises InputChangedError (retryable: a re-pull may restore the file, a new plan will hash
    the new one). Pass the returned stat to `check_unchanged` once the shard has been read.
    """
    path = info.path
    try:
        st = path.stat()
    except FileNotFoundError:
        raise _changed(path, shard, "it no longer exists") from None
    if st.st_size != proof.size:
        raise _changed(path, shard, f"its size is {st.st_size:,} bytes, planned {proof.size:,}")
    if info.format == "parquet":
        if _footer_sha256(path) != proof.footer_sha256:
            raise _changed(path, shard, "its Parquet footer (row-group layout) differs")
        if shard.span is not None:
            a, b = shard.span
            if _sha256_span(path, a, b) != proof.shard_sha256[shard.index]:
                raise _changed(path, shard, f"bytes {a:,}-{b:,} of this shard differ")
    elif _sha256_span(path, 0, st.st_size) != proof.sha256:
        raise _changed(path, shard, "its sha256 differs")
    return st


def check_unchanged(info: InputInfo, shard: Shard, before: os.stat_result) -> None:
    """After reading: the file was not replaced or rewritten while the shard read it."""
    try:
        st = info.path.stat()
    except FileNotFoundError:
        raise _changed(info.path, shard, "it was deleted while the shard read it") from None
    if (st.st_ino, st.st_size, st.st_mtime_ns) != (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    ):
        raise _changed(info.path, shard, "it was modified while the shard read it")


def _changed(path: Path, shard: Shard, what: str) -> InputChangedError:
    return InputChangedError(
        f"input {path} changed after the run was planned ({what}); shard {shard.index} refuses "
        "to score bytes the plan did not hash",
        fix="retry once the file is back as planned (e.g. `dvc pull`), or start a new run so "
        "that the new file is planned and hashed",
    )


def _footer_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        fh.seek(-8, os.SEEK_END)
        length = int.from_bytes(fh.read(4), "little")
        fh.seek(-(length + 8), os.SEEK_END)
        return hashlib.sha256(fh.read(length + 8)).hexdigest()


def _sha256_span(path: Path, start: int, end: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(start)
        left = end - start
        while left > 0 and (block := fh.read(min(_HASH_BLOCK, left))):
            h.update(block)
            left -= len(block)
    return h.hexdigest()


class _LineCounter:
    """Counts a file's lines and blank lines from its bytes, block by block (numpy-fast)."""

    def __init__(self) -> None:
        self.newlines = 0
        self.blank = 0
        self.last_nl = -1  # absolute offset of the previous newline (-1: start of file)
        self.prev_cr = False  # byte before the current block's first byte was '\r'
        self.offset = 0
        self.last_byte = b""

    def feed(self, block: bytes) -> None:
        arr = np.frombuffer(block, np.uint8)
        nl = np.flatnonzero(arr == 10) + self.offset
        if nl.size:
            starts = np.concatenate(([self.last_nl], nl[:-1]))
            length = nl - starts - 1  # bytes between consecutive newlines
            blank = length == 0
            one = np.flatnonzero(length == 1)
            if one.size:  # "\r\n" alone is a blank line too
                pos = nl[one] - 1 - self.offset
                cr = np.where(pos >= 0, arr[np.maximum(pos, 0)] == 13, self.prev_cr)
                blank[one] = cr
            blank[0] &= self.last_nl >= 0  # the header line is never "blank"
            self.blank += int(blank.sum())
            self.newlines += nl.size
            self.last_nl = int(nl[-1])
        self.prev_cr = bool(arr.size and arr[-1] == 13)
        self.offset += len(block)
        self.last_byte = block[-1:]

    def records(self) -> int:
        lines = self.newlines + (1 if self.last_byte not in (b"\n", b"") else 0)
        return max(lines - self.blank - 1, 0)  # minus the header


def read_batches(
    info: InputInfo,
    shard: Shard,
    batch_rows: int,
    bad_lines: BadLines | None = None,
    id_column: str | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield DataFrames of at most `batch_rows` rows from one shard, in file order.

    The ID column keeps a type that holds every value: integer IDs with nulls become pandas'
    nullable integers (not float64), text stays text.
    """
    tables = (
        _parquet_tables(info, shard, batch_rows)
        if info.format == "parquet"
        else (_csv_tables(info, batch_rows, bad_lines if bad_lines is not None else BadLines()))
    )
    for table in tables:
        yield _to_pandas(table, id_column)


def _to_pandas(table: pa.Table, id_column: str | None) -> pd.DataFrame:
    if id_column is None or id_column not in table.column_names:
        return table.to_pandas(split_blocks=True, self_destruct=True)
    ids = table.column(id_column)
    if pa.types.is_integer(ids.type):
        mapper = _NULLABLE_INTS.get if ids.null_count else None
        values: object = ids.to_pandas(types_mapper=mapper).array
    else:  # text (or anything else): Python objects, exactly as stored
        # pandas 3 would infer its `str` dtype from plain strings; keep object explicitly so
        # suites that name "object" (and GX's type checks) see what they always saw
        values = ids.to_pylist()
    pos = table.column_names.index(id_column)
    frame = table.drop_columns([id_column]).to_pandas(split_blocks=True, self_destruct=True)
    dtype = None if pa.types.is_integer(ids.type) else object
    frame.insert(pos, id_column, pd.Series(values, dtype=dtype, index=frame.index))
    return frame


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
        text = row.text or ""
        if "\n" in text or "\r" in text:
            bad.multiline = bad.multiline or text
        bad.count += 1
        bad.pending.append(
            {
                "line": row.number,
                "text": text,
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
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False,  # text as written: "NA" is not a missing value
                quoted_strings_can_be_null=False,
            ),
        )
        for table in _rebatch(reader, batch_rows):
            _refuse_multiline(info.path, table, bad)
            yield table
        _refuse_multiline(info.path, None, bad)
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise InputDataError(
            f"CSV file {info.path} cannot be parsed ({exc})",
            fix="check the file's quoting and encoding (UTF-8 expected)",
        ) from None


def _refuse_multiline(path: Path, table: pa.Table | None, bad: BadLines) -> None:
    """A record spanning lines means a quote opened and (maybe) never closed: the parser has
    merged lines into one record, and every count after it would be wrong. Fail, naming it."""
    text = bad.multiline
    if text is None and table is not None:
        for col in table.columns:
            hit = pc.any(pc.match_substring_regex(col, r"[\r\n]")).as_py()
            if hit:
                idx = pc.index(pc.match_substring_regex(col, r"[\r\n]"), True).as_py()
                text = str(col[idx].as_py())
                break
    if text is None:
        return
    first = text.splitlines()[0] if text.splitlines() else text
    line = _find_line(path, first)
    spans = text.count("\n") + 1
    raise InputDataError(
        f'CSV record at line {line or "?"} spans {spans:,} lines: a quote (") opened in it '
        f"is not closed where the line ends, so the parser read the following lines as part of "
        f"it (starts: {first[:120]!r})",
        where=str(path),
        fix="fix or remove the stray quote in the export; quoted values with line breaks are "
        "not supported in CSV input (write Parquet instead). Nothing was published",
    )


def _find_line(path: Path, first: str) -> int | None:
    """The 1-based line where a record begins (only on the error path: a linear scan)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if line.rstrip("\r\n") == first:
                return number
    return None


def reconcile_csv(info: InputInfo, proof: InputProof, parsed: int, bad: BadLines) -> None:
    """Every record of the file is a scored/quarantined row or a bad line, or the run fails."""
    if info.format != "csv" or proof.csv_records is None:
        return
    accounted = parsed + bad.count
    if accounted != proof.csv_records:
        raise InputDataError(
            f"CSV reader returned {parsed:,} rows and {bad.count:,} bad lines, but the file has "
            f"{proof.csv_records:,} records (non-blank lines after the header)",
            where=str(info.path),
            fix="the file's quoting or line endings confuse the parser; check it, or write "
            "Parquet instead. Nothing was published",
        )


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
