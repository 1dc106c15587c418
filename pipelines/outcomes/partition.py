"""Hash buckets on local disk: rows split by ID hash into temp Arrow files, read back one by one.

What keeps a join of 20M rows in bounded memory: every input is streamed once into buckets of
about `bucket_rows` rows, and only one bucket of each side is in memory at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa


class Buckets:
    """`count` bucket files of one schema in `folder`, appended batch by batch, then read."""

    def __init__(self, folder: Path, name: str, count: int, schema: pa.Schema) -> None:
        self.folder, self.name, self.count, self.schema = folder, name, count, schema
        self._writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}
        self.rows = 0

    def _path(self, bucket: int) -> Path:
        return self.folder / f"{self.name}-{bucket:05d}.arrow"

    def add(self, table: pa.Table, bucket: np.ndarray) -> None:
        """Append each row of `table` to the bucket named in `bucket` (same length)."""
        if table.num_rows == 0:
            return
        table = table.select(self.schema.names).cast(self.schema)
        order = np.argsort(bucket, kind="stable")
        ordered = table.take(pa.array(order))
        counts = np.bincount(bucket, minlength=self.count)
        start = 0
        for b in np.flatnonzero(counts):
            piece = ordered.slice(start, int(counts[b]))
            start += int(counts[b])
            writer = self._writers.get(int(b))
            if writer is None:
                writer = pa.ipc.new_stream(str(self._path(int(b))), self.schema)
                self._writers[int(b)] = writer
            writer.write_table(piece)
        self.rows += table.num_rows

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def read(self, bucket: int) -> pa.Table:
        """One bucket's rows (empty if none went there); closes the writers first."""
        self.close()
        path = self._path(bucket)
        if not path.exists():
            return self.schema.empty_table()
        with pa.OSFile(str(path), "rb") as source:
            return pa.ipc.open_stream(source).read_all()

    def drop(self, bucket: int) -> None:
        """Delete a bucket once it has been joined: disk use stays near one copy of the data."""
        self._path(bucket).unlink(missing_ok=True)
