"""Reliability matrix rows that need a real scheduler: `airflow standalone` over the REST API.

One Airflow for the module, publishing to an S3 endpoint that checks credentials (a moto server
with IAM auth on), with the credentials only in the Airflow connection `batchscore_s3` kept in the
metadata DB. Short heartbeat settings let the scheduler find a task that stops heartbeating within
seconds; a cluster policy (`airflow_local_settings.py`, as a deployment would use) shortens the
DAG's retry delay so the retry is seen in seconds too. Everything else is the DAG as shipped.

- row 12: a task whose supervisor stops heartbeating (SIGSTOP) while the task itself keeps
  running is failed by the scheduler's heartbeat-timeout check and retried; the zombie attempt and
  the retry both reach the commit, and exactly one manifest is published;
- row 29: a wrong secret in the connection fails the run at once with the S3 auth error, and the
  secret is in no task log.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_harness import AirflowStandalone, build_project
from tests.auth_moto import AuthMoto, auth_moto
from tests.paths import DAGS
from tests.s3_fixtures import REGION

pytestmark = [pytest.mark.airflow_e2e, pytest.mark.timeout(420)]

DAG_ID = "batchscore"
BUCKET = "batchscore-reliability"
CONN_ID = "batchscore_s3"
PRELOAD = (
    "airflow,pipelines.run.pipeline,pipelines.quality.gate,pipelines.quality.verdict,"
    "skops.io,great_expectations"
)
HEARTBEAT_TIMEOUT_S = 15  # a healthy supervisor heartbeats every second: wide margin on 2 cores

# A deployment's cluster policy, here only to shorten the DAG's 30 s retry delay for the test.
LOCAL_SETTINGS = textwrap.dedent(
    """
    import datetime as dt


    def task_policy(task):
        if task.dag_id == "batchscore":
            task.retry_delay = dt.timedelta(seconds=1)
    """
)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthMoto]:
    with auth_moto(tmp_path_factory.mktemp("auth-moto")) as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


@pytest.fixture(scope="module")
def project(s3: AuthMoto, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_project(
        tmp_path_factory.mktemp("reliability-project"),
        rows=3_000,
        shard_rows=2_000,
        output_uri=f"s3://{BUCKET}/runs",
        s3_endpoint=s3.endpoint,
        validation=False,
    )


@pytest.fixture(scope="module")
def barrier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`BATCHSCORE_COMMIT_BARRIER=2:<folder>`: a commit waits (<= 60 s) for a second committer.

    Row 12 uses it to hold the first publish attempt just before its commit; `disarm()` fills it.
    """
    return tmp_path_factory.mktemp("commit-barrier") / "arrivals"


def disarm(barrier: Path) -> None:
    barrier.mkdir(parents=True, exist_ok=True)
    for name in ("disarmed-1", "disarmed-2"):
        (barrier / name).touch()


@pytest.fixture(scope="module")
def airflow(
    project: Path, s3: AuthMoto, barrier: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowStandalone]:
    home = tmp_path_factory.mktemp("airflow-home")
    (home / "config").mkdir()
    (home / "config" / "airflow_local_settings.py").write_text(LOCAL_SETTINGS)
    nowhere = str(home / "no-aws-files")
    af = AirflowStandalone(
        DAGS,
        home,
        env={
            "BATCHSCORE_PARAMS": str(project),
            "BATCHSCORE_COMMIT_BARRIER": f"2:{barrier}",
            "AIRFLOW__CORE__MP_START_METHOD": "forkserver",
            "AIRFLOW__CORE__MP_FORKSERVER_PRELOAD": PRELOAD,
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "1",
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            # credentials come from the connection only, never from this machine
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": nowhere,
            "AWS_SHARED_CREDENTIALS_FILE": nowhere,
            "AWS_EC2_METADATA_DISABLED": "true",
        },
    )
    for name in list(af.env):
        if name.startswith("AWS_") and name not in {
            "AWS_DEFAULT_REGION",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_EC2_METADATA_DISABLED",
        }:
            del af.env[name]
    try:
        af.start()
        af.api(
            "POST",
            "connections",
            {
                "connection_id": CONN_ID,
                "conn_type": "aws",
                "login": s3.access_key,
                "password": s3.secret_key,
                "extra": json.dumps({"region_name": REGION}),
            },
        )
        af.wait_for_dag(DAG_ID)
        # Unpausing also creates one scheduled run (catchup=False): let it publish with the
        # barrier disarmed; it proves the connection's credentials work.
        disarm(barrier)
        af.unpause(DAG_ID)
        path = f"dags/{DAG_ID}/dagRuns"
        deadline = time.monotonic() + 60
        while not (runs := af.api("GET", path, run_type="scheduled")["dag_runs"]):
            assert time.monotonic() < deadline, "no scheduled run 60 s after unpausing"
            time.sleep(1)
        scheduled = af.wait_for_run(DAG_ID, runs[0]["dag_run_id"])
        assert scheduled["state"] == "success", af.task_states(DAG_ID, runs[0]["dag_run_id"])
        yield af
    finally:
        af.stop()


def _set_secret(af: AirflowStandalone, secret: str) -> None:
    af.api(
        "PATCH",
        f"connections/{CONN_ID}",
        {"connection_id": CONN_ID, "conn_type": "aws", "password": secret},
        update_mask="password",
    )


def _manifest_keys(s3: AuthMoto, run_key: str) -> list[str]:
    listing = s3.client().list_objects_v2(Bucket=BUCKET, Prefix="runs/")
    keys = [o["Key"] for o in listing.get("Contents", [])]
    return [k for k in keys if k.endswith(f"/{run_key}/manifest.json")]


def _ti(af: AirflowStandalone, run_id: str, task_id: str) -> dict[str, Any]:
    return af.api("GET", f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}")


def _all_logs(af: AirflowStandalone, run_id: str) -> str:
    texts = []
    for ti in af.task_instances(DAG_ID, run_id):
        for attempt in range(1, (ti["try_number"] or 0) + 1):
            texts.append(
                af.task_log(DAG_ID, run_id, ti["task_id"], attempt, ti.get("map_index", -1))
            )
    return "\n".join(texts)


def test_row29_wrong_connection_secret_fails_fast_with_auth_error_and_no_secret_in_logs(
    airflow: AirflowStandalone, s3: AuthMoto, project: Path
) -> None:
    wrong = f"{s3.secret_key[:-8]}Wr0ngKey"
    _set_secret(airflow, wrong)
    try:
        run = airflow.trigger(DAG_ID, conf={"run_key": "wrong-secret"})
        final = airflow.wait_for_run(DAG_ID, run["dag_run_id"], timeout=120)
    finally:
        _set_secret(airflow, s3.secret_key)
    states = airflow.task_states(DAG_ID, run["dag_run_id"])
    assert final["state"] == "failed", states
    assert states["plan"] == "failed", states  # the first task that reads S3
    assert _ti(airflow, run["dag_run_id"], "plan")["try_number"] == 1  # not retried
    log = airflow.task_log(DAG_ID, run["dag_run_id"], "plan")
    assert "SignatureDoesNotMatch" in log and "HTTP 403" in log, log[-3000:]
    assert "check the S3 credentials" in log
    logs = _all_logs(airflow, run["dag_run_id"])
    assert wrong not in logs and s3.secret_key not in logs
    # nor in any log file Airflow wrote (scheduler, api-server, dag-processor, task files)
    files = [airflow.log_path, *(airflow.home / "logs").rglob("*.log")]
    for path in files:
        text = path.read_text(errors="replace")
        assert wrong not in text and s3.secret_key not in text, path
    assert _manifest_keys(s3, "wrong-secret") == []


def _proc_stat(pid: int) -> tuple[str, int]:
    """(state, ppid) from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    try:
        return _proc_stat(pid)[0] != "Z"
    except FileNotFoundError:
        return False


def _wait(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(0.5)
    return value


def test_row12_zombie_publish_is_failed_by_heartbeat_timeout_and_retry_publishes_once(
    airflow: AirflowStandalone, s3: AuthMoto, barrier: Path
) -> None:
    run_key = "zombie"
    shutil.rmtree(barrier)  # armed: the next commit waits for a second committer
    run = airflow.trigger(DAG_ID, conf={"run_key": run_key})
    run_id = run["dag_run_id"]

    # Attempt 1 of publish reaches the commit and waits there for a second committer.
    _wait("publish to reach the commit", lambda: barrier.exists() and os.listdir(barrier), 150)
    ti = _ti(airflow, run_id, "publish")
    assert ti["state"] == "running" and ti["try_number"] == 1, ti
    task_pid = ti["pid"]
    supervisor = _proc_stat(task_pid)[1]
    assert f"airflow worker -- {ti['id']}" in Path(f"/proc/{task_pid}/cmdline").read_text()

    # The supervisor heartbeats for the task: stop it, the task process itself keeps running.
    os.kill(supervisor, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        _wait(
            "the scheduler to fail the silent attempt and start a retry",
            lambda: (t := _ti(airflow, run_id, "publish"))["try_number"] >= 2 and t,
            HEARTBEAT_TIMEOUT_S + 90,
        )
        detected_after = time.monotonic() - stopped
        assert _alive(task_pid), "the zombie attempt should still be running"
        final = airflow.wait_for_run(DAG_ID, run_id, timeout=150)
        states = airflow.task_states(DAG_ID, run_id)
        assert final["state"] == "success", states
    finally:
        os.kill(supervisor, signal.SIGCONT)

    publish = _ti(airflow, run_id, "publish")
    assert publish["state"] == "success" and publish["try_number"] == 2, publish
    # The retry ran in a new process (the TI's pid is the one of the try that succeeded: a
    # snapshot taken as the try number moved on may still show the zombie's pid).
    assert publish["pid"] != task_pid, publish
    assert detected_after >= HEARTBEAT_TIMEOUT_S - 1, detected_after  # by the timeout, not luck
    tries = airflow.api("GET", f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/publish/tries")
    first = next(t for t in tries["task_instances"] if t["try_number"] == 1)
    assert first["state"] in {"failed", "up_for_retry"}, first
    events = airflow.api(
        "GET", "eventLogs", dag_id=DAG_ID, run_id=run_id, task_id="publish", limit=100
    )["event_logs"]
    assert any(e["event"] == "heartbeat timeout" for e in events), [e["event"] for e in events]

    # Both attempts went through the commit barrier; exactly one manifest exists.
    assert len(os.listdir(barrier)) >= 2
    (key,) = _manifest_keys(s3, run_key)
    body = s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert json.loads(body)["run_key"] == run_key

    # Resumed, the zombie's supervisor learns the attempt is over and ends it; nothing changes.
    _wait("the zombie attempt to be ended", lambda: not _alive(task_pid), 60)
    (again,) = _manifest_keys(s3, run_key)
    assert again == key
    assert s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read() == body
    assert airflow.task_states(DAG_ID, run_id)["publish"] == "success"
    # Both attempts made the conditional commit: one won, the other found an identical manifest.
    outcomes = sorted(
        "committed" if f"run {run_key} committed at" in log else "identical"
        for log in (airflow.task_log(DAG_ID, run_id, "publish", n) for n in (1, 2))
        if f"run {run_key} committed at" in log or f"run {run_key} identical at" in log
    )
    assert outcomes == ["committed", "identical"], outcomes
    disarm(barrier)
