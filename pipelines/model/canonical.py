"""Same model, same bytes: a skops file rewritten so that retraining reproduces its sha256.

skops names each array file in its zip after the array's `id()` (a memory address), keys its
memo of shared objects (`__id__` in schema.json) by `id()` too, and stamps every entry with the
time of the dump, so two fits of the same data with the same seed give
different files. Their sha256 is the model's identity here: it is pinned, it goes into the run
fingerprint and into `dvc.lock`. A different hash for the same model would make DVC rerun every
later stage and make an identical rerun look like a new model ("already published from other
inputs"). The rewrite renumbers entries and memo ids in order of first mention in schema.json
(only their equality matters to skops) and fixes the timestamps; what skops loads is unchanged.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
SCHEMA = "schema.json"
MEMO_KEY = "__id__"


def canonicalize_skops(path: Path) -> None:
    """Rewrite the skops file at `path` in place with stable entry names and timestamps."""
    with zipfile.ZipFile(path) as zin:
        infos = zin.infolist()
        blobs = {info.filename: zin.read(info) for info in infos}
    if SCHEMA not in blobs:
        return  # not a skops layout we know: leave it as it is
    schema = json.loads(blobs[SCHEMA])
    order = _mentions(schema, set(blobs) - {SCHEMA})
    renames = {old: f"{n:05d}{Path(old).suffix}" for n, old in enumerate(order)}
    if len(order) != len(blobs) - 1:
        renames = {}  # an entry schema.json never names: keep every name, fix timestamps only
    ids = {old: n + 1 for n, old in enumerate(_memo_ids(schema))}
    blobs[SCHEMA] = json.dumps(_rename(schema, renames, ids), separators=(",", ":")).encode()
    tmp = path.with_name(path.name + ".canonical")
    with zipfile.ZipFile(tmp, "w") as zout:
        for info in sorted(infos, key=lambda i: renames.get(i.filename, i.filename)):
            entry = zipfile.ZipInfo(renames.get(info.filename, info.filename), _EPOCH)
            entry.compress_type = info.compress_type
            entry.external_attr = info.external_attr
            zout.writestr(entry, blobs[info.filename])
    tmp.replace(path)


def _mentions(node: Any, names: set[str], found: list[str] | None = None) -> list[str]:
    """The entry names `node` mentions, in order of first mention (depth first)."""
    found = [] if found is None else found
    if isinstance(node, str):
        if node in names and node not in found:
            found.append(node)
    elif isinstance(node, dict):
        for key, value in node.items():
            _mentions(key, names, found)
            _mentions(value, names, found)
    elif isinstance(node, list):
        for value in node:
            _mentions(value, names, found)
    return found


def _memo_ids(node: Any, found: dict[int, None] | None = None) -> list[int]:
    """The `__id__` values in `node`, in order of first mention."""
    found = {} if found is None else found
    if isinstance(node, dict):
        if isinstance(node.get(MEMO_KEY), int):
            found.setdefault(node[MEMO_KEY], None)
        for value in node.values():
            _memo_ids(value, found)
    elif isinstance(node, list):
        for value in node:
            _memo_ids(value, found)
    return list(found)


def _rename(node: Any, renames: dict[str, str], ids: dict[int, int]) -> Any:
    if isinstance(node, str):
        return renames.get(node, node)
    if isinstance(node, dict):
        out = {renames.get(k, k): _rename(v, renames, ids) for k, v in node.items()}
        if isinstance(out.get(MEMO_KEY), int):
            out[MEMO_KEY] = ids[out[MEMO_KEY]]
        return out
    if isinstance(node, list):
        return [_rename(v, renames, ids) for v in node]
    return node
