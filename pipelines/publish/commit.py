"""The commit protocol: a run becomes visible in one create-if-absent write of its manifest.

Parts are staged under a prefix unique to the attempt (the layout: `pipelines.publish.keys`); the
run becomes visible only when its manifest is written. Readers trust nothing without a manifest.
A rerun with identical output is a no-op; a different one is refused unless `overwrite`, which
swaps the manifest in one write (readers see the old run or the new one, never a mix).
"""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from pipelines.errors import PublishConflictError, StagingLostError, StorageError
from pipelines.publish.keys import attempts_prefix, manifest_key, manifest_run, staging_prefix
from pipelines.publish.manifest import RunManifest
from pipelines.storage.base import ObjectStore
from pipelines.termination import commit_shield

log = logging.getLogger(__name__)
FAULT_ENV = "BATCHSCORE_FAULT_AT"  # test hook: SIGKILL ourselves at a named point
BARRIER_ENV = "BATCHSCORE_COMMIT_BARRIER"  # test hook: "<n>:<folder>", n processes commit at once
OTHER_KEY_OR_OVERWRITE = (
    "use another run key (--run-key, run.key), or replace the published run: --overwrite, "
    "run.overwrite: true in params.yaml, or BATCHSCORE__RUN__OVERWRITE=true (e.g. for dvc repro)"
)


def maybe_fault(point: str) -> None:
    """Die like a killed worker would, when a test asks for it at this point."""
    if os.environ.get(FAULT_ENV) == point:
        log.warning("fault injection: SIGKILL at %s", point)
        os.kill(os.getpid(), signal.SIGKILL)


def maybe_wait_at_barrier(timeout_s: float = 60.0) -> None:
    """Hold the commit until `n` processes reach it, when a race test asks for it.

    `BATCHSCORE_COMMIT_BARRIER=<n>:<folder>`: each committer leaves a file in the folder and waits
    until there are `n`, so separate processes make their conditional writes at the same moment.
    """
    spec = os.environ.get(BARRIER_ENV)
    if not spec:
        return
    count, _, folder = spec.partition(":")
    Path(folder).mkdir(parents=True, exist_ok=True)
    Path(folder, f"{os.getpid()}-{uuid.uuid4().hex[:8]}").touch()
    deadline = time.monotonic() + timeout_s
    while len(os.listdir(folder)) < int(count):
        if time.monotonic() > deadline:
            arrived = len(os.listdir(folder))
            log.warning("commit barrier: %d of %s arrived; going on", arrived, count)
            return
        time.sleep(0.005)


def read_manifest(store: ObjectStore, model_name: str, run_key: str) -> RunManifest | None:
    """The committed manifest of a run, or None if the run is not published."""
    body = store.get_bytes(manifest_key(model_name, run_key))
    if body is None:
        return None
    try:
        return RunManifest.model_validate_json(body)
    except ValidationError as exc:
        raise StorageError(
            f"manifest of run {run_key} is unreadable: {exc.errors()[0]['msg']}",
            where=store.url(manifest_key(model_name, run_key)),
        ) from None


@dataclass(frozen=True)
class CommitOutcome:
    manifest: RunManifest  # the manifest now published (ours, or the identical existing one)
    status: str  # committed | identical | replaced


def commit_run(store: ObjectStore, manifest: RunManifest, overwrite: bool) -> CommitOutcome:
    """Publish a staged run with one conditional write of its manifest.

    SIGTERM is deferred from the write on (`commit_shield`): a published run is never reported
    as failed because a stop arrived a moment later.
    """
    maybe_fault("before_commit")
    with commit_shield():
        return _commit(store, manifest, overwrite)


def _commit(store: ObjectStore, manifest: RunManifest, overwrite: bool) -> CommitOutcome:
    key = manifest_key(manifest.model.name, manifest.run_key)
    body = manifest.model_dump_json(indent=2).encode()
    maybe_wait_at_barrier()
    _refuse_missing_parts(store, manifest)
    if store.put_bytes(key, body, if_absent=True):
        status, published = "committed", manifest
    else:
        existing = read_manifest(store, manifest.model.name, manifest.run_key)
        if existing is None:  # deleted between our write and read: try once more
            if not store.put_bytes(key, body, if_absent=True):
                raise PublishConflictError(
                    f"run {manifest.run_key} is being published concurrently"
                )
            status, published = "committed", manifest
        elif existing.content_sha256 == manifest.content_sha256:
            status, published = "identical", existing
        elif overwrite:
            _check_parts_staged(store, manifest)
            store.put_bytes(key, body)
            status, published = "replaced", manifest
        else:
            discard_attempt(store, manifest)
            raise PublishConflictError(
                f"run {manifest.run_key} of model {manifest.model.name} is already published "
                f"with different output (attempt {existing.attempt_id}, "
                f"{existing.counts.rows_scored:,} rows scored, created {existing.created_at})",
                where=store.url(key),
                fix=OTHER_KEY_OR_OVERWRITE,
            )
    # Published: from here on nothing may fail the run. Clean-up is best effort (the next
    # commit of this run, or a rerun, removes what is left).
    try:
        removed = remove_stale_attempts(store, published)
    except Exception as exc:
        log.warning("run %s: published; stale staging not cleaned up (%s)", manifest.run_key, exc)
        removed = 0
    log.info(
        "run %s %s at %s (%d stale staging object(s) removed)",
        manifest.run_key,
        status,
        store.url(key),
        removed,
    )
    return CommitOutcome(published, status)


def _missing_parts(store: ObjectStore, manifest: RunManifest) -> list[str]:
    """The parts the manifest names that are not staged (one listing of the attempt)."""
    m = manifest
    staged = set(store.list_keys(staging_prefix(m.model.name, m.run_key, m.attempt_id)))
    return [p.key for p in manifest.parts if p.key not in staged]


def _refuse_missing_parts(store: ObjectStore, manifest: RunManifest) -> None:
    """A manifest is never written over parts that are gone.

    If another attempt published meanwhile (its clean-up removes ours), the conditional write
    below fails and says identical or conflict; otherwise the parts went missing some other way.
    """
    gone = _missing_parts(store, manifest)
    if gone and read_manifest(store, manifest.model.name, manifest.run_key) is None:
        raise StagingLostError(
            f"{len(gone)} of the {len(manifest.parts)} staged part(s) of run "
            f"{manifest.run_key} (attempt {manifest.attempt_id}) are gone before its commit, "
            f"e.g. {gone[0]}; nothing was published",
            where=store.url(gone[0]),
            fix="check what else deletes under the output URI (a lifecycle rule, another job), "
            "then run it again",
        )


def _check_parts_staged(store: ObjectStore, manifest: RunManifest) -> None:
    """Before replacing a published run: every part we are about to point at still exists.

    The commit that published the current run removed every other attempt's staging, so an
    attempt that raced it would otherwise publish a manifest of deleted parts.
    """
    gone = _missing_parts(store, manifest)
    if gone:
        raise PublishConflictError(
            f"run {manifest.run_key} was published by another attempt while this one was "
            f"finishing, and {len(gone)} of this attempt's staged part(s) are gone, e.g. {gone[0]}",
            fix="run it again to replace the published run",
        )


def discard_attempt(store: ObjectStore, manifest: RunManifest) -> None:
    """Delete an attempt's staged parts (it failed or lost the race)."""
    prefix = staging_prefix(manifest.model.name, manifest.run_key, manifest.attempt_id)
    store.delete(store.list_keys(prefix))


def remove_stale_attempts(store: ObjectStore, published: RunManifest) -> int:
    """Delete every attempt of this run but the published one, and orphaned uploads."""
    attempts = attempts_prefix(published.model.name, published.run_key)
    keep = staging_prefix(published.model.name, published.run_key, published.attempt_id)
    stale = [k for k in store.list_keys(attempts) if not k.startswith(keep)]
    store.delete(stale)
    store.cleanup_incomplete(attempts, older_than_s=0)
    return len(stale)


def list_runs(store: ObjectStore) -> list[RunManifest]:
    """Every published run under the output URI, newest first."""
    runs = []
    for key in store.list_keys(""):
        if (run := manifest_run(key)) is not None:
            manifest = read_manifest(store, *run)
            if manifest:
                runs.append(manifest)
    return sorted(runs, key=lambda m: m.created_at, reverse=True)
