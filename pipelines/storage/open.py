"""Open the backend the output URI names: `file://` is a local folder, anything else is S3.

Kept apart from `base` so that the interface does not import its implementations (and S3's
boto3 is imported only when an `s3://` URI asks for it).
"""

from __future__ import annotations

from pathlib import Path

from pipelines.config import Settings
from pipelines.storage.base import ObjectStore
from pipelines.storage.local import LocalStore


def open_store(cfg: Settings) -> ObjectStore:
    """The backend the output URI names; `s3://` needs no code change, only the URI."""
    uri = cfg.output.uri
    if uri.startswith("file://"):
        return LocalStore(Path(uri.removeprefix("file://")))
    from pipelines.storage.s3 import S3Store  # boto3 only when asked for

    return S3Store.from_config(cfg)
