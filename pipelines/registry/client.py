"""The MLflow client, made from the settings and the environment, and MLflow's errors made ours.

Importing mlflow costs about two seconds, so it is imported here, inside functions, only when a
registry is actually used. MLflow's own HTTP knobs are environment variables; we set them from the
settings (a dead server otherwise retries for minutes) unless the user set them before start.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.registry.errors import RegistryError, RegistryUnavailableError
from pipelines.registry.settings import RegistrySettings
from pipelines.registry.uri import redact_uri

TRACKING_ENV, REGISTRY_ENV = "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"
DEFAULT_DB, DEFAULT_ARTIFACTS = "mlflow.db", "mlartifacts"
_SET_BY_USER = frozenset(k for k in os.environ if k.startswith("MLFLOW_"))
POINT_ELSEWHERE = (
    f"start the server, or point ${TRACKING_ENV}, registry.uri in params.yaml or "
    "--registry-uri at one that runs"
)


@dataclass(frozen=True)
class Endpoint:
    """Which registry we talk to: tracking and registry URIs, and (SQLite) the artifact folder."""

    tracking_uri: str
    registry_uri: str
    artifact_root: Path | None  # local artifact folder of an embedded SQLite registry

    @property
    def shown(self) -> str:
        """The registry URI with secrets redacted: what users, logs and pins see."""
        return redact_uri(self.registry_uri)


@dataclass(frozen=True)
class Registry:
    """An open MLflow client and where it points; passed to every registry operation."""

    client: Any  # mlflow.MlflowClient
    endpoint: Endpoint
    settings: RegistrySettings


def endpoint_for(
    settings: RegistrySettings, root: Path, environ: Mapping[str, str] | None = None
) -> Endpoint:
    """$MLFLOW_TRACKING_URI, else `settings.uri`, else `sqlite:///<root>/mlflow.db`.

    A SQLite registry keeps its artifacts in `mlartifacts/` beside the database file, so the
    embedded default is one folder a user can copy or delete.
    """
    env = os.environ if environ is None else environ
    tracking = env.get(TRACKING_ENV) or settings.uri
    if not tracking:
        tracking = f"sqlite:///{(root / DEFAULT_DB).resolve()}"
    registry = env.get(REGISTRY_ENV) or tracking
    artifacts = None
    if tracking.startswith("sqlite:///"):
        db = Path(tracking[len("sqlite:///") :])
        artifacts = (db if db.is_absolute() else (root / db)).resolve().parent / DEFAULT_ARTIFACTS
    return Endpoint(tracking, registry, artifacts)


def open_registry(
    settings: RegistrySettings, root: Path, environ: Mapping[str, str] | None = None
) -> Registry:
    """An MLflow client for the registry the settings and environment name."""
    endpoint = endpoint_for(settings, root, environ)
    if endpoint.artifact_root is not None:  # SQLite creates the file, not its folder
        endpoint.artifact_root.parent.mkdir(parents=True, exist_ok=True)
    knobs = {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(settings.http_timeout_s),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(settings.http_max_retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    for name, value in knobs.items():
        if name not in _SET_BY_USER:
            os.environ[name] = value
    with translated(endpoint):
        from mlflow import MlflowClient

        client = MlflowClient(
            tracking_uri=endpoint.tracking_uri, registry_uri=endpoint.registry_uri
        )
    return Registry(client, endpoint, settings)


def error_code(exc: BaseException) -> str | None:
    """MLflow's error code (`RESOURCE_DOES_NOT_EXIST` …) of an exception, if it is MLflow's."""
    return getattr(exc, "error_code", None)


def is_unreachable(exc: BaseException) -> bool:
    """True when MLflow gave up reaching the server (connection refused, timed out, DNS)."""
    text = str(exc)
    return error_code(exc) in {"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", None} and any(
        marker in text
        for marker in ("failed with exception", "Max retries exceeded", "Connection refused")
    )


@contextmanager
def translated(endpoint: Endpoint, doing: str = "talking to the registry") -> Iterator[None]:
    """Re-raise MLflow's errors as ours: an unreachable server, or a refused request.

    Errors callers expect (an unknown name) are caught by them first and explained better.
    """
    from pipelines.errors import BatchscoreError

    try:
        yield
    except BatchscoreError:
        raise
    except Exception as exc:
        if type(exc).__module__.split(".")[0] not in {"mlflow", "requests", "urllib3"}:
            raise
        if is_unreachable(exc) or type(exc).__module__.startswith(("requests", "urllib3")):
            raise RegistryUnavailableError(
                f"the MLflow registry at {endpoint.shown} did not answer while {doing}",
                fix=POINT_ELSEWHERE,
            ) from None
        message = redact_uri(str(getattr(exc, "message", exc)))
        raise RegistryError(
            f"the MLflow registry at {endpoint.shown} refused {doing}: {message}",
            fix="check the name, version and alias; `batchscore model list NAME` shows them",
        ) from None
