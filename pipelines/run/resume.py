"""Resume: a rerun reuses the shards an earlier, interrupted attempt of the same run finished.

A shard that finishes writes a record beside its parts: its result (counts, parts with size,
sha256 and rows, gate state), the sha256 of its ID hashes, and the identity of what it was scored
from. A rerun of the run key continues from the newest attempt whose records carry the same
identity: every shard whose record verifies against that attempt's objects is copied into the
rerun's own attempt instead of being scored again; anything that does not verify is scored again.
The identity is the run's fingerprint plus what else a shard's result depends on (the drift
baseline, segments), so nothing is reused across other inputs, models, suites or params.

A rerun never writes into, or deletes from, the attempt it continues: that attempt's process may
still be alive (two runs of one run key racing), and whatever one attempt removes on failure, or
a commit removes as stale, must never be the other's published parts. Airflow retries of a shard
task share the plan's attempt, so they find their own record first.
"""

from __future__ import annotations

import hashlib
import logging

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ValidationError

from pipelines.publish.keys import attempt_of, attempts_prefix, shard_record_key, staging_prefix
from pipelines.run.records import RunPlan, ShardResult
from pipelines.storage.base import ObjectStore

log = logging.getLogger(__name__)
_RECORD = "/shards/shard-"


class ShardRecord(BaseModel):
    """What a finished shard leaves for a rerun: enough to check its objects, not trust them."""

    identity: str
    result: ShardResult
    ids_sha256: dict[str, str] = {}  # staged ID-hash and audit-sample key -> its sha256


def write_record(
    store: ObjectStore, plan: RunPlan, result: ShardResult, ids: dict[str, str]
) -> None:
    """Record a finished shard (the last thing it writes: a record means its parts are staged)."""
    record = ShardRecord(identity=plan.resume_identity, result=result, ids_sha256=ids)
    store.put_bytes(
        shard_record_key(plan.staging_prefix, result.shard), record.model_dump_json().encode()
    )


def reusable_result(store: ObjectStore, plan: RunPlan, index: int) -> ShardResult | None:
    """Shard `index`'s verified result: this attempt's own (a retried task), else the continued
    attempt's, copied into this one (its objects and then its record). None: score it."""
    own = _record(store, plan, plan.staging_prefix, index)
    if own is not None:
        problem = _unverified(store, own, plan.staging_prefix)
        if problem is None:
            return own.result.model_copy(update={"reused": True})
        log.warning("shard %d: staged %s; scoring it again", index, problem)
        return None
    if not plan.resumed_from:
        return None
    source = staging_prefix(plan.model.name, plan.run_key, plan.resumed_from)
    earlier = _record(store, plan, source, index)
    if earlier is None:
        return None
    problem = _unverified(store, earlier, source, copy_to=plan.staging_prefix)
    if problem:
        log.warning("shard %d: staged %s; scoring it again", index, problem)
        return None
    record = _moved(earlier, source, plan.staging_prefix)
    store.put_bytes(shard_record_key(plan.staging_prefix, index), record.model_dump_json().encode())
    return record.result.model_copy(update={"reused": True})


def _record(store: ObjectStore, plan: RunPlan, staging: str, index: int) -> ShardRecord | None:
    """Shard `index`'s record under `staging`, if there is one of this plan's identity."""
    body = store.get_bytes(shard_record_key(staging, index))
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
    return record


def _unverified(
    store: ObjectStore, record: ShardRecord, staging: str, copy_to: str | None = None
) -> str | None:
    """Why the record's objects cannot be reused (missing, other size, hash or rows), or None.

    With `copy_to`, each verified object is also written there, from the very bytes checked.
    """
    checks = [("part", p.key, p.sha256, p.bytes, p.rows) for p in record.result.parts]
    checks += [("staged", key, sha, None, None) for key, sha in record.ids_sha256.items()]
    for what, key, sha, size, rows in checks:
        if not key.startswith(staging):
            return f"{what} {key} is outside its attempt ({staging})"
        body = store.get_bytes(key)
        if body is None:
            return f"{what} {key} is missing"
        if (size is not None and len(body) != size) or hashlib.sha256(body).hexdigest() != sha:
            return f"{what} {key} differs from its record (size or sha256)"
        if rows is not None:
            got = pq.read_metadata(pa.BufferReader(body)).num_rows
            if got != rows:
                return f"{what} {key} holds {got:,} rows, its record says {rows:,}"
        if copy_to is not None:
            store.put_bytes(copy_to + key.removeprefix(staging), body)
    return None


def _moved(record: ShardRecord, source: str, target: str) -> ShardRecord:
    """The record with every key it names moved from one attempt's prefix to another's."""

    def move(key: str) -> str:
        return target + key.removeprefix(source)

    result = record.result.model_copy(
        update={
            "parts": [p.model_copy(update={"key": move(p.key)}) for p in record.result.parts],
            "ids_keys": {name: move(key) for name, key in record.result.ids_keys.items()},
            "audit_keys": {name: move(key) for name, key in record.result.audit_keys.items()},
        }
    )
    ids = {move(key): sha for key, sha in record.ids_sha256.items()}
    return record.model_copy(update={"result": result, "ids_sha256": ids})


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
