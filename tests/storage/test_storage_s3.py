"""S3Store against a real moto_server: the guarantees `publish.py` relies on, and its failures."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import Settings
from pipelines.errors import ConfigError, StorageError
from pipelines.storage.open import open_store
from pipelines.storage.s3 import MiB, S3Store
from tests.s3_fixtures import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, TEST_BUCKET, FaultInjector

MakeSettings = Callable[..., Settings]


@pytest.fixture
def store(s3_endpoint: str, s3_bucket: str, make_s3_settings: MakeSettings) -> S3Store:
    return S3Store.from_config(make_s3_settings(s3_endpoint))


def _big_file(path: Path, size: int = 6 * MiB) -> Path:
    block = os.urandom(64 * 1024)
    with open(path, "wb") as fh:
        for _ in range(size // len(block)):
            fh.write(block)
        fh.write(b"tail")
    return path


def test_put_get_list_delete(store: S3Store, s3_client: Any, tmp_path: Path) -> None:
    local = tmp_path / "part.csv"
    local.write_text("id,score\n1,0.5\n")
    store.put_file(local, "m/a/part.csv")
    assert store.put_bytes("m/a/b.json", b"{}")
    store.put_bytes("m/ab/c.json", b"[]")

    assert store.get_bytes("m/a/part.csv") == local.read_bytes()
    assert store.get_bytes("m/a/none") is None
    # folder semantics, like LocalStore: "m/a" does not match "m/ab"
    assert store.list_keys("m/a") == ["m/a/b.json", "m/a/part.csv"]
    assert store.list_keys("m/a/b.json") == ["m/a/b.json"]
    assert store.list_keys("") == ["m/a/b.json", "m/a/part.csv", "m/ab/c.json"]
    assert abs((store.modified_at("m/a/b.json") or 0) - time.time()) < 120
    assert store.modified_at("m/zzz") is None
    # keys live under the URI's prefix
    raw = s3_client.list_objects_v2(Bucket=TEST_BUCKET)["Contents"]
    assert sorted(o["Key"] for o in raw)[0] == "runs/m/a/b.json"
    assert store.url("m/a/b.json") == f"s3://{TEST_BUCKET}/runs/m/a/b.json"

    store.delete(["m/a/b.json", "m/a/part.csv", "m/a/never-existed"])
    assert store.list_keys("m") == ["m/ab/c.json"]
    store.delete([])


def test_open_store_picks_s3(s3_endpoint: str, s3_bucket: str, make_s3_settings: Any) -> None:
    assert isinstance(open_store(make_s3_settings(s3_endpoint)), S3Store)


def test_conditional_put_loses_to_first_writer(store: S3Store) -> None:
    assert store.put_bytes("m/run/manifest.json", b"first", if_absent=True) is True
    assert store.put_bytes("m/run/manifest.json", b"second", if_absent=True) is False
    assert store.get_bytes("m/run/manifest.json") == b"first"


def test_multipart_upload_above_threshold(
    s3_endpoint: str,
    s3_bucket: str,
    s3_client: Any,
    s3_faults: FaultInjector,
    make_s3_settings: MakeSettings,
    tmp_path: Path,
) -> None:
    store = S3Store.from_config(make_s3_settings(s3_endpoint, s3__multipart_threshold_mb=5))
    big = _big_file(tmp_path / "scores.parquet")
    store.put_file(big, "m/run/scores.parquet")

    assert s3_faults.sent["CreateMultipartUpload"] == 1
    assert s3_faults.sent["UploadPart"] == 2
    assert s3_faults.sent["CompleteMultipartUpload"] == 1
    assert s3_faults.sent["PutObject"] == 0
    assert store.get_bytes("m/run/scores.parquet") == big.read_bytes()
    assert "Uploads" not in s3_client.list_multipart_uploads(Bucket=TEST_BUCKET)


@pytest.mark.parametrize(
    ("sse", "kms_key"), [("AES256", None), ("aws:kms", "alias/batchscore")], ids=["aes", "kms"]
)
def test_sse_header_on_every_write(
    s3_endpoint: str,
    s3_bucket: str,
    s3_client: Any,
    s3_faults: FaultInjector,
    make_s3_settings: MakeSettings,
    tmp_path: Path,
    sse: str,
    kms_key: str | None,
) -> None:
    cfg = make_s3_settings(
        s3_endpoint,
        output__sse=sse,
        output__sse_kms_key_id=kms_key,
        s3__multipart_threshold_mb=5,
    )
    store = S3Store.from_config(cfg)
    small = tmp_path / "small.csv"
    small.write_text("a\n1\n")
    store.put_file(small, "m/small.csv")
    store.put_file(_big_file(tmp_path / "big.bin"), "m/big.bin")
    store.put_bytes("m/plain.json", b"{}")
    store.put_bytes("m/manifest.json", b"{}", if_absent=True)

    writes = s3_faults.headers_of("PutObject") + s3_faults.headers_of("CreateMultipartUpload")
    assert len(writes) == 4
    for headers in writes:
        assert headers["x-amz-server-side-encryption"] == sse
        if kms_key:
            assert headers["x-amz-server-side-encryption-aws-kms-key-id"] == kms_key
    assert s3_faults.headers_of("PutObject")[-1]["if-none-match"] == "*"
    for key in ("runs/m/small.csv", "runs/m/big.bin", "runs/m/manifest.json"):
        assert s3_client.head_object(Bucket=TEST_BUCKET, Key=key)["ServerSideEncryption"] == sse


def test_two_slowdowns_are_retried(s3_faults: FaultInjector, store: S3Store) -> None:
    retry_attempts: list[int] = []
    store.client.meta.events.register(
        "after-call.s3.PutObject",
        lambda parsed, **_: retry_attempts.append(parsed["ResponseMetadata"]["RetryAttempts"]),
    )
    s3_faults.fail("PutObject", times=2)
    assert store.put_bytes("m/run/manifest.json", b"payload", if_absent=True) is True

    assert s3_faults.sent["PutObject"] == 3
    assert s3_faults.injected["PutObject"] == 2
    assert retry_attempts == [2]
    assert store.get_bytes("m/run/manifest.json") == b"payload"


def test_slowdowns_on_parts_are_retried(
    s3_endpoint: str,
    s3_bucket: str,
    s3_faults: FaultInjector,
    make_s3_settings: MakeSettings,
    tmp_path: Path,
) -> None:
    store = S3Store.from_config(make_s3_settings(s3_endpoint, s3__multipart_threshold_mb=5))
    big = _big_file(tmp_path / "big.bin")
    s3_faults.fail("UploadPart", times=2)
    store.put_file(big, "m/big.bin")
    assert s3_faults.sent["UploadPart"] == 4
    assert store.get_bytes("m/big.bin") == big.read_bytes()


def test_persistent_503_fails_clearly_and_writes_nothing(
    s3_faults: FaultInjector, store: S3Store
) -> None:
    s3_faults.fail("PutObject", times=None)
    with pytest.raises(StorageError) as info:
        store.put_bytes("m/run/manifest.json", b"x", if_absent=True)
    message = str(info.value)
    assert "PutObject" in message and "SlowDown" in message and "HTTP 503" in message
    assert f"s3://{TEST_BUCKET}/runs/m/run/manifest.json" in message
    assert "3 attempt(s)" in message and "s3.endpoint_url" in message
    assert info.value.retryable
    assert s3_faults.sent["PutObject"] == 3
    s3_faults.clear()
    assert store.list_keys("") == []


def test_persistent_part_failure_aborts_the_upload(
    s3_endpoint: str,
    s3_bucket: str,
    s3_client: Any,
    s3_faults: FaultInjector,
    make_s3_settings: MakeSettings,
    tmp_path: Path,
) -> None:
    store = S3Store.from_config(make_s3_settings(s3_endpoint, s3__multipart_threshold_mb=5))
    s3_faults.fail("UploadPart", times=None, status=500, code="InternalError", message="boom")
    with pytest.raises(StorageError, match="InternalError"):
        store.put_file(_big_file(tmp_path / "big.bin"), "m/big.bin")
    assert s3_faults.sent["AbortMultipartUpload"] == 1
    s3_faults.clear()
    assert store.list_keys("") == []
    assert "Uploads" not in s3_client.list_multipart_uploads(Bucket=TEST_BUCKET)


def test_conflict_409_is_retried_then_decided(s3_faults: FaultInjector, store: S3Store) -> None:
    s3_faults.fail("PutObject", times=1, status=409, code="ConditionalRequestConflict")
    assert store.put_bytes("m/a.json", b"mine", if_absent=True) is True
    assert s3_faults.sent["PutObject"] == 2

    # conflicts on every attempt, and the other writer landed: we lost
    store.put_bytes("m/b.json", b"theirs")
    s3_faults.fail("PutObject", times=None, status=409, code="ConditionalRequestConflict")
    assert store.put_bytes("m/b.json", b"mine", if_absent=True) is False
    # ... and nobody landed: a clear, retryable error instead of a false "someone else won"
    with pytest.raises(StorageError, match="ConditionalRequestConflict") as info:
        store.put_bytes("m/c.json", b"mine", if_absent=True)
    assert info.value.retryable


def test_read_timeout_within_bound(
    blackhole_endpoint: str, make_s3_settings: MakeSettings, aws_env: Any, no_backoff: None
) -> None:
    cfg = make_s3_settings(
        blackhole_endpoint, s3__read_timeout=0.5, s3__connect_timeout=0.5, s3__max_attempts=2
    )
    store = S3Store.from_config(cfg)
    start = time.monotonic()
    with pytest.raises(StorageError, match="Read timeout") as info:
        store.get_bytes("m/manifest.json")
    assert time.monotonic() - start < 2 * 0.5 + 3  # attempts x read_timeout, plus slack
    assert info.value.retryable and "s3.endpoint_url" in str(info.value)


def test_connection_refused_fails_fast(
    refused_endpoint: str, make_s3_settings: MakeSettings, aws_env: Any, no_backoff: None
) -> None:
    store = S3Store.from_config(make_s3_settings(refused_endpoint))
    start = time.monotonic()
    with pytest.raises(StorageError, match="Could not connect") as info:
        store.put_bytes("m/manifest.json", b"{}", if_absent=True)
    assert time.monotonic() - start < 3
    assert refused_endpoint in str(info.value)


def test_missing_bucket_is_not_retryable(s3_endpoint: str, make_s3_settings: Any) -> None:
    store = S3Store.from_config(make_s3_settings(s3_endpoint, uri="s3://no-such-bucket/x"))
    with pytest.raises(StorageError, match="NoSuchBucket.*create bucket 'no-such-bucket'") as info:
        store.put_bytes("k", b"{}")
    assert not info.value.retryable


def test_missing_credentials_fail_clearly(
    s3_endpoint: str,
    s3_bucket: str,
    make_s3_settings: MakeSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = S3Store.from_config(make_s3_settings(s3_endpoint))
    with pytest.raises(StorageError, match="no usable credentials.*AWS_ACCESS_KEY_ID") as info:
        store.list_keys("")
    assert not info.value.retryable


def test_cleanup_aborts_orphaned_multipart_uploads(store: S3Store, s3_client: Any) -> None:
    def orphan(key: str) -> None:
        upload = s3_client.create_multipart_upload(Bucket=TEST_BUCKET, Key=key)
        s3_client.upload_part(
            Bucket=TEST_BUCKET, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 99
        )

    orphan("runs/m/run/attempts/a1/part-0.parquet")
    orphan("runs/m/run/attempts/a2/part-0.parquet")
    orphan("runs/other/part-0.parquet")
    assert store.list_keys("") == []  # an unfinished upload is not an object

    # moto reports every upload as initiated in 2010, so "older than an hour" holds for all
    assert store.cleanup_incomplete("m/run", older_than_s=3600) == 2
    left = s3_client.list_multipart_uploads(Bucket=TEST_BUCKET)["Uploads"]
    assert [u["Key"] for u in left] == ["runs/other/part-0.parquet"]
    assert store.cleanup_incomplete("m/run", older_than_s=3600) == 0
    assert store.cleanup_incomplete("", older_than_s=1e12) == 0  # bound not reached: kept


def test_config_errors(s3_endpoint: str, make_s3_settings: MakeSettings) -> None:
    with pytest.raises(ConfigError, match="sse_kms_key_id"):
        S3Store.from_config(make_s3_settings(s3_endpoint, output__sse_kms_key_id="k"))
    with pytest.raises(ConfigError, match="not an s3:// URI"):
        S3Store.from_config(make_s3_settings(s3_endpoint, uri="file:///tmp/x"))
    with pytest.raises(ConfigError) as info:
        S3Store.from_config(make_s3_settings(s3_endpoint), {"password": "hunter2-secret"})
    assert "password" in str(info.value) and "hunter2-secret" not in str(info.value)


def test_credentials_never_logged(
    s3_endpoint: str,
    s3_bucket: str,
    s3_faults: FaultInjector,
    make_s3_settings: MakeSettings,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    token = "FwoGZXIvYXdzEXAMPLE-session-token-7f3a"
    explicit = {
        "aws_access_key_id": "AKIAEXPLICIT0CONN0ID",
        "aws_secret_access_key": "explicit/Conn+Secret0123456789abcdefgh",
        "aws_session_token": token,
    }
    caplog.set_level(logging.DEBUG)
    for name in ("botocore", "boto3", "s3transfer", "urllib3", "pipelines"):
        caplog.set_level(logging.DEBUG, logger=name)
    env_store = S3Store.from_config(make_s3_settings(s3_endpoint, s3__multipart_threshold_mb=5))
    conn_store = S3Store.from_config(make_s3_settings(s3_endpoint), explicit)
    errors: list[str] = []
    for store in (env_store, conn_store):
        store.put_bytes("m/x.json", b"{}", if_absent=True)
        store.get_bytes("m/x.json")
        store.list_keys("m")
        s3_faults.fail("PutObject", times=None)
        with pytest.raises(StorageError) as info:
            store.put_bytes("m/y.json", b"{}")
        errors.append(str(info.value))
        s3_faults.clear()
    env_store.put_file(_big_file(tmp_path / "big.bin"), "m/big.bin")

    # the explicit connection's credentials were the ones used
    auth = [h["authorization"] for h in s3_faults.headers_of("GetObject")]
    assert FAKE_ACCESS_KEY in auth[0] and "AKIAEXPLICIT0CONN0ID" in auth[1]

    botocore_lines = [r for r in caplog.records if r.name.startswith("botocore")]
    assert any("Sending http request" in r.getMessage() for r in botocore_lines)  # not vacuous
    text = "\n".join([r.getMessage() for r in caplog.records] + [caplog.text, *errors])
    for secret in (FAKE_ACCESS_KEY, FAKE_SECRET_KEY, *explicit.values()):
        assert secret not in text


def test_complete_multipart_500_is_retried_once_committed(
    s3_endpoint: str,
    s3_bucket: str,
    s3_client: Any,
    s3_faults: FaultInjector,
    make_s3_settings: MakeSettings,
    tmp_path: Path,
) -> None:
    store = S3Store.from_config(make_s3_settings(s3_endpoint, s3__multipart_threshold_mb=5))
    big = _big_file(tmp_path / "big.bin")
    s3_faults.fail("CompleteMultipartUpload", times=2, status=500, code="InternalError")
    store.put_file(big, "m/big.bin")
    assert s3_faults.sent["CompleteMultipartUpload"] == 3
    assert store.get_bytes("m/big.bin") == big.read_bytes()
    assert store.list_keys("m") == ["m/big.bin"]
    assert "Uploads" not in s3_client.list_multipart_uploads(Bucket=TEST_BUCKET)


def test_list_and_delete_past_1000_keys(store: S3Store, s3_client: Any) -> None:
    keys = [f"m/run/attempts/a/part-{i:05d}.parquet" for i in range(1_005)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3_client.put_object(Bucket=TEST_BUCKET, Key=f"runs/{k}"), keys))
    assert store.list_keys("m/run") == keys  # two ListObjectsV2 pages
    store.delete(keys)  # two DeleteObjects batches
    assert store.list_keys("") == []
