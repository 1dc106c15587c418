"""The published runs a label delivery is for, and what their scores mean.

A run is chosen by key (`--run-key`) or by a window of dates (`--from`/`--to`): a run key that
starts with an ISO date (2026-11-23, 2026-11-23T02) is dated by it, any other by the day its
manifest was created (UTC). Only committed runs count: a run without a manifest does not exist.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.errors import InputDataError, StorageError
from pipelines.outcomes.store import Keys, Store

CHALLENGER = "challenger"  # the part kind a challenger's scores are published as


@dataclass(frozen=True)
class RunScores:
    """A published run to join labels to: its identity, the meaning of `score`, its parts."""

    model: str
    run_key: str
    content_sha256: str
    id_column: str | None  # None: the first column of the parts (older manifests)
    kind: str  # binary | multiclass
    classes: tuple[str, ...]
    positive_class: str | None
    proba_columns: tuple[str, ...]
    rows_scored: int
    part_keys: tuple[str, ...]
    # the challenger's part of each scores part's shard (None: none for it); () without one
    challenger_keys: tuple[str | None, ...] = ()
    challenger_model: dict[str, Any] | None = None  # the manifest's `challenger.model`

    @property
    def ref(self) -> str:
        return f"{self.model}/{self.run_key}"

    @property
    def has_challenger(self) -> bool:
        return any(k is not None for k in self.challenger_keys)


def run_scores(manifest: dict[str, Any]) -> RunScores:
    """What a manifest (as JSON) says about its scores (`scores` block), as the join needs it."""
    s = manifest.get("scores") or {}
    model, run_key = manifest["model"]["name"], manifest["run_key"]
    classes = tuple(str(c) for c in s.get("classes") or ())
    if not classes:
        raise InputDataError(
            f"run {run_key} does not record its model's classes (manifest `scores`)",
            where=f"{model}/{run_key}",
            fix="labels can be joined to runs published by this batchscore version or later",
        )
    kind = str(s.get("kind") or ("binary" if len(classes) == 2 else "multiclass"))
    scores = [p for p in manifest["parts"] if p["kind"] == "scores"]
    # a challenger part lines up row by row with the scores part of its shard
    shadow = {p.get("shard"): p["key"] for p in manifest["parts"] if p["kind"] == CHALLENGER}
    return RunScores(
        model=model,
        run_key=run_key,
        content_sha256=manifest["content_sha256"],
        id_column=s.get("id_column"),
        kind=kind,
        classes=classes,
        positive_class=s.get("positive_class") if kind == "binary" else None,
        proba_columns=tuple(s.get("proba_columns") or ()),
        rows_scored=int(manifest["counts"]["rows_scored"]),
        part_keys=tuple(p["key"] for p in scores),
        challenger_keys=tuple(shadow.get(p.get("shard")) for p in scores) if shadow else (),
        challenger_model=(manifest.get("challenger") or {}).get("model") if shadow else None,
    )


def read_manifest(store: Store, keys: Keys, model: str, run_key: str) -> dict[str, Any] | None:
    """A committed run's manifest as JSON, or None if the run is not published."""
    body = store.get_bytes(keys.manifest_key(model, run_key))
    if body is None:
        return None
    try:
        return dict(json.loads(body))
    except ValueError:
        raise StorageError(
            f"manifest of run {run_key} is unreadable",
            where=store.url(keys.manifest_key(model, run_key)),
        ) from None


def published_runs(store: Store, keys: Keys) -> list[dict[str, Any]]:
    """Every committed run's manifest under the output location."""
    found = []
    for key in store.list_keys(""):
        if (run := keys.manifest_run(key)) and (m := read_manifest(store, keys, *run)):
            found.append(m)
    return found


def select_runs(
    store: Store,
    keys: Keys,
    model: str | None,
    run_key: str | None,
    date_from: dt.date | None,
    date_to: dt.date | None,
) -> list[dict[str, Any]]:
    """The published runs named by key or dated in [from, to], by name; an error if none."""
    runs = [m for m in published_runs(store, keys) if model in (None, m["model"]["name"])]
    lo, hi = date_from or dt.date.min, date_to or dt.date.max
    if run_key is not None:
        chosen = [m for m in runs if m["run_key"] == run_key]
    else:
        chosen = [m for m in runs if lo <= run_date(m) <= hi]
    if not chosen:
        refs = {f"{m['model']['name']}/{m['run_key']}" for m in runs}
        listed = ", ".join(sorted(refs)[:20]) or "none"
        what = f"run key {run_key!r}" if run_key is not None else f"runs dated {lo} to {hi}"
        raise InputDataError(
            f"no published {what}" + (f" of model {model!r}" if model else ""),
            where=store.uri,
            fix=f"published runs there: {listed}; pass one with --run-key (and --model), "
            "or --output for another location",
        )
    return sorted(chosen, key=lambda m: (m["model"]["name"], m["run_key"]))


def run_date(manifest: dict[str, Any]) -> dt.date:
    """The date in the run key if it starts with one, else the manifest's creation day (UTC)."""
    try:
        return dt.date.fromisoformat(manifest["run_key"][:10])
    except ValueError:
        created = dt.datetime.fromisoformat(manifest["created_at"])
        return created.astimezone(dt.UTC).date() if created.tzinfo else created.date()


def local_copy(store: Store, key: str, folder: Path) -> tuple[Path, bool]:
    """A local file with the object's bytes, and whether it is a temp copy to delete after.

    A local folder is read in place. Other backends are downloaded with `get_file` when they
    have it (streamed, bounded memory), else through `get_bytes` (one part in memory).
    """
    if (path := store.local_path(key)) is not None:
        if not path.is_file():
            raise InputDataError(f"published object {key} is missing", where=store.url(key))
        return path, False
    dest = folder / key.replace("/", "__")
    get_file = getattr(store, "get_file", None)
    if callable(get_file):
        get_file(key, dest)
        return dest, True
    body = store.get_bytes(key)
    if body is None:
        raise InputDataError(f"published object {key} is missing", where=store.url(key))
    dest.write_bytes(body)
    del body
    return dest, True
