"""The history of alias moves, kept in the registry itself as registered-model tags.

MLflow keeps only where an alias points now (mlflow#2169), so every move batchscore makes is
also written as the tag `batchscore.alias_move.<seq:06d>` = JSON on the registered model: every
client reads the same history, and it survives as long as the model does. Pure functions here;
aliases.py does the reading and writing.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MOVE_TAG = "batchscore.alias_move."
WHY_LIMIT = 2000  # characters of a reason kept (MLflow caps a tag value's length)


@dataclass(frozen=True)
class AliasMove:
    """One move of one alias: `history --json` prints `to_dict()` of each."""

    seq: int
    at: str  # UTC, ISO 8601
    who: str
    alias: str
    from_: int | None
    to: int
    why: str | None
    action: str  # "promote" or "rollback"
    token: str = ""  # unique per move: which writer made it

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "who": self.who,
            "alias": self.alias,
            "from": self.from_,
            "to": self.to,
            "why": self.why,
            "action": self.action,
        }

    def tag(self) -> tuple[str, str]:
        """The registered-model tag (key, value) that records this move."""
        return f"{MOVE_TAG}{self.seq:06d}", json.dumps({**self.to_dict(), "token": self.token})


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def current_user(environ: Mapping[str, str] | None = None) -> str:
    """Who moves an alias: $BATCHSCORE_USER (CI, Airflow), else the OS user."""
    env = os.environ if environ is None else environ
    if env.get("BATCHSCORE_USER"):
        return env["BATCHSCORE_USER"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def moves_from_tags(tags: Mapping[str, str]) -> list[AliasMove]:
    """Every recorded move, in order; a tag that is not ours or not readable is skipped."""
    moves = []
    for key, value in tags.items():
        if not key.startswith(MOVE_TAG):
            continue
        try:
            doc = json.loads(value)
            moves.append(
                AliasMove(
                    seq=int(doc["seq"]),
                    at=str(doc["at"]),
                    who=str(doc["who"]),
                    alias=str(doc["alias"]),
                    from_=None if doc["from"] is None else int(doc["from"]),
                    to=int(doc["to"]),
                    why=doc.get("why"),
                    action=str(doc["action"]),
                    token=str(doc.get("token", "")),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(moves, key=lambda m: m.seq)


def next_seq(moves: Iterable[AliasMove]) -> int:
    return max((m.seq for m in moves), default=0) + 1


def previous_holder(moves: Iterable[AliasMove], alias: str, current: int | None) -> int | None:
    """Where a rollback of `alias` goes: the holder before the current one, per the history.

    Holders form a stack: a promote pushes, a rollback pops, so two rollbacks after two
    promotions walk back twice rather than toggling. If the alias was moved outside batchscore
    (it no longer points where the history says), the last recorded holder is the way back.
    """
    stack: list[int] = []
    for move in moves:
        if move.alias != alias:
            continue
        if move.action == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != move.to:
                stack.append(move.to)
            continue
        if not stack and move.from_ is not None:
            stack.append(move.from_)
        stack.append(move.to)
    if not stack:
        return None
    if stack[-1] != current:
        return stack[-1]
    return stack[-2] if len(stack) >= 2 else None


def last_move_of(moves: Iterable[AliasMove], alias: str) -> AliasMove | None:
    found = [m for m in moves if m.alias == alias]
    return found[-1] if found else None


def clip_reason(why: str | None) -> str | None:
    if why is None or not why.strip():
        return None
    return why.strip()[:WHY_LIMIT]
