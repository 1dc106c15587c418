"""A label file (Parquet or CSV), read in bounded batches of its ID, label and segment columns.

CSV columns are read as text, never inferred: an ID "00012" stays "00012" and a label "1" is
matched to the model's classes as text. Parquet columns keep their types; `ids.align_ids` turns
the IDs into the published kind.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipelines.errors import InputDataError

CSV_BYTES_PER_ROW = 16  # a low guess, so a CSV's bucket count errs on the side of more buckets


@dataclass(frozen=True)
class LabelFile:
    """A label file checked to hold the ID and label columns; `segments` are those it holds."""

    path: Path
    format: str  # parquet | csv
    columns: tuple[str, ...]
    id_column: str
    label_column: str
    segments: tuple[str, ...]
    rows: int  # exact for Parquet, an upper-bound guess for CSV (from its size)

    def batches(self, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Batches of at most about `batch_rows` rows: ID, label, then the segment columns."""
        wanted = [self.id_column, self.label_column, *self.segments]
        if self.format == "parquet":
            try:
                yield from pq.ParquetFile(self.path).iter_batches(batch_rows, columns=wanted)
            except (OSError, pa.ArrowException) as exc:
                raise _unreadable(self.path, exc) from None
            return
        yield from _csv_batches(self.path, wanted, batch_rows)


def open_labels(
    path: Path, id_column: str, label_column: str, segments: Sequence[str] = ()
) -> LabelFile:
    """Check that the file exists, can be read, and holds the ID and label columns."""
    if not path.is_file():
        raise InputDataError(
            f"label file {path} not found", fix="give the path of a Parquet or CSV file"
        )
    fmt = _format(path)
    columns, rows = _parquet_meta(path) if fmt == "parquet" else _csv_meta(path)
    roles = (("ID", id_column, "--id-column"), ("label", label_column, "--label-column"))
    for role, name, flag in roles:
        if name not in columns:
            raise InputDataError(
                f"the label file has no {role} column {name!r}; its columns are "
                f"{', '.join(repr(c) for c in columns)}",
                where=str(path),
                fix=f"name the {role} column with {flag} (or labels.{role.lower()}_column)",
            )
    if id_column == label_column:
        raise InputDataError(
            f"the ID and label columns are both {id_column!r}",
            where=str(path),
            fix="name two different columns with --id-column and --label-column",
        )
    present = tuple(s for s in segments if s in columns and s not in (id_column, label_column))
    return LabelFile(path, fmt, columns, id_column, label_column, present, rows)


def _format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".csv"):
        return "csv"
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if name.endswith((".parquet", ".pq")) or magic == b"PAR1":
        return "parquet"
    raise InputDataError(
        f"label file {path} is neither Parquet nor CSV",
        fix="give a .parquet or .csv file",
    )


def _parquet_meta(path: Path) -> tuple[tuple[str, ...], int]:
    try:
        meta = pq.ParquetFile(path)
        return tuple(meta.schema_arrow.names), int(meta.metadata.num_rows)
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(path, exc) from None


def _csv_meta(path: Path) -> tuple[tuple[str, ...], int]:
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        header = next(csv.reader(fh), None)
    if not header:
        raise InputDataError(f"label file {path} is empty", fix="deliver a file with a header row")
    return tuple(header), max(1, path.stat().st_size // CSV_BYTES_PER_ROW)


def _csv_batches(path: Path, wanted: list[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """CSV batches with every wanted column as text; empty cells are nulls."""
    read = pacsv.ReadOptions(block_size=max(1 << 20, batch_rows * 64))
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in wanted},
        include_columns=wanted,
        null_values=[""],
        strings_can_be_null=True,
    )
    try:
        reader = pacsv.open_csv(path, read_options=read, convert_options=convert)
        for batch in reader:
            for start in range(0, batch.num_rows, batch_rows):
                yield batch.slice(start, batch_rows)
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(path, exc) from None


def _unreadable(path: Path, exc: Exception) -> InputDataError:
    return InputDataError(
        f"label file {path} cannot be read: {str(exc).splitlines()[0]}",
        fix="check that it is a complete Parquet or CSV file",
    )
