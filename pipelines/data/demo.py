"""Seeded generator of a realistic tabular data set (customer churn-like), any size.

Rows are made one row group at a time from a per-group seed, so the output is identical for a
given (seed, rows, row_group_rows) whatever the machine, and memory stays flat for any size.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

CATEGORIES: dict[str, list[str]] = {
    "region": ["north", "south", "east", "west", "central"],
    "plan": ["basic", "plus", "premium"],
    "channel": ["web", "mobile", "branch", "partner"],
    "device": ["ios", "android", "desktop", "other"],
    "payment_method": ["card", "debit", "transfer", "wallet"],
}
NUMERIC = [
    "age",
    "income",
    "account_balance",
    "tenure_months",
    "num_transactions",
    "avg_txn_amount",
    "credit_score",
    "days_since_last_login",
    "num_support_tickets",
    "utilization",
    "late_payments",
    "debt_to_income",
]
ID_COLUMN, TIME_COLUMN, LABEL_COLUMN = "customer_id", "event_time", "label"
_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _population_shares() -> dict[str, np.ndarray | None]:
    """Each category's share in the population every row group (train or score) is drawn from:
    fixed, so tonight's data is drawn like the training data and drift monitoring stays quiet
    on it (region: uniform)."""
    rng = np.random.default_rng(20_261_123)
    return {
        col: None if col == "region" else rng.dirichlet(np.ones(len(values)) * 4)
        for col, values in CATEGORIES.items()
    }


_SHARES = _population_shares()


def make_frame(rows: int, seed: int, first_id: int = 1, with_label: bool = True) -> pd.DataFrame:
    """One block of synthetic customers; ids are first_id .. first_id + rows - 1."""
    rng = np.random.default_rng(seed)
    n = rows
    age = rng.integers(18, 90, n).astype("float64")
    income = np.round(rng.lognormal(10.8, 0.5, n), 2)
    tenure = rng.integers(0, 240, n)
    txns = rng.poisson(30, n)
    credit = np.clip(rng.normal(680, 70, n), 300, 850).round()
    util = rng.beta(2, 5, n)
    late = rng.poisson(0.4, n)
    tickets = rng.poisson(0.8, n)
    login = rng.exponential(12, n).round(1)
    frame = pd.DataFrame(
        {
            ID_COLUMN: np.arange(first_id, first_id + n, dtype="int64"),
            TIME_COLUMN: pd.to_datetime(_EPOCH)
            + pd.to_timedelta(rng.integers(0, 300 * 86_400, n), unit="s"),
            "age": age,
            "income": income,
            "account_balance": np.round(rng.normal(2_500, 4_000, n), 2),
            "tenure_months": tenure.astype("int64"),
            "num_transactions": txns.astype("int64"),
            "avg_txn_amount": np.round(rng.gamma(2.0, 40.0, n), 2),
            "credit_score": credit,
            "days_since_last_login": login,
            "num_support_tickets": tickets.astype("int64"),
            "utilization": util,
            "late_payments": late.astype("int64"),
            "debt_to_income": np.round(rng.gamma(2.0, 0.2, n), 3),
        }
    )
    for col, values in CATEGORIES.items():
        frame[col] = rng.choice(np.array(values, dtype=object), n, p=_SHARES[col])
    for col, share in (("income", 0.02), ("credit_score", 0.01), ("days_since_last_login", 0.03)):
        frame.loc[rng.random(n) < share, col] = np.nan
    if with_label:
        logit = (
            -1.2
            + 0.9 * (util - 0.3) * 3
            + 0.5 * late
            + 0.35 * tickets
            - 0.006 * tenure
            + 0.03 * np.nan_to_num(login, nan=12.0)
            - 0.004 * (np.nan_to_num(credit, nan=680.0) - 680)
            + np.where(frame["plan"].to_numpy() == "basic", 0.6, 0.0)
            + np.where(frame["channel"].to_numpy() == "partner", 0.4, 0.0)
            + rng.normal(0, 0.8, n)
        )
        frame[LABEL_COLUMN] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int64")
    return frame


def write_dataset(
    path: Path,
    rows: int,
    seed: int,
    row_group_rows: int = 65_536,
    with_label: bool = True,
    first_id: int = 1,
    labels_path: Path | None = None,
) -> Path:
    """Write `rows` rows to Parquet (or CSV by suffix), one row group at a time.

    With `labels_path` (and `with_label=False`), the rows' true labels go to that file instead
    (ID and label), as if delivered later. The label is drawn last from each group's stream, so
    the data file is byte-identical to the one written without `labels_path`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    writer: pq.ParquetWriter | None = None
    labels = _LabelWriter(labels_path) if labels_path is not None and not with_label else None
    csv = path.suffix.lower() == ".csv"
    try:
        for group, start in enumerate(range(0, max(rows, 1), row_group_rows)):
            n = min(row_group_rows, rows - start)
            if n <= 0:
                break
            frame = make_frame(
                n, seed * 100_003 + group, first_id + start, with_label or bool(labels)
            )
            if labels is not None:
                labels.write(frame[[ID_COLUMN, LABEL_COLUMN]])
                frame = frame.drop(columns=[LABEL_COLUMN])
            if csv:
                frame.to_csv(tmp, mode="a", header=group == 0, index=False)
                continue
            table = pa.Table.from_pandas(frame, preserve_index=False)
            table = table.cast(
                pa.schema(
                    [
                        f.with_type(pa.string()) if pa.types.is_large_string(f.type) else f
                        for f in table.schema
                    ],
                    metadata=table.schema.metadata,
                )
            )
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
            writer.write_table(table, row_group_size=row_group_rows)
    finally:
        if writer is not None:
            writer.close()
        if labels is not None:
            labels.close()
    tmp.replace(path)
    if labels is not None:
        labels.commit()
    return path


class _LabelWriter:
    """The score set's true labels (ID, label) to Parquet, one row group per data group."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.tmp = path, path.with_name(path.name + ".tmp")
        self.writer: pq.ParquetWriter | None = None

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, table.schema, compression="zstd")
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def commit(self) -> None:
        self.tmp.replace(self.path)
