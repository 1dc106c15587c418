"""Model URIs (`models:/NAME@ALIAS`, `models:/NAME/VERSION`, else a file path) and redaction.

Parsing is pure so the run plan can tell a registry model from a file without touching MLflow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pipelines.errors import ConfigError

SCHEME = "models:/"
RESERVED_ALIAS = re.compile(r"^(v\d+|latest)$", re.IGNORECASE)
_OTHER_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")
_USERINFO = re.compile(r"(?<=://)([^/@]+)@")
_SECRET_QUERY = re.compile(r"(?i)([?&](?:password|token|secret|key|sig|signature)=)[^&#]*")


@dataclass(frozen=True)
class RegistryRef:
    """A model in the registry: a name and exactly one of a version or an alias."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        tail = f"@{self.alias}" if self.alias else f"/{self.version}"
        return f"{SCHEME}{self.name}{tail}"


def parse_model_uri(uri: str) -> RegistryRef | Path:
    """`models:/NAME@ALIAS` or `models:/NAME/VERSION` -> RegistryRef; a path -> Path.

    `file://` paths are paths; any other scheme (`s3://`, `runs:/`) is refused, since a model
    is read either from the registry (pinned there) or from a local file (pinned by sha256).
    """
    if not uri.startswith(SCHEME):
        if uri.startswith("file://"):
            return Path(uri[len("file://") :])
        if _OTHER_SCHEME.match(uri):
            raise ConfigError(
                f"model URI {uri!r} is neither models:/ nor a file path",
                fix="use models:/NAME@ALIAS, models:/NAME/VERSION or a local .skops path",
            )
        return Path(uri)
    rest = uri[len(SCHEME) :]
    if "@" in rest:
        name, _, alias = rest.rpartition("@")
        _check_name(name, uri)
        check_alias(alias)
        return RegistryRef(name=name, alias=alias)
    name, slash, version = rest.rpartition("/")
    if slash:
        _check_name(name, uri)
    if not slash or not version.isdigit() or int(version) < 1:
        raise ConfigError(
            f"model URI {uri!r} names no version or alias ({version!r} is not a version number)",
            fix=f"use {SCHEME}NAME@ALIAS (e.g. {SCHEME}{name or rest}@champion) or "
            f"{SCHEME}NAME/VERSION (e.g. {SCHEME}{name or rest}/3); stages are deprecated",
        )
    return RegistryRef(name=name, version=int(version))


def _check_name(name: str, uri: str) -> None:
    if not name or name.startswith("/"):
        raise ConfigError(
            f"model URI {uri!r} has no model name",
            fix=f"write it as {SCHEME}NAME@ALIAS or {SCHEME}NAME/VERSION (one slash after models:)",
        )


def check_alias(alias: str) -> None:
    """Refuse alias names MLflow reserves (`v1`, `latest`) or cannot store, before any call."""
    if RESERVED_ALIAS.match(alias):
        raise ConfigError(
            f"alias {alias!r} is reserved by MLflow (v<number> and latest name versions)",
            fix="pick another alias name, e.g. champion, challenger or prod",
        )
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,255}", alias):
        raise ConfigError(
            f"alias {alias!r} is not a valid alias name",
            fix="use letters, digits, '-' and '_' only (e.g. champion)",
        )


def redact_uri(uri: str) -> str:
    """The URI with any password or token replaced by ***, safe for logs, reports and pins."""
    redacted = _USERINFO.sub(lambda m: f"{m.group(1).partition(':')[0]}:***@", uri)
    return _SECRET_QUERY.sub(lambda m: f"{m.group(1)}***", redacted)
