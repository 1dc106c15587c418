"""The S3 test harness: a real `moto_server` process, fault injection and dead endpoints.

Register with `pytest_plugins = ["tests.s3_fixtures"]` in `tests/conftest.py`.

- `moto_server` (session): one moto process per pytest(-xdist) worker on a free 127.0.0.1 port,
  probed at startup for the one behaviour the commit protocol relies on (a second
  `PutObject(IfNoneMatch="*")` gets 412 and the first body stays);
- `s3_endpoint`: that server, reset (`POST /moto-api/reset`) before each test, with fake
  credentials in the environment; `s3_bucket` adds an empty bucket;
- `s3_faults`: botocore `before-send.s3.<Operation>` hooks on every S3 client created during the
  test: answer N requests of an operation with an error (through botocore's normal retry path)
  and record every request's headers for inspection;
- `blackhole_endpoint` (accepts, never answers) and `refused_endpoint` (nothing listens).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError

from pipelines.config import Settings

# Distinctive fake credentials: tests grep logs and error messages for them.
FAKE_ACCESS_KEY = "AKIAFIXTURE7EXAMPLE42"
FAKE_SECRET_KEY = "fixtureSecret/K7MDENG+bPxRfiCY42EXAMPLEKEY"
REGION = "us-east-1"
TEST_BUCKET = "batchscore-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def moto_server_bin() -> str:
    beside = Path(sys.executable).with_name("moto_server")
    found = str(beside) if beside.exists() else shutil.which("moto_server")
    if not found:
        pytest.fail("moto_server not found: pip install 'moto[server]'")
    return found


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Stop a server process we started: SIGTERM, then SIGKILL if it lingers."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _reset(endpoint: str) -> None:
    req = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def raw_client(endpoint: str, **config: Any) -> Any:
    """A plain boto3 S3 client for arranging and asserting, independent of `S3Store`."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=FAKE_ACCESS_KEY,
        aws_secret_access_key=FAKE_SECRET_KEY,
        config=Config(retries={"mode": "standard", "total_max_attempts": 3}, **config),
    )


def _probe_conditional_put(endpoint: str) -> None:
    client = raw_client(endpoint)
    client.create_bucket(Bucket="probe-bucket")
    client.put_object(Bucket="probe-bucket", Key="k", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as info:
        client.put_object(Bucket="probe-bucket", Key="k", Body=b"second", IfNoneMatch="*")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412, (
        "this moto does not honour If-None-Match; the commit protocol cannot be tested"
    )
    assert client.get_object(Bucket="probe-bucket", Key="k")["Body"].read() == b"first"


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start `moto_server` on a free port; yield its endpoint URL; stop it at session end."""
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    for _ in range(3):  # the free port may be taken between probe and bind: try another
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [moto_server_bin(), "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                _reset(endpoint)
                break
            except OSError:
                time.sleep(0.1)
        if proc.poll() is None:
            break
    else:
        pytest.fail(f"moto_server did not start; log:\n{log_path.read_text()[-2000:]}")
    try:
        _probe_conditional_put(endpoint)
        _reset(endpoint)
        yield endpoint
    finally:
        stop_process(proc)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Fake credentials in the environment, isolated from any ~/.aws and instance metadata."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    env = {
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def s3_endpoint(moto_server: str, aws_env: dict[str, str]) -> str:
    """The session's moto server, emptied for this test."""
    _reset(moto_server)
    return moto_server


@pytest.fixture
def s3_client(s3_endpoint: str) -> Any:
    return raw_client(s3_endpoint)


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    s3_client.create_bucket(Bucket=TEST_BUCKET)
    return TEST_BUCKET


@pytest.fixture
def make_s3_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for an S3 output; keyword args are dotted overrides (`s3__max_attempts=2`)."""

    def make(endpoint: str, uri: str = f"s3://{TEST_BUCKET}/runs", **overrides: Any) -> Settings:
        raw: dict[str, Any] = {
            "output": {"uri": uri},
            "s3": {
                "endpoint_url": endpoint,
                "region": REGION,
                "max_attempts": 3,
                "connect_timeout": 2,
                "read_timeout": 5,
            },
            "root": tmp_path,
        }
        for dotted, value in overrides.items():
            section, key = dotted.split("__")
            raw.setdefault(section, {})[key] = value
        return Settings.model_validate(raw)

    return make


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry immediately: botocore's standard-mode backoff sleeps up to 1, 2, 4 ... s."""
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0)
    monkeypatch.setattr("pipelines.storage.s3.conflict_backoff", lambda attempt: 0.0)


class _RawBody:
    """Just enough of urllib3's response for `AWSResponse.content`."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


@dataclass
class SentRequest:
    operation: str
    method: str
    url: str
    headers: dict[str, str]


@dataclass
class _Fault:
    remaining: int | None  # None: forever
    status: int
    code: str
    message: str
    url_contains: str | None

    def applies(self, url: str) -> bool:
        hit = self.remaining != 0 and (not self.url_contains or self.url_contains in url)
        if hit and self.remaining is not None:
            self.remaining -= 1
        return hit


@dataclass(repr=False)  # the recorded headers hold credentials: keep them out of log lines
class FaultInjector:
    """Counted faults per S3 operation, injected before the request leaves botocore.

    A fault answers the request with an error response, so botocore's retry logic sees exactly
    what a real 503 SlowDown or 500 InternalError would produce. `sent` counts every attempt
    that reached the wire point (faulted or not); `requests` keeps their headers.
    """

    sent: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    requests: list[SentRequest] = field(default_factory=list)
    _faults: dict[str, list[_Fault]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(
        self,
        operation: str,
        times: int | None = 1,
        *,
        status: int = 503,
        code: str = "SlowDown",
        message: str = "Please reduce your request rate.",
        url_contains: str | None = None,
    ) -> None:
        """Answer the next `times` requests of `operation` (None: all of them) with an error.

        `times` counts requests, retries included: with 3 attempts, `times=2` is retried to
        success and `times=3` fails the call. `url_contains` limits the fault to requests whose
        URL contains it (a key name); faults added for one operation apply in order.
        """
        with self._lock:
            fault = _Fault(times, status, code, message, url_contains)
            self._faults.setdefault(operation, []).append(fault)

    def clear(self, operation: str | None = None) -> None:
        with self._lock:
            if operation is None:
                self._faults.clear()
            else:
                self._faults.pop(operation, None)

    def attach(self, client: Any) -> Any:
        """Hook into a client built before the fixture (attaching twice is harmless)."""
        client.meta.events.register(
            "before-send.s3", self._before_send, unique_id=f"fault-injector-{id(self)}"
        )
        return client

    def headers_of(self, operation: str) -> list[dict[str, str]]:
        return [r.headers for r in self.requests if r.operation == operation]

    def _before_send(self, request: Any, event_name: str = "", **_: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]
        headers = {
            k.lower(): v.decode() if isinstance(v, bytes) else str(v)
            for k, v in request.headers.items()
        }
        with self._lock:
            self.sent[operation] += 1
            self.requests.append(SentRequest(operation, request.method, request.url, headers))
            fault = next(
                (f for f in self._faults.get(operation, []) if f.applies(request.url)), None
            )
            if fault is None:
                return None
            self.injected[operation] += 1
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{fault.code}</Code><Message>{fault.message}</Message>"
            "<RequestId>INJECTED</RequestId></Error>"
        ).encode()
        return AWSResponse(
            request.url,
            fault.status,
            {"Content-Type": "application/xml", "x-amz-request-id": "INJECTED"},
            _RawBody(body),
        )


@pytest.fixture
def s3_faults(monkeypatch: pytest.MonkeyPatch, no_backoff: None) -> FaultInjector:
    """A `FaultInjector` hooked into every S3 client created in this process during the test.

    Request it before fixtures that build clients, or `attach()` those clients yourself.
    """
    injector = FaultInjector()
    original = botocore.session.Session.create_client

    def create_client(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        client = original(self, service_name, *args, **kwargs)
        return injector.attach(client) if service_name == "s3" else client

    monkeypatch.setattr(botocore.session.Session, "create_client", create_client)
    return injector


@pytest.fixture
def blackhole_endpoint() -> Iterator[str]:
    """An endpoint that accepts TCP connections and never answers: every read times out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()


@pytest.fixture
def refused_endpoint() -> str:
    """An endpoint where nothing listens: connections are refused at once."""
    return f"http://127.0.0.1:{free_port()}"
