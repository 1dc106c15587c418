"""Scale-out on a real Celery cluster: PostgreSQL metadata DB, Redis broker, the Airflow api-server,
scheduler and dag-processor, and two `airflow celery worker` processes (tests/celery_cluster.py).

The input is pulled by DVC from an S3 remote on moto_server, the output is published to
moto_server; the run is triggered over REST with 6 shards. The shards must have run on both
workers (task-instance hostnames), the run must have committed exactly once, and its scores must
equal, byte for byte, those of a local `batchscore score` of the same input with the same model.

The cluster starts while the project, the DVC repo and the local run are built (one thread each).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.airflow_harness import build_project
from tests.celery_cluster import CeleryCluster, missing_packages_reason
from tests.dvc_fixtures import isolated_env, sh
from tests.paths import DAGS
from tests.s3_fixtures import raw_client

pytestmark = [pytest.mark.airflow_e2e, pytest.mark.timeout(300)]

DAG_ID = "batchscore"
RUN_KEY = "celery-e2e"
OUT_BUCKET = "celery-out"
DVC_BUCKET = "celery-dvc"
ROWS, SHARD_ROWS, CHUNK = 6_000, 1_000, 250  # 6 shards, chunks of 250 rows
WORKERS = ("w1", "w2")
# What every scoring task imports (pandas, scikit-learn, skops, GX): loaded once per worker.
PRELOAD = (
    "pipelines.run.pipeline", "pipelines.quality.gate", "pipelines.quality.verdict", "skops.io",
    "great_expectations",
)  # fmt: skip
# A cron with no past fire time after the DAG's start date: unpausing starts no scheduled run.
NO_SCHEDULED_RUN = "0 0 29 2 *"


@dataclass
class Project:
    params: Path
    local_manifest: dict[str, Any]  # the local `batchscore score` run of the same input
    local_scores: pa.Table
    rev: str
    md5: str


def _dvc_input(project: Path, env: dict[str, str], endpoint: str) -> tuple[Path, str, str]:
    """The project's input `dvc add`ed to a git repo with its S3 remote on moto, pushed."""
    repo = project.parent / "dvc-repo"
    (repo / "data").mkdir(parents=True)
    shutil.copy(project / "data" / "score.parquet", repo / "data" / "score.parquet")
    for cmd in (
        ("git", "init", "-q", "-b", "main"),
        ("dvc", "init", "-q"),
        ("dvc", "remote", "add", "-d", "s3remote", f"s3://{DVC_BUCKET}/store"),
        ("dvc", "remote", "modify", "s3remote", "endpointurl", endpoint),
        ("dvc", "add", "-q", "data/score.parquet"),
        ("git", "add", "-A"),
        ("git", "commit", "-q", "-m", "input v1"),
    ):
        sh(env, repo, *cmd)
    raw_client(endpoint).create_bucket(Bucket=DVC_BUCKET)
    sh(env, repo, "dvc", "push", "-q")
    record = yaml.safe_load((repo / "data" / "score.parquet.dvc").read_text())
    return repo, sh(env, repo, "git", "rev-parse", "HEAD"), record["outs"][0]["md5"]


def _build(root: Path, env: dict[str, str], endpoint: str) -> Project:
    """Project (model, params), its input in DVC, and a local run of that input for reference."""
    params = build_project(
        root,
        rows=ROWS,
        shard_rows=4_000,
        output_uri=f"s3://{OUT_BUCKET}/runs",
        s3_endpoint=endpoint,
    )
    repo, rev, md5 = _dvc_input(root, env, endpoint)
    local_input = root.parent / "local-input.parquet"  # the very bytes DVC pushed
    shutil.move(root / "data" / "score.parquet", local_input)  # the DAG can only pull it
    raw = yaml.safe_load(params.read_text())
    raw["data"].update(repo=str(repo), rev=rev, path="data/score.parquet")
    params.write_text(yaml.safe_dump(raw, sort_keys=False))

    local_out = root.parent / "local-out"
    cli = [str(Path(sys.executable).with_name("batchscore")), "score", "--params", str(params)]
    cli += ["--input", str(local_input), "--set", "data.rev=null", "--set", "data.repo=null"]
    cli += ["--output", f"file://{local_out}", "--run-key", RUN_KEY, "--chunk-size", str(CHUNK)]
    cli += ["--set", f"score.shard_rows={SHARD_ROWS}", "--workers", "1"]
    done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    (manifest_path,) = local_out.glob(f"*/{RUN_KEY}/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    scores = [
        pq.read_table(local_out / p["key"])
        for p in sorted(manifest["parts"], key=lambda p: p["key"])
        if p["kind"] == "scores"
    ]
    return Project(params, manifest, pa.concat_tables(scores), rev, md5)


@pytest.fixture(scope="module")
def cluster_and_project(
    moto_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[CeleryCluster, Project]]:
    reason = missing_packages_reason()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("celery")
    env = isolated_env(base / "dvc-home")  # git/DVC isolation and the fake AWS credentials
    raw_client(moto_server).create_bucket(Bucket=OUT_BUCKET)
    project_root = base / "project"
    cluster = CeleryCluster(
        DAGS,
        base,
        env={
            **env,
            "BATCHSCORE_PARAMS": str(project_root / "params.yaml"),
            "BATCHSCORE__SCHEDULE__CRON": NO_SCHEDULED_RUN,
            "AIRFLOW__CORE__PARALLELISM": "8",
        },
        workers=WORKERS,
        preload=PRELOAD,
    )
    try:
        with ThreadPoolExecutor(2) as pool:
            started = pool.submit(cluster.start)
            built = pool.submit(_build, project_root, {**os.environ, **env}, moto_server)
            project = built.result()
            started.result()
        print(f"\ncluster start-up: {cluster.startup_seconds}")
        cluster.airflow.wait_for_dag(DAG_ID)
        cluster.airflow.unpause(DAG_ID)
        yield cluster, project
    finally:
        cluster.stop()


def _published(endpoint: str) -> tuple[list[str], dict[str, Any], pa.Table]:
    """Every key under the run, its manifest, and its scores parts read in key order."""
    s3 = raw_client(endpoint)
    listing = s3.list_objects_v2(Bucket=OUT_BUCKET, Prefix="runs/")
    keys = [o["Key"] for o in listing.get("Contents", []) if f"/{RUN_KEY}/" in o["Key"]]
    (manifest_key,) = [k for k in keys if k.endswith(f"/{RUN_KEY}/manifest.json")]
    manifest = json.loads(s3.get_object(Bucket=OUT_BUCKET, Key=manifest_key)["Body"].read())
    tables = []
    for part in sorted(manifest["parts"], key=lambda p: p["key"]):
        if part["kind"] == "scores":
            body = s3.get_object(Bucket=OUT_BUCKET, Key=f"runs/{part['key']}")["Body"].read()
            tables.append(pq.read_table(io.BytesIO(body)))
    return keys, manifest, pa.concat_tables(tables)


def _data_parts(manifest: dict[str, Any]) -> list[tuple[str, int, int, str]]:
    return sorted(
        (p["kind"], p["shard"], p["rows"], p["sha256"])
        for p in manifest["parts"]
        if p["kind"] != "report"
    )


def test_shards_fan_out_to_both_workers_and_publish_once_like_a_local_run(
    cluster_and_project: tuple[CeleryCluster, Project], moto_server: str
) -> None:
    cluster, project = cluster_and_project
    af = cluster.airflow
    started = time.monotonic()
    run = af.trigger(
        DAG_ID, conf={"run_key": RUN_KEY, "shard_rows": SHARD_ROWS, "chunk_size": CHUNK}
    )
    final = af.wait_for_run(DAG_ID, run["dag_run_id"], timeout=210)
    print(f"celery run took {time.monotonic() - started:.0f}s")
    tis = af.task_instances(DAG_ID, run["dag_run_id"])
    states = {(t["task_id"], t["map_index"]): t["state"] for t in tis}
    assert final["state"] == "success", states

    # every shard ran, on both workers, each attempt once
    scores = [t for t in tis if t["task_id"] == "score"]
    assert sorted(t["map_index"] for t in scores) == list(range(ROWS // SHARD_ROWS)), states
    assert all(t["state"] == "success" and t["try_number"] == 1 for t in scores), scores
    by_host = {
        host: sorted(t["map_index"] for t in scores if t["hostname"] == host) for host in WORKERS
    }
    assert all(by_host.values()) and sum(map(len, by_host.values())) == len(scores), by_host
    print(f"shards per worker: {by_host}")
    assert {t["hostname"] for t in tis if t["state"] == "success"} <= set(WORKERS)

    # exactly one commit: one manifest; staging of no other attempt left; the publish said so
    keys, manifest, table = _published(moto_server)
    attempts = {k.split("/attempts/")[1].split("/")[0] for k in keys if "/attempts/" in k}
    assert attempts == {manifest["attempt_id"]}, attempts
    publish_log = af.task_log(DAG_ID, run["dag_run_id"], "publish")
    assert f"run {RUN_KEY} committed at" in publish_log
    assert manifest["shards"] == ROWS // SHARD_ROWS and manifest["counts"]["rows_in"] == ROWS

    # the input came through DVC at the pinned revision
    assert manifest["input"]["git_rev"] == project.rev
    assert manifest["input"]["dvc_md5"] == project.md5

    # the same scores as a local run of the same bytes with the same model
    local = project.local_manifest
    assert manifest["input"]["sha256"] == local["input"]["sha256"]
    assert manifest["model"]["sha256"] == local["model"]["sha256"]
    assert manifest["counts"] == local["counts"]
    assert _data_parts(manifest) == _data_parts(local)
    assert manifest["content_sha256"] == local["content_sha256"]
    assert table.equals(project.local_scores)
