"""A short-lived mutex per registered model, so two clients never move its aliases at once.

MLflow has no compare-and-set for aliases or tags, but a registered model's name is unique in
every backend (a primary key in SQL): creating `<name>.batchscore-lock` succeeds for exactly one
client. The holder reads, checks and writes, then deletes the lock. A lock older than
`lock_stale_s` was left by a crashed client and is broken (after re-reading its token, so a
fresh lock is not).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from pipelines.registry.client import Registry, error_code, translated
from pipelines.registry.errors import AliasConflictError
from pipelines.registry.history import now_utc
from pipelines.registry.versions import LOCK_SUFFIX

TOKEN_TAG, WHO_TAG = "batchscore.lock.token", "batchscore.lock.who"
AT_TAG, EPOCH_TAG = "batchscore.lock.at", "batchscore.lock.epoch"


@contextmanager
def alias_lock(registry: Registry, name: str, who: str) -> Iterator[str]:
    """Hold the lock of `name` for the body; yield this holder's unique token."""
    token, lock = uuid.uuid4().hex, name + LOCK_SUFFIX
    deadline = time.monotonic() + registry.settings.lock_wait_s
    pause = 0.02
    while not _try_take(registry, lock, token, who):
        with translated(registry.endpoint, f"reading the alias lock of {name}"):
            held = _held_by(registry, lock)
        if held is None:
            continue  # released between our attempt and the read: try again at once
        if time.time() - float(held.get(EPOCH_TAG, "0")) > registry.settings.lock_stale_s:
            with translated(registry.endpoint, f"breaking a stale alias lock of {name}"):
                _release(registry, lock, held.get(TOKEN_TAG, ""))
            continue
        if time.monotonic() >= deadline:
            raise AliasConflictError(
                f"the aliases of {name} are being moved by {held.get(WHO_TAG, '?')} "
                f"(since {held.get(AT_TAG, '?')}); this move was not made",
                where=registry.endpoint.shown,
                fix="rerun when that move is done; a lock left by a crashed client expires "
                f"after {registry.settings.lock_stale_s:g} s (registry.lock_stale_s)",
            )
        time.sleep(pause)
        pause = min(pause * 2, 0.5)
    try:
        yield token
    finally:
        with translated(registry.endpoint, f"releasing the alias lock of {name}"):
            _release(registry, lock, token)


def _try_take(registry: Registry, lock: str, token: str, who: str) -> bool:
    """Create the lock model: True if we now hold it, False if another client does."""
    from mlflow.exceptions import MlflowException

    tags = {TOKEN_TAG: token, WHO_TAG: who, AT_TAG: now_utc(), EPOCH_TAG: repr(time.time())}
    with translated(registry.endpoint, "taking the alias lock"):
        try:
            registry.client.create_registered_model(
                lock,
                tags=tags,
                description="held by batchscore while it moves an alias; deleted right after",
            )
        except MlflowException as exc:
            if error_code(exc) == "RESOURCE_ALREADY_EXISTS" or "locked" in str(exc):
                return False
            raise
    return True


def _held_by(registry: Registry, lock: str) -> dict[str, str] | None:
    from mlflow.exceptions import MlflowException

    try:
        return dict(registry.client.get_registered_model(lock).tags or {})
    except MlflowException as exc:
        if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def _release(registry: Registry, lock: str, token: str) -> None:
    """Delete the lock if `token` still holds it (never another holder's lock)."""
    from mlflow.exceptions import MlflowException

    held = _held_by(registry, lock)
    if held is None or held.get(TOKEN_TAG) != token:
        return
    try:
        registry.client.delete_registered_model(lock)
    except MlflowException as exc:
        if error_code(exc) != "RESOURCE_DOES_NOT_EXIST":
            raise
