"""A real MLflow registry for tests: an embedded SQLite file, or a `mlflow server` on loopback.

- `mlflow_server` (session): `mlflow server` on a free 127.0.0.1 port with a SQLite backend and
  its artifacts proxied to the session's `moto_server` S3 (bucket `mlflow-artifacts`); started
  once (about 10 s), waited on at `/health`, stopped at session end;
- `sqlite_registry`: a fresh embedded registry in `tmp_path` (a copy of a session template
  database, so MLflow's schema migrations run once), `MLFLOW_*` variables cleared;
- `server_registry`: the server, with its artifact bucket present (tests may reset moto) and
  fake AWS credentials in this process too, so a test can read the bucket with boto3.

Import the fixtures in a test module (`from tests.mlflow_fixtures import ...`) or add
`tests.mlflow_fixtures` to `pytest_plugins`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipelines.registry.settings import RegistrySettings
from tests.s3_fixtures import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, REGION, free_port, raw_client

ARTIFACT_BUCKET = "mlflow-artifacts"
MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@dataclass(frozen=True)
class RegistryUnderTest:
    """A registry for one test: the settings and params folder to pass to `pipelines.registry`."""

    settings: RegistrySettings
    root: Path
    uri: str  # the tracking URI (what MLFLOW_TRACKING_URI would be)
    s3_endpoint: str | None = None  # where a server registry keeps its artifacts


def _server_env(s3_endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    return {
        **env,
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no huey workers: starts twice as fast
    }


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _stop(proc: subprocess.Popen[Any]) -> None:
    """Stop the server and its uvicorn child: they share the process group we gave them."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


@pytest.fixture(scope="session")
def mlflow_server(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` with artifacts on moto S3; yield its URL; stop it at session end."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    raw_client(moto_server).create_bucket(Bucket=ARTIFACT_BUCKET)
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(folder / "server.log", "wb")  # noqa: SIM115 - open for the server's lifetime
    proc = subprocess.Popen(
        [mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        + ["--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
        + ["--artifacts-destination", f"s3://{ARTIFACT_BUCKET}/artifacts"],
        env=_server_env(moto_server),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start:\n{(folder / 'server.log').read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        _stop(proc)
        log.close()


@pytest.fixture(scope="session")
def registry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated registry database, copied by each test (migrations take seconds)."""
    from mlflow import MlflowClient

    db = tmp_path_factory.mktemp("registry-template") / "mlflow.db"
    uri = f"sqlite:///{db}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models()
    return db


@pytest.fixture
def sqlite_registry(
    tmp_path: Path, registry_template: Path, monkeypatch: pytest.MonkeyPatch
) -> RegistryUnderTest:
    """The embedded default: `sqlite:///<tmp_path>/mlflow.db`, artifacts in `mlartifacts/`."""
    for name in MLFLOW_ENV:
        monkeypatch.delenv(name, raising=False)
    shutil.copyfile(registry_template, tmp_path / "mlflow.db")
    return RegistryUnderTest(RegistrySettings(), tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}")


@pytest.fixture
def server_registry(
    mlflow_server: str,
    moto_server: str,
    aws_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> RegistryUnderTest:
    """The session's `mlflow server` (model names must be unique per test: it is shared)."""
    for name in MLFLOW_ENV:
        monkeypatch.delenv(name, raising=False)
    client = raw_client(moto_server)
    if ARTIFACT_BUCKET not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=ARTIFACT_BUCKET)  # another test reset moto meanwhile
    return RegistryUnderTest(
        RegistrySettings(uri=mlflow_server), tmp_path, mlflow_server, moto_server
    )
