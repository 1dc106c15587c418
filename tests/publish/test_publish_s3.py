"""The whole pipeline publishing to S3 (a real moto_server): same output as the local backend,
and the commit protocol under injected S3 faults, kills and races."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipelines.config import Settings, load_config
from pipelines.errors import PublishConflictError, StorageError
from pipelines.publish.commit import list_runs, read_manifest
from pipelines.publish.keys import manifest_key
from pipelines.publish.manifest import RunManifest
from pipelines.run.finalize import finalize_run
from pipelines.run.pipeline import run_pipeline
from pipelines.storage.base import ObjectStore
from pipelines.storage.open import open_store
from tests.paths import ROOT
from tests.publish.attempts import NO_GX, staged_attempts
from tests.s3_fixtures import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, TEST_BUCKET, FaultInjector

RUN_KEY = "test-run"


@pytest.fixture
def s3_cfg(
    s3_endpoint: str, s3_bucket: str, make_cfg: Callable[..., Settings]
) -> Callable[..., Settings]:
    """`make_cfg` publishing to s3://<bucket>/published on the moto server."""

    def make(**overrides: Any) -> Settings:
        s3 = {
            "output.uri": f"s3://{TEST_BUCKET}/published",
            "s3.endpoint_url": s3_endpoint,
            "s3.max_attempts": 3,
            "s3.connect_timeout": 2,
            "s3.read_timeout": 10,
        }
        return make_cfg(**{**s3, **overrides})

    return make


def scores_of(store: ObjectStore, manifest: RunManifest) -> pa.Table:
    """All scored rows of a published run, read back from the store, in part order."""
    tables = []
    for part in sorted(manifest.parts, key=lambda p: p.key):
        if part.kind == "scores":
            body = store.get_bytes(part.key)
            assert body is not None, part.key
            tables.append(pq.read_table(io.BytesIO(body)))
    return pa.concat_tables(tables)


def run_keys(store: ObjectStore, manifest: RunManifest) -> list[str]:
    return store.list_keys(f"{manifest.model.name}/{manifest.run_key}")


def attempt_ids(store: ObjectStore, manifest: RunManifest) -> set[str]:
    attempts = f"{manifest.model.name}/{manifest.run_key}/attempts/"
    return {k.removeprefix(attempts).split("/")[0] for k in store.list_keys(attempts)}


@pytest.mark.parametrize("validation", [False, True], ids=["no-gx", "gx"])
def test_s3_output_equals_local_output(
    s3_faults: FaultInjector,
    s3_cfg: Callable[..., Settings],
    make_cfg: Callable[..., Settings],
    s3_client: Any,
    validation: bool,
) -> None:
    if validation:
        pytest.importorskip("pipelines.quality.gate")
    gx = {"validation.enabled": validation}
    local_cfg = make_cfg(**gx)
    local = run_pipeline(local_cfg)
    cfg = s3_cfg(**gx, **{"output.sse": "AES256"})
    published = run_pipeline(cfg)
    store = open_store(cfg)

    assert published.content_sha256 == local.content_sha256
    assert published.counts == local.counts and published.counts.rows_scored == 5003
    assert scores_of(store, published).equals(scores_of(open_store(local_cfg), local))
    assert read_manifest(store, published.model.name, RUN_KEY) == published
    assert attempt_ids(store, published) == {published.attempt_id}
    # every write carried SSE; the commit was conditional; nothing is left half-uploaded
    writes = s3_faults.headers_of("PutObject") + s3_faults.headers_of("CreateMultipartUpload")
    assert writes and all(h.get("x-amz-server-side-encryption") == "AES256" for h in writes)
    commits = [r for r in s3_faults.requests if r.url.endswith("manifest.json")]
    assert [r.headers.get("if-none-match") for r in commits if r.method == "PUT"] == ["*"]
    assert "Uploads" not in s3_client.list_multipart_uploads(Bucket=TEST_BUCKET)

    # a retry after a successful commit: no rewrite, same manifest (matrix row 10)
    puts = s3_faults.sent["PutObject"]
    assert run_pipeline(cfg) == published
    assert s3_faults.sent["PutObject"] == puts


def test_transient_503s_on_uploads_give_identical_output(
    s3_faults: FaultInjector, s3_cfg: Callable[..., Settings]
) -> None:
    clean_cfg = s3_cfg(**NO_GX, **{"output.uri": f"s3://{TEST_BUCKET}/clean"})
    clean = run_pipeline(clean_cfg)
    for key in ("/scores/", "/reports/", "manifest.json"):  # 2 x 503 each: retried to success
        s3_faults.fail("PutObject", times=2, url_contains=key)
    cfg = s3_cfg(**NO_GX)
    retried = run_pipeline(cfg)

    assert s3_faults.injected["PutObject"] == 6
    assert retried.content_sha256 == clean.content_sha256
    assert scores_of(open_store(cfg), retried).equals(scores_of(open_store(clean_cfg), clean))


def test_persistent_errors_fail_clearly_without_a_manifest(
    s3_faults: FaultInjector, s3_cfg: Callable[..., Settings]
) -> None:
    cfg = s3_cfg(**NO_GX)
    store = open_store(cfg)
    s3_faults.fail("PutObject", times=None, status=500, code="InternalError", message="boom")
    with pytest.raises(StorageError) as info:
        run_pipeline(cfg)
    message = str(info.value)
    assert "InternalError" in message and "HTTP 500" in message and "3 attempt(s)" in message
    assert "s3.endpoint_url" in message and info.value.retryable
    assert store.list_keys("") == []  # the failed attempt cleaned its staging

    # the commit itself fails: staged parts stay invisible, the retry commits and cleans up
    s3_faults.clear()
    s3_faults.fail("PutObject", times=None, url_contains="manifest.json")
    with pytest.raises(StorageError, match="SlowDown"):
        run_pipeline(cfg)
    assert list_runs(store) == []
    assert store.list_keys("") and not [k for k in store.list_keys("") if "manifest" in k]
    s3_faults.clear()
    published = run_pipeline(cfg)
    assert list_runs(store) == [published]
    assert attempt_ids(store, published) == {published.attempt_id}


def test_racing_runs_commit_exactly_once(s3_cfg: Callable[..., Settings]) -> None:
    cfgs = [s3_cfg(**NO_GX), s3_cfg(**NO_GX)]
    plans, results = staged_attempts(cfgs)
    barrier, outcomes = threading.Barrier(2), {}

    def commit(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = finalize_run(cfgs[i], plans[i], results[i])
        except (PublishConflictError, StorageError) as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=commit, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    store = open_store(cfgs[0])
    published = read_manifest(store, plans[0].model.name, RUN_KEY)
    assert published is not None
    assert [p.attempt_id for p in plans].count(published.attempt_id) == 1
    assert outcomes[0] == outcomes[1] == published  # the loser saw identical output: success
    assert attempt_ids(store, published) == {published.attempt_id}


def test_killed_before_commit_then_rerun_commits_once(
    params_file: Path, s3_endpoint: str, s3_bucket: str, s3_client: Any
) -> None:
    params = yaml.safe_load(params_file.read_text())
    params["output"]["uri"] = f"s3://{TEST_BUCKET}/published"
    params["s3"].update({"endpoint_url": s3_endpoint, "max_attempts": 3})
    params_file.write_text(yaml.safe_dump(params))
    cmd = [sys.executable, "-m", "pipelines.cli", "score", "--params", str(params_file)]
    cmd += ["--no-validation", "-v"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHSCORE_")}

    killed = subprocess.run(
        cmd, cwd=ROOT, env={**env, "BATCHSCORE_FAULT_AT": "before_commit"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    cfg = load_config(params_file, env={})
    store = open_store(cfg)
    assert list_runs(store) == []
    staged = store.list_keys("")
    assert staged and not [k for k in staged if k.endswith("manifest.json")]
    (stale_attempt,) = {k.split("/")[3] for k in staged}
    # a writer killed mid multipart upload leaves an orphan the commit must abort (row 7)
    orphan = f"published/{staged[0].rsplit('/', 1)[0]}/part-99999.parquet"
    upload = s3_client.create_multipart_upload(Bucket=TEST_BUCKET, Key=orphan)
    s3_client.upload_part(
        Bucket=TEST_BUCKET, Key=orphan, UploadId=upload["UploadId"], PartNumber=1, Body=b"x"
    )

    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (manifest,) = list_runs(store)
    assert manifest.counts.rows_scored == 5003
    # every shard was staged and recorded before the kill: the rerun copies them all into its
    # own attempt (it never writes into the one it continues), and its commit removes that one
    assert manifest.resumed_from == stale_attempt != manifest.attempt_id
    assert manifest.shards_reused == manifest.shards
    assert attempt_ids(store, manifest) == {manifest.attempt_id}
    assert "Uploads" not in s3_client.list_multipart_uploads(Bucket=TEST_BUCKET)
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and list_runs(store) == [manifest]
    assert store.get_bytes(manifest_key(manifest.model.name, manifest.run_key)) is not None
    for output in (killed, done, again):
        for secret in (FAKE_ACCESS_KEY, FAKE_SECRET_KEY):
            assert secret not in output.stdout + output.stderr


def test_no_credentials_in_any_log_line(
    s3_faults: FaultInjector,
    s3_cfg: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("botocore", "boto3", "s3transfer", "urllib3", "pipelines"):
        caplog.set_level(logging.DEBUG, logger=name)
    cfg = s3_cfg(**NO_GX)
    s3_faults.fail("PutObject", times=2)
    published = run_pipeline(cfg)
    s3_faults.fail("GetObject", times=None, status=403, code="AccessDenied", message="denied")
    with pytest.raises(StorageError, match="check the S3 credentials") as info:
        run_pipeline(cfg)
    assert not info.value.retryable

    assert published.counts.rows_scored == 5003
    assert any(r.name.startswith("botocore") for r in caplog.records)  # botocore did log
    text = "\n".join([caplog.text, str(info.value)])
    assert FAKE_ACCESS_KEY not in text and FAKE_SECRET_KEY not in text


def test_a_failed_gate_leaves_only_its_report_in_the_bucket(
    s3_cfg: Callable[..., Settings], score_file: Path, tmp_path: Path
) -> None:
    from pipelines.errors import QualityGateError

    frame = pq.read_table(score_file).to_pandas()
    frame.loc[10, "customer_id"] = frame.loc[11, "customer_id"]  # one duplicated ID
    frame.to_parquet(tmp_path / "dupes.parquet", row_group_size=1_000)
    cfg = s3_cfg(**{"data.path": str(tmp_path / "dupes.parquet")})
    store = open_store(cfg)
    with pytest.raises(QualityGateError) as info:
        run_pipeline(cfg)
    keys = store.list_keys("")
    assert list_runs(store) == [] and len(keys) == 2, keys
    assert {k.rsplit("/", 1)[1] for k in keys} == {"quality.html", "quality.json"}
    assert all(f"/{RUN_KEY}/failed/" in k for k in keys)
    html = next(k for k in keys if k.endswith(".html"))
    assert f"Report: {store.url(html)} (local copy: " in str(info.value)
    assert "Why the gate failed" in (store.get_bytes(html) or b"").decode()
