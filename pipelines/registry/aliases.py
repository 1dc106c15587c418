"""Move aliases (promote, rollback) and read their history, safely against racing clients.

Every move happens under the model's lock (lock.py) and in this order: read where the alias
points, check it is where the caller expected, move it, record the move, re-read both. So two
clients moving the same alias are serialized; a caller that passed `expected_from` fails
loudly if someone moved the alias in between, and its move is neither made nor recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pipelines.registry.client import Registry, open_registry, translated
from pipelines.registry.errors import AliasConflictError, RegistryError
from pipelines.registry.history import (
    AliasMove,
    clip_reason,
    current_user,
    last_move_of,
    moves_from_tags,
    next_seq,
    now_utc,
    previous_holder,
)
from pipelines.registry.lock import alias_lock
from pipelines.registry.settings import RegistrySettings
from pipelines.registry.uri import check_alias
from pipelines.registry.versions import get_model, get_version

DEFAULT_ALIAS = "champion"
Expected = int | None | Literal["any"]


def promote(
    name: str,
    version: int,
    settings: RegistrySettings,
    root: Path,
    *,
    alias: str = DEFAULT_ALIAS,
    reason: str | None = None,
    who: str | None = None,
    expected_from: Expected = "any",
) -> AliasMove | None:
    """Point `alias` of `name` at `version`; return the recorded move (None: it already did).

    `expected_from` is the holder the caller read (None: unset); if the alias points elsewhere
    by the time the lock is held, AliasConflictError says who moved it, and nothing changes.
    """
    check_alias(alias)
    who = who or current_user()
    registry = open_registry(settings, root)
    get_version(registry, name, version)
    with alias_lock(registry, name, who) as token:
        model = get_model(registry, name)
        moves, current = moves_from_tags(model.tags or {}), _holder(model, alias)
        if expected_from != "any" and current != expected_from:
            raise _moved_meanwhile(registry, name, alias, expected_from, current, moves)
        if current == version:
            return None
        move = _move(moves, who, alias, current, version, reason, "promote", token)
        _apply(registry, name, move)
    return move


def rollback(
    name: str,
    settings: RegistrySettings,
    root: Path,
    *,
    alias: str = DEFAULT_ALIAS,
    reason: str | None = None,
    who: str | None = None,
) -> AliasMove:
    """Point `alias` back at its previous holder per the history; return the recorded move."""
    check_alias(alias)
    who = who or current_user()
    registry = open_registry(settings, root)
    with alias_lock(registry, name, who) as token:
        model = get_model(registry, name)
        moves, current = moves_from_tags(model.tags or {}), _holder(model, alias)
        if current is None:
            raise _unknown_alias(registry, name, alias, model)
        target = previous_holder(moves, alias, current)
        if target is None:
            raise RegistryError(
                f"{alias} of {name} has no previous holder in its history (it points at "
                f"version {current}, and no earlier version held it)",
                where=registry.endpoint.shown,
                fix=f"promote a version explicitly: batchscore model promote {name} VERSION "
                f"--alias {alias}",
            )
        get_version(registry, name, target)
        move = _move(moves, who, alias, current, target, reason, "rollback", token)
        _apply(registry, name, move)
    return move


def history(
    name: str, settings: RegistrySettings, root: Path, *, alias: str | None = None
) -> list[AliasMove]:
    """Every recorded move of `name`'s aliases (or of one alias), oldest first."""
    registry = open_registry(settings, root)
    moves = moves_from_tags(get_model(registry, name).tags or {})
    return [m for m in moves if alias is None or m.alias == alias]


def holder(name: str, alias: str, settings: RegistrySettings, root: Path) -> int | None:
    """The version `alias` points at now (None: unset)."""
    return _holder(get_model(open_registry(settings, root), name), alias)


def _holder(model: Any, alias: str) -> int | None:
    found = (model.aliases or {}).get(alias)
    return None if found is None else int(found)


def _move(
    moves: list[AliasMove],
    who: str,
    alias: str,
    current: int | None,
    target: int,
    reason: str | None,
    action: str,
    token: str,
) -> AliasMove:
    """The next move of `alias` in the history: from its holder to `target`, by `who`, now."""
    return AliasMove(
        seq=next_seq(moves),
        at=now_utc(),
        who=who,
        alias=alias,
        from_=current,
        to=target,
        why=clip_reason(reason),
        action=action,
        token=token,
    )


def _apply(registry: Registry, name: str, move: AliasMove) -> None:
    """Move the alias, record the move, then re-read: a writer outside the lock is detected."""
    client = registry.client
    key, value = move.tag()
    with translated(registry.endpoint, f"moving {move.alias} of {name} to version {move.to}"):
        client.set_registered_model_alias(name, move.alias, str(move.to))
        client.set_registered_model_tag(name, key, value)
        after = client.get_registered_model(name)
    recorded = moves_from_tags({key: (after.tags or {}).get(key, "{}")})
    if _holder(after, move.alias) != move.to or not recorded or recorded[0].token != move.token:
        raise AliasConflictError(
            f"{move.alias} of {name} was changed outside batchscore right after this move "
            f"(it now points at {_holder(after, move.alias)}, not {move.to})",
            where=registry.endpoint.shown,
            fix=f"check `batchscore model history {name}` and the MLflow UI, then rerun",
        )


def _moved_meanwhile(
    registry: Registry,
    name: str,
    alias: str,
    expected: int | None,
    current: int | None,
    moves: list[AliasMove],
) -> AliasConflictError:
    last = last_move_of(moves, alias)
    if last is not None and last.to == current:
        how = f"from {_v(last.from_)} to {_v(last.to)} at {last.at} by {last.who}"
    else:
        how = f"from {_v(expected)} to {_v(current)} (not through batchscore)"
    return AliasConflictError(
        f"{alias} of {name} moved by someone else meanwhile: {how}; this move was not made",
        where=registry.endpoint.shown,
        fix=f"check `batchscore model history {name}`, then rerun if the move is still wanted",
    )


def _unknown_alias(registry: Registry, name: str, alias: str, model: Any) -> RegistryError:
    aliases = ", ".join(f"{a} (v{v})" for a, v in sorted((model.aliases or {}).items()))
    return RegistryError(
        f"model {name!r} has no alias {alias!r} (aliases: {aliases or 'none'})",
        where=registry.endpoint.shown,
        fix=f"promote a version first: batchscore model promote {name} VERSION --alias {alias}",
    )


def _v(version: int | None) -> str:
    return "nothing" if version is None else f"v{version}"
