"""What outcomes needs from the output location, as protocols (no import of storage or publish).

`pipelines.config` nests `outcomes.settings`, and `storage` imports `config`, so this package
imports neither `storage` nor `publish` (tests/test_layout.py: no cycle between rooms). Callers
pass an `ObjectStore` (it has these methods) and the module `pipelines.publish.keys` (it has
these functions): every key is still built there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class Store(Protocol):
    """The part of `pipelines.storage.base.ObjectStore` that label deliveries use."""

    uri: str

    def put_file(self, local: Path, key: str) -> None: ...

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> bool: ...

    def get_bytes(self, key: str) -> bytes | None: ...

    def list_keys(self, prefix: str) -> list[str]: ...

    def modified_at(self, key: str) -> float | None: ...

    def url(self, key: str) -> str: ...

    def local_path(self, key: str) -> Path | None: ...


class Keys(Protocol):
    """The key functions of `pipelines.publish.keys` that label deliveries use."""

    def manifest_key(self, model_name: str, run_key: str) -> str: ...

    def manifest_run(self, key: str) -> tuple[str, str] | None: ...

    def deliveries_prefix(self, model_name: str, run_key: str) -> str: ...

    def delivery_key(self, model_name: str, run_key: str, digest: str, suffix: str) -> str: ...

    def delivery_of(self, key: str) -> str | None: ...

    def evaluation_key(self, model_name: str, run_key: str, name: str) -> str: ...
