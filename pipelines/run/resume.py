"""Resume: a rerun reuses the shards an earlier, interrupted attempt of the same run finished.

A shard that finishes writes a record beside its parts: its result (counts, parts with size,
sha256 and rows, gate state), the sha256 of its ID hashes, and the identity of what it was scored
from. A rerun of the run key adopts the newest attempt whose records carry the same identity, and
every shard whose record verifies against the staged objects returns its recorded result instead
of being scored again; anything that does not verify is scored again. The identity is the run's
fingerprint plus what else a shard's result depends on (the drift baseline, segments), so nothing
is reused across other inputs, models, suites or params. Airflow retries of a shard task hit the
same check, since they share the plan's attempt.
"""

from __future__ import annotations

import hashlib
import logging

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ValidationError

from pipelines.publish.keys import attempt_of, attempts_prefix, shard_record_key
from pipelines.run.records import RunPlan, ShardResult
from pipelines.storage.base import ObjectStore

log = logging.getLogger(__name__)
_RECORD = "/shards/shard-"


class ShardRecord(BaseModel):
    """What a finished shard leaves for a rerun: enough to check its objects, not trust them."""

    identity: str
    result: ShardResult
    ids_sha256: dict[str, str] = {}  # staged ID-hash key -> its sha256


def write_record(
    store: ObjectStore, plan: RunPlan, result: ShardResult, ids: dict[str, str]
) -> None:
    """Record a finished shard (the last thing it writes: a record means its parts are staged)."""
    record = ShardRecord(identity=plan.resume_identity, result=result, ids_sha256=ids)
    store.put_bytes(
        shard_record_key(plan.staging_prefix, result.shard), record.model_dump_json().encode()
    )


def reusable_result(store: ObjectStore, plan: RunPlan, index: int) -> ShardResult | None:
    """The recorded result of shard `index` of this attempt, if every object it names verifies."""
    body = store.get_bytes(shard_record_key(plan.staging_prefix, index))
    if body is None:
        return None
    try:
        record = ShardRecord.model_validate_json(body)
    except ValidationError:
        log.warning("shard %d: unreadable record; scoring it again", index)
        return None
    if record.identity != plan.resume_identity or record.result.shard != index:
        log.info("shard %d: recorded from other inputs or settings; scoring it again", index)
        return None
    problem = _unverified(store, record)
    if problem:
        log.warning("shard %d: staged %s; scoring it again", index, problem)
        return None
    return record.result.model_copy(update={"reused": True})


def _unverified(store: ObjectStore, record: ShardRecord) -> str | None:
    """Why the record's objects cannot be reused (missing, other size, hash or rows), or None."""
    for part in record.result.parts:
        body = store.get_bytes(part.key)
        if body is None:
            return f"part {part.key} is missing"
        if len(body) != part.bytes or hashlib.sha256(body).hexdigest() != part.sha256:
            return f"part {part.key} differs from its record (size or sha256)"
        rows = pq.read_metadata(pa.BufferReader(body)).num_rows
        if part.rows is not None and rows != part.rows:
            return f"part {part.key} holds {rows:,} rows, its record says {part.rows:,}"
    for key, sha in record.ids_sha256.items():
        body = store.get_bytes(key)
        if body is None or hashlib.sha256(body).hexdigest() != sha:
            return f"ID hashes {key} are missing or differ from their record"
    return None


def resumable_attempt(store: ObjectStore, model: str, run_key: str, identity: str) -> str | None:
    """The newest earlier attempt of this run with a shard record of the same identity, if any."""
    attempts: dict[str, str] = {}
    for key in store.list_keys(attempts_prefix(model, run_key)):
        attempt = attempt_of(key)
        if attempt and _RECORD in key:
            attempts.setdefault(attempt, key)
    for attempt in sorted(attempts, reverse=True):  # ids begin with their UTC time
        body = store.get_bytes(attempts[attempt])
        try:
            if body and ShardRecord.model_validate_json(body).identity == identity:
                return attempt
        except ValidationError:
            continue
    return None
