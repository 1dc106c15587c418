"""The DAG files: they parse fast with no heavy imports, declare what production needs, and
`dag.test()` runs the whole DAG end to end (local folder and a real S3 endpoint).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.paths import DAGS, ROOT

DAG_ID = "batchscore"

from tests.airflow_home import use_throwaway_home  # noqa: E402

use_throwaway_home()  # before anything imports Airflow

from tests.airflow_harness import build_project  # noqa: E402

# skops looks up ufuncs by scanning every loaded module; with Airflow loaded in this process that
# trips Airflow's deprecated-import shims (FutureWarning) by the thousand. Task processes are quiet.
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning:skops.io._utils")

HEAVY = ("pandas", "sklearn", "pyarrow", "great_expectations", "numpy", "boto3")
# Of `pipelines`, parse time may load only the config (the run-key rule and default cron it shares
# with the trigger form), whose own imports are pydantic and yaml.
PARSE_TIME_PIPELINES = {
    "pipelines",
    "pipelines.config",
    "pipelines.errors",
}

# Run in a fresh interpreter: what the dag-processor sees, with no test imports around and every
# outbound connection refused, so a DAG doing I/O at parse time fails loudly here.
PARSE_SCRIPT = textwrap.dedent(
    """
    import json, socket, sys, time

    def no_network(*args, **kwargs):
        raise OSError("network access at DAG parse time")

    socket.socket.connect = no_network
    socket.create_connection = no_network
    from airflow.dag_processing.dagbag import BundleDagBag

    start = time.perf_counter()
    bag = BundleDagBag(dag_folder=sys.argv[1], bundle_path=sys.argv[1])  # as the dag-processor
    elapsed = time.perf_counter() - start
    dags = {
        dag_id: {
            "schedule": getattr(dag.timetable, "expression", None),
            "tasks": len(dag.tasks),
        }
        for dag_id, dag in bag.dags.items()
    }
    heavy = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2].split(",")))
    files = sorted(stat.file for stat in bag.dagbag_stats)
    ours = sorted(m for m in sys.modules if m == "pipelines" or m.startswith("pipelines."))
    print(json.dumps({"errors": bag.import_errors, "dags": dags, "seconds": elapsed,
                      "heavy": heavy, "files": files, "pipelines": ours}))
    """
)


def _parse_in_subprocess(extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    env = {**os.environ, **(extra_env or {})}
    out = subprocess.run(
        [sys.executable, "-c", PARSE_SCRIPT, str(DAGS), ",".join(HEAVY)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_dagbag_loads_fast_without_heavy_imports_or_io(record_property) -> None:
    result = _parse_in_subprocess()
    assert result["errors"] == {}
    assert DAG_ID in result["dags"]
    assert result["heavy"] == [], f"heavy modules imported at parse time: {result['heavy']}"
    assert set(result["pipelines"]) <= PARSE_TIME_PIPELINES, result["pipelines"]
    # batchscore_support.py is imported by the DAG, not parsed as a DAG file (.airflowignore)
    assert [Path(f).name for f in result["files"]] == ["batchscore_dag.py"], result["files"]
    record_property("dagbag_parse_seconds", round(result["seconds"], 3))
    print(f"\nDagBag parse of dags/: {result['seconds'] * 1000:.0f} ms, {result['dags']}")
    # Airflow's default dagbag_import_timeout is 30 s; a light DAG file parses in well under 1 s.
    assert result["seconds"] < 5


# -- the DAG object --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags[DAG_ID]


@pytest.fixture(scope="module")
def support():
    import batchscore_support

    return batchscore_support


def test_dag_shape(dag) -> None:
    import yaml

    cron = yaml.safe_load((ROOT / "params.yaml").read_text())["schedule"]["cron"]
    assert dag.timetable.expression == cron
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.doc_md and "run key" in dag.doc_md
    assert dag.on_failure_callback
    order = ["resolve", "pull", "plan", "fan_out", "score", "publish", "report"]
    assert [t.task_id for t in sorted(dag.tasks, key=lambda t: order.index(t.task_id))] == order
    assert dag.get_task("score").is_mapped if hasattr(dag.get_task("score"), "is_mapped") else True
    for task in dag.tasks:
        assert task.retries >= 2, task.task_id
        assert task.retry_exponential_backoff, task.task_id
        assert task.execution_timeout is not None, task.task_id
        assert task.on_failure_callback, task.task_id
    outlets = {a.name for a in dag.get_task("report").outlets}
    assert outlets == {"batchscore_scores", "batchscore_quarantine", "batchscore_reports"}


def test_trigger_form_params_explain_themselves(dag) -> None:
    expected = {
        "run_key",
        "data_rev",
        "model_path",
        "model_sha256",
        "chunk_size",
        "shard_rows",
        "max_quarantine_fraction",
        "overwrite",
        "dry_run",
    }
    assert set(dag.params) == expected
    for name in expected:
        param = dag.params.get_param(name)
        assert param.schema.get("title"), name
        assert len(param.description or "") > 20, name
        assert param.schema.get("type"), name
    # Defaults must validate, or scheduled runs would fail before their first task.
    dag.params.validate()


def test_schedule_from_params_and_fallback_when_unreadable(
    support, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("schedule:\n  cron: '30 4 * * *'\n")
    monkeypatch.setenv("BATCHSCORE_PARAMS", str(params))
    assert support.nightly_schedule().expression == "30 4 * * *"
    monkeypatch.setenv("BATCHSCORE__SCHEDULE__CRON", "15 3 * * 1-5")
    assert support.nightly_schedule().expression == "15 3 * * 1-5"
    # Unreadable file or invalid cron: the default, never a parse error.
    monkeypatch.setenv("BATCHSCORE__SCHEDULE__CRON", "every night")
    assert support.nightly_schedule().expression == "0 2 * * *"
    monkeypatch.delenv("BATCHSCORE__SCHEDULE__CRON")
    monkeypatch.setenv("BATCHSCORE_PARAMS", str(tmp_path / "missing.yaml"))
    assert support.nightly_schedule().expression == "0 2 * * *"
    params.write_text("schedule: [not, a, mapping\n")
    monkeypatch.setenv("BATCHSCORE_PARAMS", str(params))
    assert support.nightly_schedule().expression == "0 2 * * *"


def test_run_key_resolution(support) -> None:
    import datetime as dt
    from types import SimpleNamespace

    logical = dt.datetime(2026, 11, 23, 2, tzinfo=dt.UTC)
    started = SimpleNamespace(start_date=dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC))
    key = support.resolve_run_key
    assert key({"run_key": "backfill-7"}, {"logical_date": logical}) == "backfill-7"
    assert key({"run_key": None}, {"logical_date": logical, "dag_run": started}) == "2026-11-23"
    assert key({}, {"logical_date": None, "dag_run": started}) == "2026-11-24"


def test_non_retryable_errors_fail_fast(support) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from pipelines.errors import ConfigError, QualityGateError, StorageError

    for error in (ConfigError("bad"), QualityGateError("too many rows quarantined")):
        with (
            pytest.raises(AirflowFailException, match=type(error).__name__),
            support.fail_fast(),
        ):
            raise error
    with pytest.raises(StorageError), support.fail_fast():
        raise StorageError("endpoint down")  # retryable: Airflow's retries handle it


def test_failure_callbacks_log_one_line(support, caplog) -> None:
    from types import SimpleNamespace

    ti = SimpleNamespace(task_id="score", map_index=2, try_number=3)
    context = {
        "ti": ti,
        "dag_run": SimpleNamespace(run_id="manual__x"),
        "params": {"run_key": "2026-11-23"},
        "exception": ValueError("boom\n  with detail"),
    }
    with caplog.at_level("ERROR", logger="batchscore.dag"):
        support.log_failure_summary(context)
        support.log_failure_summary({**context, "exception": None, "reason": "task_failure"})
    lines = [r.getMessage() for r in caplog.records if r.name == "batchscore.dag"]
    assert lines == [
        "batchscore FAILED run_id=manual__x run_key=2026-11-23 task=score[2] try=3: "
        "boom with detail",
        "batchscore FAILED run_id=manual__x run_key=2026-11-23 dag_run: "
        "task_failure (task score failed)",
    ]


# -- dag.test() end to end -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils import db

    db.initdb()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_project(tmp_path_factory.mktemp("project"))


def _run(dag, conf: dict[str, Any], logical_date: Any = None, **task_overrides: dict[str, Any]):
    """dag.test() one run; `task_overrides` set attributes of tasks (`publish={"retries": 0}`)."""
    from airflow.dag_processing.dagbag import DagBag

    # A fresh DAG object per run: dag.test() runs tasks in this process, where a run's conf
    # would otherwise stay in the shared params of the next run (the scheduler has no such state).
    dag = DagBag(dag_folder=str(DAGS)).dags[dag.dag_id]
    for task_id, attrs in task_overrides.items():
        for name, value in attrs.items():
            setattr(dag.get_task(task_id), name, value)
    start = time.perf_counter()
    dr = dag.test(run_conf=conf, logical_date=logical_date)
    states = {
        (ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): ti.state
        for ti in dr.get_task_instances()
    }
    print(f"\ndag.test {conf}: {dr.state} in {time.perf_counter() - start:.1f}s {states}")
    return dr, states


def _xcom(dr, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == dr.dag_id,
                XComModel.run_id == dr.run_id,
                XComModel.task_id == task_id,
                XComModel.key == "return_value",
            )
        )
    return json.loads(value) if isinstance(value, str) else value


def _manifests(root: Path) -> list[Path]:
    return sorted(root.rglob("manifest.json"))


def test_dag_test_end_to_end_local_and_idempotent(
    dag, airflow_db, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHSCORE_PARAMS", str(project))
    out = project.parent / "out"

    dr, states = _run(dag, {"run_key": "2026-01-15"})
    assert dr.state == "success", states
    assert states["report"] == "success"
    assert sum(k.startswith("score[") for k in states) == 3  # 5,000 rows / 2,000 per shard
    (manifest_path,) = _manifests(out)
    manifest = json.loads(manifest_path.read_text())
    assert manifest["run_key"] == "2026-01-15"
    assert manifest["counts"]["rows_in"] == 5_000
    assert manifest["shards"] == 3
    first = manifest_path.read_bytes()

    # Same run key again: a no-op success, nothing published twice.
    dr, states = _run(dag, {"run_key": "2026-01-15"})
    assert dr.state == "success", states
    assert states["report"] == "skipped"  # no new asset event for downstream DAGs
    assert _manifests(out) == [manifest_path]
    assert manifest_path.read_bytes() == first


def test_dag_test_manual_run_without_logical_date_gets_a_run_key(
    dag, airflow_db, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    monkeypatch.setenv("BATCHSCORE_PARAMS", str(project))
    dr, states = _run(dag, {"dry_run": True}, logical_date=None)
    assert dr.logical_date is None
    assert dr.state == "success", states
    assert states["report"] == "skipped"  # dry run: nothing published
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    assert _xcom(dr, "resolve")["run.key"] == json.dumps(today)  # quoted: see yaml_scalar
    assert not list((project.parent / "out").rglob(f"{today}/manifest.json"))


def test_dag_test_bad_param_fails_fast(
    dag, airflow_db, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHSCORE_PARAMS", str(project))
    dr, states = _run(dag, {"run_key": "bad-sha", "model_sha256": "0" * 64})
    assert dr.state == "failed"
    assert states["plan"] == "failed"  # AirflowFailException: no retry
    assert states["resolve"] == "success"
    ti = next(ti for ti in dr.get_task_instances() if ti.task_id == "plan")
    assert ti.try_number == 1


def test_dag_test_end_to_end_s3(
    dag, airflow_db, tmp_path: Path, s3_endpoint: str, s3_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_client.create_bucket(Bucket="batchscore-dag")
    params = build_project(
        tmp_path, rows=3_000, output_uri="s3://batchscore-dag/runs", s3_endpoint=s3_endpoint
    )
    monkeypatch.setenv("BATCHSCORE_PARAMS", str(params))
    dr, states = _run(dag, {"run_key": "2026-01-15"})
    assert dr.state == "success", states
    keys = [
        o["Key"] for o in s3_client.list_objects_v2(Bucket="batchscore-dag").get("Contents", [])
    ]
    manifests = [k for k in keys if k.endswith("/2026-01-15/manifest.json")]
    assert len(manifests) == 1, keys
    body = s3_client.get_object(Bucket="batchscore-dag", Key=manifests[0])["Body"].read()
    assert json.loads(body)["counts"]["rows_in"] == 3_000


def test_s3_connection_is_handed_to_boto3_through_the_environment(
    support, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
             "AWS_DEFAULT_REGION", "BATCHSCORE__S3__ENDPOINT_URL")  # fmt: skip
    for name in names:  # restored after the test whatever the task exported
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    conn = {
        "conn_type": "aws",
        "login": "AKIACONNECTION42",
        "password": "connection/secret",
        "extra": {"endpoint_url": "http://minio:9000", "region_name": "eu-west-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_BATCHSCORE_S3", json.dumps(conn))
    support.export_s3_connection()
    assert os.environ["AWS_ACCESS_KEY_ID"] == "AKIACONNECTION42"
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == "connection/secret"
    assert os.environ["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert os.environ["BATCHSCORE__S3__ENDPOINT_URL"] == "http://minio:9000"
    assert "AWS_SESSION_TOKEN" not in os.environ


def test_dag_test_publish_timeout_commits_nothing_and_the_retry_commits_once(
    dag, airflow_db, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    import pipelines.run.finalize

    calls = []
    real_publish = pipelines.run.finalize.publish_run

    def slow_first_time(*args: Any, **kwargs: Any) -> Any:
        calls.append(time.monotonic())
        if len(calls) == 1:
            time.sleep(30)  # a hung commit: execution_timeout must stop it
        return real_publish(*args, **kwargs)

    monkeypatch.setattr(pipelines.run.finalize, "publish_run", slow_first_time)
    monkeypatch.setenv("BATCHSCORE_PARAMS", str(project))
    out = project.parent / "out"
    timeout = {"execution_timeout": dt.timedelta(seconds=2), "retry_delay": dt.timedelta(0)}

    dr, states = _run(dag, {"run_key": "timeout-1"}, publish={**timeout, "retries": 0})
    assert dr.state == "failed" and states["publish"] == "failed", states
    assert not list(out.glob("*/timeout-1/manifest.json"))

    calls.clear()
    dr, states = _run(dag, {"run_key": "timeout-2"}, publish={**timeout, "retries": 1})
    assert dr.state == "success", states
    publish = next(ti for ti in dr.get_task_instances() if ti.task_id == "publish")
    assert publish.try_number == 2 and len(calls) == 2
    assert len(list(out.glob("*/timeout-2/manifest.json"))) == 1


def test_dag_test_publish_retry_after_its_commit_reports_identical_and_still_announces(
    dag, airflow_db, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Try 1 of publish commits and then fails (say, the reply is lost); try 2 shares the plan's
    attempt id. The status is what try 2's publish did ("identical": the DAG used to say
    "committed"), the published parts are intact, and the run's new output is announced."""
    import datetime as dt

    import pipelines.run.finalize
    from pipelines.errors import StorageError

    commits: list[str] = []
    real_commit = pipelines.run.finalize.commit_run

    def commit_then_fail(*args: Any, **kwargs: Any) -> Any:
        outcome = real_commit(*args, **kwargs)
        commits.append(outcome.status)
        if len(commits) == 1:
            raise StorageError("connection reset after the manifest was written")  # retryable
        return outcome

    monkeypatch.setattr(pipelines.run.finalize, "commit_run", commit_then_fail)
    monkeypatch.setenv("BATCHSCORE_PARAMS", str(project))
    retry = {"retries": 1, "retry_delay": dt.timedelta(0)}
    dr, states = _run(dag, {"run_key": "commit-then-fail"}, publish=retry)
    assert dr.state == "success", states
    publish = next(ti for ti in dr.get_task_instances() if ti.task_id == "publish")
    assert publish.try_number == 2 and commits == ["committed"]  # try 2 did not commit again
    summary = _xcom(dr, "publish")
    assert summary["status"] == "identical" and summary["newly_published"] is True
    assert states["report"] == "success"  # announced: downstream has not heard of it yet
    (manifest_path,) = (project.parent / "out").glob("*/commit-then-fail/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    out = project.parent / "out"
    assert all((out / part["key"]).is_file() for part in manifest["parts"])
