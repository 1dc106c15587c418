"""Streaming reads: bounded batches of one shard, every CSV record accounted for.

Memory depends on `batch_rows`, never on the file: Parquet is read row group by row group with
`pre_buffer=False` (the default pre-buffering grows with the file), CSV block by block. CSV
columns are read as text, verbatim ("NA" stays "NA", "007" stays "007"), and typed later by the
data contract, so a stray "abc" in a numeric column quarantines one row instead of failing the
read. Lines with the wrong number of fields are kept whole as bad lines (never NaN-filled), and a
CSV's parsed rows plus bad lines must add up to the records counted from its bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipelines.data.proof import InputProof
from pipelines.data.source import InputInfo, Shard
from pipelines.errors import InputDataError

_CSV_BLOCK = 8 << 20
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
