"""What a quarantined row carries: the row as read, its reasons, and their summary keys.

Rows are kept as read (not as parsed) so a person can see the value that was refused; CSV lines
that did not even split into fields go whole to the shard's bad-lines part.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.data.read import BadLines
from pipelines.publish.parts import PartWriter


def merge_reasons(
    reasons: np.ndarray, bad_mask: np.ndarray, gate_reasons: np.ndarray
) -> np.ndarray:
    """The contract's reasons with the gate's appended ("; "), row by row."""
    if not bad_mask.any():
        return reasons
    merged = reasons.copy()
    for i, reason in zip(np.flatnonzero(bad_mask), gate_reasons, strict=True):
        merged[i] = f"{merged[i]}; {reason}" if merged[i] else reason
    return merged


# What failed, then the offending value: the summary keeps the first part, says what it was.
_VALUE_FOLLOWS = (": cannot parse", ": non-finite value (inf or -inf)")


def reason_keys(reasons: np.ndarray) -> list[str]:
    """Group reasons by what failed, without the offending value, for the summary."""
    keys = []
    for reason in reasons:
        for part in str(reason).split("; "):
            for marker in _VALUE_FOLLOWS:
                head, found, _ = part.partition(marker)
                if found:
                    part = head + marker
                    break
            else:
                part = part.split(" (")[0]
            keys.append(part)
    return keys


def quarantine_table(frame: pd.DataFrame, reasons: np.ndarray) -> pa.Table:
    """Rows as read, with their reasons in a `_reason` column."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.append_column("_reason", pa.array(reasons.astype(str), pa.string()))


def write_bad_lines(writer: PartWriter, bad: BadLines) -> None:
    """Spill the CSV bad lines read so far, whole, to the shard's bad-lines part."""
    rows = bad.drain()
    if rows:
        writer.write(
            pa.table(
                {
                    "line": pa.array([r["line"] for r in rows], pa.int64()),
                    "text": pa.array([r["text"] for r in rows], pa.large_string()),
                    "reason": pa.array([r["reason"] for r in rows], pa.string()),
                }
            )
        )
