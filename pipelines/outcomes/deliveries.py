"""Label deliveries stored beside a published run, never inside it.

Each delivery is two objects under `<model>/<run>/labels/deliveries/`, named by the sha256 of its
canonical joined content (`join`): the joined rows (Parquet, written first) and a small JSON of
its counts, written create-if-absent; the JSON is the delivery's commit marker, as the manifest
is the run's. The same delivery twice finds its marker there and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pipelines.errors import StorageError
from pipelines.outcomes.join import Joined, RunJoin
from pipelines.outcomes.read import LabelFile
from pipelines.outcomes.store import Keys, Store

SCHEMA_VERSION = 1
STORED, ALREADY, NOTHING = "stored", "already delivered", "nothing joined"


def store_delivery(
    store: Store, keys: Keys, join: RunJoin, joined: Joined, labels: LabelFile
) -> dict[str, Any]:
    """Store one run's side of a delivery (if it joined anything); its marker as written."""
    run, digest = join.run, join.digest
    marker = {
        "schema_version": SCHEMA_VERSION,
        "sha256": digest,
        "model": run.model,
        "run_key": run.run_key,
        "run_content_sha256": run.content_sha256,
        "received_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "source": {
            "path": str(labels.path),
            "format": labels.format,
            "id_column": labels.id_column,
            "label_column": labels.label_column,
        },
        "segments": list(labels.segments),
        "rows": join.counts["joined_rows"],
        "file_counts": dict(sorted(joined.counts.items())),
        "run_counts": dict(sorted(join.counts.items())),
    }
    if not join.counts["joined_rows"]:
        return {**marker, "status": NOTHING}
    rows_key = keys.delivery_key(run.model, run.run_key, digest, "parquet")
    marker_key = keys.delivery_key(run.model, run.run_key, digest, "json")
    if store.modified_at(marker_key) is not None:
        return {**(read_marker(store, marker_key) or marker), "status": ALREADY}
    if store.modified_at(rows_key) is None:
        store.put_file(join.path, rows_key)
    body = json.dumps(marker, indent=2, sort_keys=True).encode()
    created = store.put_bytes(marker_key, body, if_absent=True)
    if not created:
        return {**(read_marker(store, marker_key) or marker), "status": ALREADY}
    return {**marker, "status": STORED}


def read_marker(store: Store, key: str) -> dict[str, Any] | None:
    body = store.get_bytes(key)
    if body is None:
        return None
    try:
        return dict(json.loads(body))
    except ValueError:
        raise StorageError(
            "a label delivery's counts are unreadable",
            where=store.url(key),
            fix="delete it (and the .parquet beside it) and add that label file again",
        ) from None


def list_deliveries(store: Store, keys: Keys, model: str, run_key: str) -> list[dict[str, Any]]:
    """Every committed delivery of a run (marker present), sorted by content hash."""
    found = []
    for key in store.list_keys(keys.deliveries_prefix(model, run_key)):
        if keys.delivery_of(key) is not None and (marker := read_marker(store, key)) is not None:
            found.append(marker)
    return sorted(found, key=lambda m: m["sha256"])
