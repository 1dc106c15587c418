"""The challenger's side of a delivery: its scores, joined beside the champion's, row by row.

A run with a challenger publishes, per shard, a `challenger` part that lines up row by row with
the `scores` part (same IDs, same order; null where the challenger could not score a row). So
the challenger needs no join of its own: while the champion's part is streamed into buckets, the
challenger's part is streamed beside it, the IDs are checked to be the same, and its columns
travel with the champion's through the join into the delivery (`challenger_score`,
`challenger_predicted_class`, `challenger_proba_*`). The evaluation then computes the
challenger's metrics on the same accepted (ID, label) pairs as the champion's, leaving out (and
counting) the rows it did not score.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.errors import InputDataError

PREFIX = "challenger_"


def delivery_columns(proba_columns: tuple[str, ...]) -> tuple[str, ...]:
    """The challenger's columns in a delivery file, in order."""
    return tuple(PREFIX + c for c in ("score", "predicted_class", *proba_columns))


def null_columns(proba_columns: tuple[str, ...], rows: int) -> dict[str, pa.Array]:
    """The challenger's columns, all null: a shard it has no part for, or an older delivery."""
    out = {
        PREFIX + "score": pa.nulls(rows, pa.float64()),
        PREFIX + "predicted_class": pa.nulls(rows, pa.string()),
    }
    out |= {PREFIX + c: pa.nulls(rows, pa.float64()) for c in proba_columns}
    return out


class AlignedPart:
    """A challenger part read in step with its scores part: `take(n)` gives its next n rows.

    The two parts are read with the same batch size, but Parquet need not cut batches at the
    same rows in two files, so this buffers at most one batch beyond what was asked for.
    """

    def __init__(self, path: Path, columns: list[str], batch_rows: int, where: str) -> None:
        self.where = where
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
        missing = [c for c in columns if c not in names]
        if missing:
            raise InputDataError(
                f"the challenger's part has no column(s) {missing}; it has {names}", where=where
            )
        self._batches = parquet.iter_batches(batch_rows, columns=columns)
        self._held: pa.Table | None = None

    def take(self, rows: int) -> pa.Table:
        """The next `rows` rows; an error if the part ends first (it does not line up)."""
        pieces = [] if self._held is None else [self._held]
        have = sum(p.num_rows for p in pieces)
        while have < rows:
            batch = next(self._batches, None)
            if batch is None:
                raise self._misaligned("has fewer rows than the scores part")
            pieces.append(pa.Table.from_batches([batch]))
            have += batch.num_rows
        if not pieces:  # nothing asked, nothing held: an empty slice of the next batch
            batch = next(self._batches, None)
            if batch is None:
                raise self._misaligned("has fewer rows than the scores part")
            pieces.append(pa.Table.from_batches([batch]))
        table = pa.concat_tables(pieces)
        self._held = table.slice(rows) if table.num_rows > rows else None
        return table.slice(0, rows)

    def finish(self) -> None:
        """Refuse a challenger part with rows left over once its scores part is read."""
        if self._held is not None or next(self._batches, None) is not None:
            raise self._misaligned("has more rows than the scores part")

    def _misaligned(self, what: str) -> InputDataError:
        return InputDataError(
            f"the challenger's part {what}: the two do not line up row by row",
            where=self.where,
            fix="re-run the run with --overwrite; the published challenger part is not the one "
            "this run wrote",
        )


def check_same_ids(champion: pa.Array, challenger: pa.Array, where: str) -> None:
    """The challenger's rows are the champion's rows: the same IDs in the same order."""
    a = champion.to_numpy(zero_copy_only=False)
    b = challenger.cast(champion.type).to_numpy(zero_copy_only=False)
    if len(a) != len(b) or not np.array_equal(a, b):
        raise InputDataError(
            "the challenger's part holds other IDs than the scores part it belongs to",
            where=where,
            fix="re-run the run with --overwrite; the two parts of a shard must line up",
        )


def challenger_frame(rows: pd.DataFrame, proba_columns: tuple[str, ...]) -> pd.DataFrame:
    """Rows of the evaluation with the challenger's columns under the champion's names."""
    renamed = {PREFIX + c: c for c in ("score", "predicted_class", *proba_columns)}
    return rows.loc[:, ["label", *renamed]].rename(columns=renamed)
