"""Reliability-matrix rows on S3 that need a real fault: an endpoint that dies mid-run, writers
SIGKILLed mid-PUT and mid-multipart upload, two processes racing one commit, and TLS.

Every test runs against the session's real `moto_server`. Rows 5 and 6 reach it through `Relay`,
a TCP relay on its own port that can throttle uploads and die the way a killed server does
(listener closed, open connections reset) while moto behind it keeps its state, so a rerun
after the endpoint is back sees what the failed run left. Tests are named `test_row<N>_...`
after the row of `reliability-matrix.md` they cover.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError, EndpointConnectionError

from pipelines.config import Settings, load_config
from pipelines.errors import ConfigError, StorageError
from pipelines.publish.commit import BARRIER_ENV, list_runs, read_manifest
from pipelines.publish.keys import manifest_key
from pipelines.publish.manifest import RunManifest
from pipelines.run.pipeline import run_pipeline
from pipelines.run.plan import plan_run
from pipelines.storage.base import ObjectStore
from pipelines.storage.hashing import sha256_file
from pipelines.storage.open import open_store
from pipelines.storage.s3 import MiB, S3Store
from tests.paths import ROOT
from tests.publish.attempts import inputs
from tests.s3_fixtures import TEST_BUCKET, FaultInjector

RUN_KEY = "test-run"
NO_GX = {"validation.enabled": False}
MakeCfg = Callable[..., Settings]


# -- harness ----------------------------------------------------------------------------------


class Relay:
    """127.0.0.1:<port> -> moto, byte for byte: the S3 endpoint a test can throttle or kill.

    `rate` (bytes/s) throttles client-to-server bytes; `die_on` kills the endpoint when a request
    containing those bytes arrives (it is not forwarded). `stop()` is the endpoint dying: new
    connections are refused and every open one is reset (RST), as for a killed server process.
    """

    def __init__(
        self, upstream: str, *, port: int = 0, rate: float | None = None, die_on: bytes = b""
    ) -> None:
        host, _, upstream_port = upstream.removeprefix("http://").partition(":")
        self.upstream = (host, int(upstream_port))
        self.rate, self.die_on = rate, die_on
        self.uploaded = 0  # bytes forwarded client -> moto
        self.request_lines: list[str] = []
        self.died_at: float | None = None
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._open = 0
        self._stop = threading.Event()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # a small receive window: a killed client cannot have much more in flight than we read
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(32)
        self._listener.settimeout(0.05)
        self.port = int(self._listener.getsockname()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    client, _ = self._listener.accept()
                except TimeoutError:
                    continue
                client.settimeout(None)
                server = socket.create_connection(self.upstream)
                with self._lock:
                    if self._stop.is_set():
                        _reset(client)
                        server.close()
                        return
                    self._socks += [client, server]
                    self._open += 1
                done = threading.Event()
                for src, dst, up in ((client, server, True), (server, client, False)):
                    args = (src, dst, up, done)
                    threading.Thread(target=self._pump, args=args, daemon=True).start()
        except OSError:
            return
        finally:
            self._listener.close()  # from now on, connections are refused

    def _pump(
        self, src: socket.socket, dst: socket.socket, up: bool, done: threading.Event
    ) -> None:
        try:
            while data := src.recv(16 * 1024):
                if up:
                    if self.die_on and self.die_on in data:
                        self.stop()
                        return
                    if data[:4] in (b"PUT ", b"GET ", b"POST", b"HEAD", b"DELE"):
                        self.request_lines.append(data.split(b"\r\n", 1)[0].decode())
                    if self.rate:
                        time.sleep(len(data) / self.rate)
                dst.sendall(data)
                if up:
                    self.uploaded += len(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):  # one side ended: end the other (a truncated body stays so)
                with contextlib.suppress(OSError):
                    sock.close()
            if not done.is_set():
                done.set()
                with self._lock:
                    self._open -= 1

    def stop(self) -> None:
        """The endpoint dies: refuse new connections, reset the open ones."""
        with self._lock:
            if self._stop.is_set():
                return
            self._stop.set()
            self.died_at = time.monotonic()
            socks = list(self._socks)
        if threading.current_thread() is not self._acceptor:
            self._acceptor.join(timeout=5)
        for sock in socks:
            _reset(sock)

    def wait_idle(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self._open and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self._open == 0, "the relay still has open connections"


def _reset(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


@pytest.fixture
def relays() -> Iterator[list[Relay]]:
    """Relays the test starts (append them); all stopped at teardown."""
    started: list[Relay] = []
    yield started
    for relay in started:
        relay.stop()


@pytest.fixture
def s3_cfg(s3_endpoint: str, s3_bucket: str, make_cfg: MakeCfg) -> MakeCfg:
    """`make_cfg` publishing to s3://<bucket>/published on the moto server (or `endpoint`)."""

    def make(endpoint: str = s3_endpoint, **overrides: Any) -> Settings:
        s3 = {
            "output.uri": f"s3://{TEST_BUCKET}/published",
            "s3.endpoint_url": endpoint,
            "s3.max_attempts": 3,
            "s3.connect_timeout": 2,
            "s3.read_timeout": 10,
        }
        return make_cfg(**{**s3, **NO_GX, **overrides})

    return make


def attempt_ids(store: ObjectStore, model: str, run_key: str = RUN_KEY) -> set[str]:
    """The attempts with staged objects under the run (the published one's stay)."""
    attempts = f"{model}/{run_key}/attempts/"
    return {k.removeprefix(attempts).split("/")[0] for k in store.list_keys(attempts)}


def manifest_puts(faults: FaultInjector) -> list[dict[str, str]]:
    return [
        r.headers
        for r in faults.requests
        if r.operation == "PutObject" and r.url.endswith("/manifest.json")
    ]


def uploads(s3_client: Any) -> list[dict[str, Any]]:
    return list(s3_client.list_multipart_uploads(Bucket=TEST_BUCKET).get("Uploads", []))


def big_file(path: Path, size: int) -> Path:
    block = os.urandom(1 * MiB)
    with open(path, "wb") as fh:
        for _ in range(size // MiB):
            fh.write(block)
    return path


def child_env() -> dict[str, str]:
    """This process's environment (the fake AWS credentials) without BATCHSCORE_* overrides."""
    return {k: v for k, v in os.environ.items() if not k.startswith("BATCHSCORE_")}


# A worker process uploading one file through the project's S3Store, as `score_shard` does.
# argv: endpoint, bucket, local file, key, multipart threshold (MiB), parts after which to hang
# (0: never).
WRITER = """
import sys, threading, time
from pathlib import Path
from pipelines.config import Settings
from pipelines.storage.s3 import S3Store

endpoint, bucket, path, key, threshold, hang_after = sys.argv[1:7]
cfg = Settings.model_validate({
    "output": {"uri": f"s3://{bucket}/published"},
    "s3": {"endpoint_url": endpoint, "max_attempts": 1, "read_timeout": 60,
           "multipart_threshold_mb": int(threshold)},
})
store = S3Store.from_config(cfg)
lock, done = threading.Lock(), [0]

def after_part(**_):
    with lock:  # parts finish on several threads: count and report under one lock, once
        done[0] += 1
        n = done[0]
        if n == int(hang_after):
            print("PARTS", n, flush=True)
    if n >= int(hang_after):
        time.sleep(600)  # stay mid-upload until the test kills us

if int(hang_after):
    store.client.meta.events.register("after-call.s3.UploadPart", after_part)
print("STARTED", flush=True)
store.put_file(Path(path), key)
print("UPLOADED", flush=True)
"""


def start_writer(endpoint: str, path: Path, key: str, threshold_mb: int, hang_after: int) -> Any:
    args = [endpoint, TEST_BUCKET, str(path), key, str(threshold_mb), str(hang_after)]
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, *args],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# -- row 5: the endpoint dies mid-run -----------------------------------------------------------


def test_row5_endpoint_dies_mid_run_fails_fast_then_rerun_commits_once(
    s3_faults: FaultInjector,
    s3_cfg: MakeCfg,
    s3_endpoint: str,
    relays: list[Relay],
) -> None:
    # Six shards of ~1,000 rows, scored one after the other; the endpoint dies when the third
    # shard's part arrives, so two parts are staged and the third upload is in flight.
    relay = Relay(s3_endpoint, die_on=b"/scores/part-00002.parquet ")
    relays.append(relay)
    shards = {"score.shard_rows": 1_000, "score.workers": 1}
    cfg = s3_cfg(relay.endpoint, **shards)
    direct = open_store(s3_cfg(**shards))  # the same bucket, not through the relay

    with pytest.raises(StorageError) as info:
        run_pipeline(cfg)
    failed_after = time.monotonic() - (relay.died_at or 0)

    assert relay.died_at is not None, "the endpoint never died: the run staged fewer parts?"
    assert failed_after < 5, f"took {failed_after:.1f} s to give up on a dead endpoint"
    message = str(info.value)
    assert "Could not connect to the endpoint URL" in message and relay.endpoint in message
    assert "s3.endpoint_url" in message and "3 attempt(s)" in message
    assert isinstance(info.value.__cause__, EndpointConnectionError)
    assert info.value.retryable
    # nothing published; the staged parts are invisible leftovers (the clean-up had no endpoint)
    keys = direct.list_keys("")
    assert list_runs(direct) == [] and not [k for k in keys if k.endswith("manifest.json")]
    staged = [k.rsplit("/", 1)[1] for k in keys]
    assert staged == [
        "part-00000.parquet",
        "part-00001.parquet",
        "shard-00000.json",
        "shard-00001.json",
    ]
    model = keys[0].split("/")[0]
    (failed_attempt,) = attempt_ids(direct, model)
    assert manifest_puts(s3_faults) == []

    # the endpoint is back at the same address: the rerun reuses the two recorded shards, scores
    # the rest and commits once
    relays.append(Relay(s3_endpoint, port=relay.port))
    published = run_pipeline(cfg)
    assert published.counts.rows_scored == 5003 and published.shards == 6
    assert published.shards_reused == 2
    assert list_runs(direct) == [published]
    assert attempt_ids(direct, model) == {published.attempt_id}
    assert published.resumed_from == failed_attempt != published.attempt_id
    assert len(manifest_puts(s3_faults)) == 1


# -- row 6: SIGKILL during a single PUT ---------------------------------------------------------


def test_row6_sigkill_mid_single_put_leaves_no_object(
    s3_endpoint: str,
    s3_bucket: str,
    s3_client: Any,
    make_s3_settings: Callable[..., Settings],
    relays: list[Relay],
    tmp_path: Path,
) -> None:
    relay = Relay(s3_endpoint, rate=2 * MiB)  # 24 MiB would take 12 s to arrive
    relays.append(relay)
    # the relay delivers a complete PUT: the object lands whole
    control = tmp_path / "control.bin"
    control.write_bytes(os.urandom(100_000))
    S3Store.from_config(make_s3_settings(relay.endpoint)).put_file(control, "m/control.bin")
    got = s3_client.get_object(Bucket=TEST_BUCKET, Key="runs/m/control.bin")["Body"].read()
    assert got == control.read_bytes()

    size = 24 * MiB  # below the multipart threshold (64 MiB): one PutObject
    key = f"m/{RUN_KEY}/attempts/a1/scores/part-00000.parquet"
    writer = start_writer(relay.endpoint, big_file(tmp_path / "part.parquet", size), key, 64, 0)
    try:
        sent = relay.uploaded
        deadline = time.monotonic() + 30
        while relay.uploaded - sent < 1 * MiB and time.monotonic() < deadline:  # ~0.5 s of body
            assert writer.poll() is None, writer.communicate()
            time.sleep(0.01)
        at_kill = relay.uploaded - sent
        writer.send_signal(signal.SIGKILL)
        out, err = writer.communicate(timeout=30)
    finally:
        writer.kill()
    relay.rate = None  # deliver whatever the dead writer's socket still held, then its FIN
    relay.wait_idle()

    assert writer.returncode == -signal.SIGKILL, err
    assert "STARTED" in out and "UPLOADED" not in out
    assert at_kill >= 1 * MiB, "killed before the body was on the wire"
    assert relay.uploaded - sent < size, "the whole body arrived: the kill was not mid-PUT"
    full = f"published/{key}"
    assert relay.request_lines[-1] == f"PUT /{TEST_BUCKET}/{full} HTTP/1.1"  # not multipart
    with pytest.raises(ClientError) as head:
        s3_client.head_object(Bucket=TEST_BUCKET, Key=full)
    assert head.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "Contents" not in s3_client.list_objects_v2(Bucket=TEST_BUCKET, Prefix="published/")
    assert uploads(s3_client) == []


# -- row 7: SIGKILL during a multipart upload ---------------------------------------------------


@pytest.mark.parametrize("janitor", ["cleanup_incomplete", "next_commit"])
def test_row7_sigkill_mid_multipart_orphan_is_aborted(
    s3_cfg: MakeCfg,
    s3_endpoint: str,
    s3_client: Any,
    tmp_path: Path,
    janitor: str,
) -> None:
    cfg = s3_cfg()
    model = plan_run(cfg).model.name  # plans only: nothing is written
    key = f"{model}/{RUN_KEY}/attempts/20260101T000000-deadbeef/scores/part-00000.parquet"
    full = f"published/{key}"
    # 16 MiB in 5 MiB parts (4 parts); the writer hangs once 2 parts are in, and is killed
    writer = start_writer(s3_endpoint, big_file(tmp_path / "part.parquet", 16 * MiB), key, 5, 2)
    try:
        assert writer.stdout is not None
        lines = [writer.stdout.readline(), writer.stdout.readline()]
        writer.send_signal(signal.SIGKILL)  # first: a failed assert must not wait on it
        assert lines[0] == "STARTED\n" and lines[1].startswith("PARTS "), lines
        out, err = writer.communicate(timeout=30)
    finally:
        writer.kill()
    assert writer.returncode == -signal.SIGKILL, err
    assert "UPLOADED" not in out

    # no visible key; the orphan is there with the parts it got
    store = open_store(cfg)
    assert store.list_keys("") == [] and store.get_bytes(key) is None
    (orphan,) = uploads(s3_client)
    assert orphan["Key"] == full
    parts = s3_client.list_parts(Bucket=TEST_BUCKET, Key=full, UploadId=orphan["UploadId"])
    assert len(parts["Parts"]) >= 2

    if janitor == "cleanup_incomplete":
        assert isinstance(store, S3Store)
        assert store.cleanup_incomplete(f"{model}/{RUN_KEY}/attempts", older_than_s=0) == 1
        assert store.list_keys("") == []
    else:  # the run's next attempt commits, and its clean-up aborts the orphan
        published = run_pipeline(cfg)
        assert list_runs(store) == [published]
        assert attempt_ids(store, model) == {published.attempt_id}
        assert store.get_bytes(key) is None
    assert uploads(s3_client) == []
    with pytest.raises(ClientError, match="NoSuchUpload"):
        s3_client.list_parts(Bucket=TEST_BUCKET, Key=full, UploadId=orphan["UploadId"])


# -- row 9: two processes race the commit of one run key ----------------------------------------


def race(params_file: Path, endpoint: str, data: list[Path], barrier: Path) -> list[Any]:
    """Two `batchscore score` processes for the same run key, released together at the commit."""
    params = yaml.safe_load(params_file.read_text())
    params["output"]["uri"] = f"s3://{TEST_BUCKET}/published"
    params["s3"].update({"endpoint_url": endpoint, "max_attempts": 3})
    params_file.write_text(yaml.safe_dump(params))
    env = {**child_env(), BARRIER_ENV: f"2:{barrier}"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "score", "--params", str(params_file)]
            + ["--no-validation", "--input", str(path)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in data
    ]
    done = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
        done.append((proc.returncode, err))
    assert len(os.listdir(barrier)) == 2, "both processes must have reached the commit"
    return done


def published_once(s3_client: Any, store: ObjectStore) -> RunManifest:
    """The one published run of the race, and proof that its manifest was written exactly once."""
    (manifest,) = list_runs(store)
    key = f"published/{manifest_key(manifest.model.name, manifest.run_key)}"
    versions = s3_client.list_object_versions(Bucket=TEST_BUCKET, Prefix=key)
    assert len(versions.get("Versions", [])) == 1, "the manifest was overwritten"
    assert not versions.get("DeleteMarkers")
    # the loser's staged parts are gone; nothing is left half-uploaded
    assert attempt_ids(store, manifest.model.name, manifest.run_key) == {manifest.attempt_id}
    assert uploads(s3_client) == []
    return manifest


@pytest.fixture
def versioned_bucket(s3_client: Any, s3_bucket: str) -> str:
    """Versioning on: every write of the manifest is kept, so an overwrite cannot hide."""
    s3_client.put_bucket_versioning(Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"})
    return s3_bucket


def test_row9_racing_processes_different_output_one_wins_loser_fails(
    params_file: Path,
    s3_endpoint: str,
    versioned_bucket: str,
    s3_client: Any,
    score_file: Path,
    tmp_path: Path,
) -> None:
    data = inputs(score_file, tmp_path, same_output=False)  # 5,003 rows and their first 3,000
    results = race(params_file, s3_endpoint, data, tmp_path / "barrier")
    store = open_store(load_config(params_file, env={}))
    manifest = published_once(s3_client, store)

    winner = [sha256_file(p) for p in data].index(manifest.input.sha256)
    (win_rc, win_err), (lose_rc, lose_err) = results[winner], results[1 - winner]
    assert win_rc == 0, win_err
    url = store.url(manifest_key(manifest.model.name, "cli-run"))
    assert f"run cli-run committed at {url}" in win_err
    assert lose_rc == 2, lose_err
    assert (
        f"batchscore: error: run cli-run of model {manifest.model.name} is already published "
        f"with different output (attempt {manifest.attempt_id}, "
        f"{manifest.counts.rows_scored:,} rows scored"
    ) in lose_err
    assert "Fix: use another run key" in lose_err and "Traceback" not in lose_err
    assert manifest.counts.rows_scored == (5003, 3000)[winner]


def test_row9_racing_processes_identical_output_both_succeed_one_publish(
    params_file: Path,
    s3_endpoint: str,
    versioned_bucket: str,
    s3_client: Any,
    score_file: Path,
    tmp_path: Path,
) -> None:
    data = inputs(score_file, tmp_path, same_output=True)
    results = race(params_file, s3_endpoint, data, tmp_path / "barrier")
    store = open_store(load_config(params_file, env={}))
    manifest = published_once(s3_client, store)

    assert [rc for rc, _ in results] == [0, 0], [err for _, err in results]
    statuses = sorted(
        status
        for _, err in results
        for status in ("committed", "identical")
        if f"run cli-run {status} at " in err
    )
    assert statuses == ["committed", "identical"]
    assert manifest.counts.rows_scored == 5003


# -- row 30: TLS, SSE and the conditional header ------------------------------------------------


def test_row30_require_tls_refuses_http_endpoints(
    make_cfg: MakeCfg,
    make_s3_settings: Callable[..., Settings],
    aws_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3 = {"output.uri": f"s3://{TEST_BUCKET}/published", "s3.require_tls": True}
    # at config time, before anything runs
    with pytest.raises(ConfigError) as info:
        make_cfg(**s3, **{"s3.endpoint_url": "http://minio.internal:9000"})
    assert "s3.require_tls" in str(info.value)
    assert "'http://minio.internal:9000' is not https://" in str(info.value)
    assert make_cfg(**s3, **{"s3.endpoint_url": "https://minio.internal:9000"}).s3.require_tls
    assert load_config(ROOT / "params.yaml", env={}).s3.require_tls is False  # loopback default

    # at store-open time, for the endpoint boto3 really uses (here: from the environment)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    with pytest.raises(ConfigError, match=r"S3 endpoint http://127\.0\.0\.1:9 is not https://"):
        open_store(make_s3_settings(None, s3__require_tls=True))
    assert S3Store.from_config(make_s3_settings(None)).client.meta.endpoint_url.startswith("http:")


_EVERY_OPERATION = (
    "PutObject",
    "GetObject",
    "HeadObject",
    "ListObjectsV2",
    "DeleteObjects",
    "CreateMultipartUpload",
    "ListMultipartUploads",
)


@pytest.mark.parametrize(
    "endpoint", [None, "https://s3.storage.internal:8443"], ids=["aws", "custom"]
)
def test_row30_require_tls_every_request_is_https(
    s3_faults: FaultInjector,
    make_s3_settings: Callable[..., Settings],
    aws_env: dict[str, str],
    tmp_path: Path,
    endpoint: str | None,
) -> None:
    # Every request is answered by the hook before it leaves botocore: no network needed.
    for operation in _EVERY_OPERATION:
        s3_faults.fail(operation, None, status=403, code="AccessDenied", message="short-circuit")
    cfg = make_s3_settings(
        endpoint, s3__require_tls=True, s3__multipart_threshold_mb=5, output__sse="AES256"
    )
    store = S3Store.from_config(cfg)
    small = tmp_path / "small.parquet"
    small.write_bytes(b"x" * 100)
    calls: list[Callable[[], object]] = [
        lambda: store.put_bytes("m/run/manifest.json", b"{}", if_absent=True),
        lambda: store.put_bytes("m/run/failed/a/quality.json", b"{}"),
        lambda: store.put_file(small, "m/run/attempts/a/scores/part-00000.parquet"),
        lambda: store.put_file(big_file(tmp_path / "big", 6 * MiB), "m/run/attempts/a/big"),
        lambda: store.get_bytes("m/run/manifest.json"),
        lambda: store.modified_at("m/run/manifest.json"),
        lambda: store.list_keys("m/run"),
        lambda: store.delete(["m/run/attempts/a/scores/part-00000.parquet"]),
        lambda: store.cleanup_incomplete("m/run/attempts", older_than_s=0),
    ]
    for call in calls:
        with pytest.raises(StorageError, match="AccessDenied"):
            call()

    assert set(s3_faults.sent) == set(_EVERY_OPERATION)
    assert len(s3_faults.requests) == len(calls)  # auth errors are not retried
    assert all(r.url.startswith("https://") for r in s3_faults.requests), [
        r.url for r in s3_faults.requests if not r.url.startswith("https://")
    ]
    if endpoint:
        assert all(r.url.startswith(endpoint + "/") for r in s3_faults.requests)
    # ... and the writes still carry SSE; the commit its condition
    writes = s3_faults.headers_of("PutObject") + s3_faults.headers_of("CreateMultipartUpload")
    assert len(writes) == 4 and all(h["x-amz-server-side-encryption"] == "AES256" for h in writes)
    assert [h.get("if-none-match") for h in manifest_puts(s3_faults)] == ["*"]


def test_row30_commit_retries_keep_sse_and_if_none_match(
    s3_faults: FaultInjector, s3_cfg: MakeCfg, s3_client: Any
) -> None:
    cfg = s3_cfg(**{"output.sse": "aws:kms", "output.sse_kms_key_id": "alias/batchscore"})
    s3_faults.fail("PutObject", times=2, url_contains="/manifest.json")  # 2 x 503, then it lands
    published = run_pipeline(cfg)

    commits = manifest_puts(s3_faults)
    assert len(commits) == 3 and s3_faults.injected["PutObject"] == 2
    for headers in commits:  # the retried commit is still conditional and still encrypted
        assert headers["if-none-match"] == "*"
        assert headers["x-amz-server-side-encryption"] == "aws:kms"
        assert headers["x-amz-server-side-encryption-aws-kms-key-id"] == "alias/batchscore"
    writes = s3_faults.headers_of("PutObject") + s3_faults.headers_of("CreateMultipartUpload")
    assert len(writes) >= 3 + len(published.parts)
    assert all(h["x-amz-server-side-encryption"] == "aws:kms" for h in writes)
    key = f"published/{manifest_key(published.model.name, RUN_KEY)}"
    head = s3_client.head_object(Bucket=TEST_BUCKET, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert read_manifest(open_store(cfg), published.model.name, RUN_KEY) == published
