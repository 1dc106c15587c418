"""Reading `params.yaml`: which file, its sections, and where each key is written (for errors).

YAML would keep the last of two equal keys without a word; this loader refuses them instead, with
both line numbers, so a duplicated `score:` block is never half-ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pipelines.errors import ConfigError

PARAMS_ENV = "BATCHSCORE_PARAMS"  # the params file to read (default: ./params.yaml, if any)


def params_file(given: str | Path | None, environ: Mapping[str, str]) -> Path | None:
    """The params file to read; None means built-in defaults (no ./params.yaml, none named)."""
    named = given or environ.get(PARAMS_ENV)
    if not named:
        default = Path("params.yaml")
        return default if default.is_file() else None
    path = Path(named)
    if not path.is_file():
        raise ConfigError(
            f"params file {path.resolve()} not found",
            fix=f"check --params / {PARAMS_ENV} (unset: ./params.yaml if any, else defaults)",
        )
    return path


def read_params(path: Path) -> tuple[dict[str, Any], dict[str, str | None]]:
    """The file's sections, and where each dotted key in it is written (file, line)."""
    text = path.read_text()
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader) or {}
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"params file is not valid YAML: {exc}", where=str(path)) from None
    if not isinstance(raw, dict):
        raise ConfigError("params file must be a mapping of sections", where=str(path))
    where: dict[str, str | None] = {}
    _lines(node, "", path, where)
    return raw, where


def _lines(node: Any, prefix: str, path: Path, where: dict[str, str | None]) -> None:
    """`where[a.b.c] = "file, line N"` for every key of every nested mapping."""
    if not isinstance(node, yaml.MappingNode):
        return
    for key, value in node.value:
        dotted = f"{prefix}{key.value}"
        where[dotted] = f"{path}, line {key.start_mark.line + 1}"
        _lines(value, f"{dotted}.", path, where)


class _UniqueKeyLoader(yaml.SafeLoader):
    """Refuses a key given twice in a mapping (YAML would keep the last without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            line = key_node.start_mark.line + 1
            if key in seen:
                why = f"key {key!r} appears twice in one mapping, on lines {seen[key]} and {line}; "
                why += "YAML would silently keep only the last. Merge them into one"
                raise yaml.constructor.ConstructorError(None, None, why, key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)
