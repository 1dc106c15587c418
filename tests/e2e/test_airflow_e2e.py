"""End to end through a real Airflow: `airflow standalone` (scheduler, dag-processor, triggerer,
api-server, LocalExecutor) serving our dags/, driven over the REST API like a user or CI would.

One Airflow for the module (startup is most of the cost); ~5k rows so every run takes seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.airflow_harness import AirflowStandalone, HTTPStatusError, build_project
from tests.paths import DAGS

pytestmark = [pytest.mark.airflow_e2e, pytest.mark.timeout(420)]

DAG_ID = "batchscore"
RUN_KEY = "e2e-manual"
# What every scoring task imports (pandas, scikit-learn, skops, GX: ~10 s on a small VM).
PRELOAD = (
    "airflow,pipelines.run.pipeline,pipelines.quality.gate,pipelines.quality.verdict,"
    "skops.io,great_expectations"
)
# A connection the tasks export for boto3/DVC (unused by the file:// output): its secret must
# never reach a task log.
SECRET = "e2e-conn-secret-5f3a9c"
S3_CONNECTION = json.dumps(
    {"conn_type": "aws", "login": "AKIAE2ECONN", "password": SECRET, "extra": {}}
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_project(tmp_path_factory.mktemp("e2e-project"), rows=5_000, shard_rows=2_000)


@pytest.fixture(scope="module")
def airflow(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStandalone]:
    af = AirflowStandalone(
        DAGS,
        tmp_path_factory.mktemp("airflow-home"),
        env={
            "BATCHSCORE_PARAMS": str(project),
            "AIRFLOW_CONN_BATCHSCORE_S3": S3_CONNECTION,
            # LocalExecutor workers start from a forkserver that has already imported the
            # scoring stack; every task forks from them and skips ~5-10 s of imports.
            "AIRFLOW__CORE__MP_START_METHOD": "forkserver",
            "AIRFLOW__CORE__MP_FORKSERVER_PRELOAD": PRELOAD,
        },
    )
    try:
        af.start()
        af.wait_for_dag(DAG_ID)
        af.unpause(DAG_ID)
        yield af
    finally:
        af.stop()  # kills the whole process group, also when a test failed


def _manifests(project: Path, run_key: str = "*") -> list[Path]:
    return sorted((project.parent / "out").glob(f"*/{run_key}/manifest.json"))


def test_unpaused_dag_runs_its_latest_schedule_keyed_by_logical_date(
    airflow: AirflowStandalone, project: Path
) -> None:
    # catchup=False: unpausing creates one scheduled run, for the most recent cron time.
    deadline = time.monotonic() + 60
    path = f"dags/{DAG_ID}/dagRuns"
    while not (runs := airflow.api("GET", path, run_type="scheduled")["dag_runs"]):
        assert time.monotonic() < deadline, "no scheduled run 60 s after unpausing"
        time.sleep(1)
    assert len(runs) == 1, runs
    run = airflow.wait_for_run(DAG_ID, runs[0]["dag_run_id"])
    assert run["state"] == "success", airflow.task_states(DAG_ID, run["dag_run_id"])
    run_key = run["logical_date"][:10]
    (manifest_path,) = _manifests(project, run_key)
    assert json.loads(manifest_path.read_text())["run_key"] == run_key


def test_trigger_publishes_once_and_rerun_is_a_noop(
    airflow: AirflowStandalone, project: Path
) -> None:
    run = airflow.trigger(DAG_ID, conf={"run_key": RUN_KEY, "chunk_size": 1000})
    assert run["logical_date"] is None  # a manual run from the API, like the UI's
    final = airflow.wait_for_run(DAG_ID, run["dag_run_id"])
    states = airflow.task_states(DAG_ID, run["dag_run_id"])
    assert final["state"] == "success", states
    assert [k for k in states if k.startswith("score[")] == ["score[0]", "score[1]", "score[2]"]
    assert states["report"] == "success"

    (manifest_path,) = _manifests(project, RUN_KEY)
    manifest = json.loads(manifest_path.read_text())
    assert manifest["run_key"] == RUN_KEY
    assert manifest["counts"]["rows_in"] == 5_000
    assert manifest["counts"]["rows_in"] == (
        manifest["counts"]["rows_scored"] + manifest["counts"]["rows_quarantined"]
    )
    published = manifest_path.read_bytes()
    log = airflow.task_log(DAG_ID, run["dag_run_id"], "report")
    assert f"run_key={RUN_KEY} status=committed" in log
    for task_id in ("resolve", "pull", "plan", "publish", "report"):
        assert SECRET not in airflow.task_log(DAG_ID, run["dag_run_id"], task_id), task_id

    again = airflow.trigger(DAG_ID, conf={"run_key": RUN_KEY})
    final = airflow.wait_for_run(DAG_ID, again["dag_run_id"])
    states = airflow.task_states(DAG_ID, again["dag_run_id"])
    assert final["state"] == "success", states
    assert states["report"] == "skipped"  # nothing new: no asset event downstream
    assert _manifests(project, RUN_KEY) == [manifest_path]
    assert manifest_path.read_bytes() == published  # not rewritten


def test_param_outside_its_schema_is_refused_at_trigger(airflow: AirflowStandalone) -> None:
    with pytest.raises(HTTPStatusError) as info:
        airflow.trigger(DAG_ID, conf={"run_key": "bad-chunk", "chunk_size": 0})
    assert info.value.status == 400
    assert "chunk_size" in str(info.value) and "minimum" in str(info.value)


def test_bad_param_value_fails_the_run_fast_with_a_clear_message(
    airflow: AirflowStandalone, project: Path
) -> None:
    wrong_pin = "0" * 64
    run = airflow.trigger(DAG_ID, conf={"run_key": "wrong-pin", "model_sha256": wrong_pin})
    final = airflow.wait_for_run(DAG_ID, run["dag_run_id"], timeout=120)
    states = airflow.task_states(DAG_ID, run["dag_run_id"])
    assert final["state"] == "failed", states
    assert states["plan"] == "failed"
    tis = airflow.task_instances(DAG_ID, run["dag_run_id"])
    (ti,) = [t for t in tis if t["task_id"] == "plan"]
    assert ti["try_number"] == 1  # AirflowFailException: not retried
    log = airflow.task_log(DAG_ID, run["dag_run_id"], "plan")
    assert "ModelIntegrityError" in log and wrong_pin in log
    assert "batchscore FAILED" in log  # the one-line summary from the failure callback
    assert _manifests(project, "wrong-pin") == []
