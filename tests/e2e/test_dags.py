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
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
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
    "pipelines.params_file",
    # the pure pydantic settings of each room config nests (their packages' __init__ is a docstring)
    *(
        f"pipelines.{room}{mod}"
        for room in ("alerts", "monitoring", "outcomes", "registry")
        for mod in ("", ".settings")
    ),
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
    # batchscore_support.py and batchscore_report.py are imported by the DAG, not parsed as DAG
    # files (.airflowignore)
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
        assert task.on_retry_callback, task.task_id  # a failed try ends its log with a summary too
    outlets = {a.name for a in dag.get_task("report").outlets}
    assert outlets == {"batchscore_scores", "batchscore_quarantine", "batchscore_reports"}
    links = {t.task_id: [link.name for link in t.operator_extra_links] for t in dag.tasks}
    assert {k: v for k, v in links.items() if v} == {
        "publish": ["Quality report"],
        "report": ["Quality report"],
    }


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


FORM_SECTIONS = {
    "What to score": ["run_key", "data_rev", "model_path", "model_sha256"],
    "How": ["chunk_size", "shard_rows", "max_quarantine_fraction"],
    "Publishing": ["overwrite", "dry_run"],
}


def test_trigger_form_is_in_sections_and_nothing_is_marked_required(dag) -> None:
    # The form shows sections in the order their first field comes, fields in dict order.
    shown: dict[str, list[str]] = {}
    for name in dag.params:
        shown.setdefault(dag.params.get_param(name).schema["section"], []).append(name)
    assert shown == FORM_SECTIONS
    assert list(shown) == list(FORM_SECTIONS)
    for name in dag.params:
        schema = dag.params.get_param(name).schema
        # Airflow's form marks a field required unless its type admits null (`isRequired` in
        # the UI's FieldRow); the UI test in test_airflow_e2e.py checks the rendered form.
        assert isinstance(schema["type"], list) and "null" in schema["type"], name
    for name in FORM_SECTIONS["Publishing"]:  # switches: a boolean, off unless turned on
        param = dag.params.get_param(name)
        assert [t for t in param.schema["type"] if t != "null"] == ["boolean"], name
        assert param.value is False, name


def test_unknown_conf_keys_and_values_the_config_refuses_are_one_sentence(support) -> None:
    from pipelines.errors import ConfigError

    known = "Known: run_key, data_rev, model_path, model_sha256, chunk_size, shard_rows, "
    with pytest.raises(ConfigError) as info:
        support.form_overrides({"run_key": None, "run_kye": "2026-01-15"}, {})
    assert str(info.value) == (
        "unknown conf key 'run_kye'; did you mean 'run_key'? " + known
        + "max_quarantine_fraction, overwrite, dry_run"
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"^unknown conf key 'colour'\. Known: run_key, "):
        support.form_overrides({"colour": "blue"}, {})
    with pytest.raises(ConfigError) as info:  # the conf, even if Airflow did not merge it
        support.form_overrides({}, {"dag_run": SimpleNamespace(conf={"dry-run": 1, "zz": 2})})
    assert str(info.value).startswith(
        "unknown conf keys 'dry-run' (did you mean 'dry_run'?), 'zz'. Known: run_key, "
    )
    refused = {
        "chunk_size": (0, "'Chunk size (rows)' (chunk_size) = 0 is not a valid score.chunk_size: "
                       "input should be greater than or equal to 1"),
        "model_sha256": ("xyz", "'Model sha256' (model_sha256) = 'xyz' is not a valid "
                         "model.sha256: must be 64 hex characters"),
        "max_quarantine_fraction": (2, "(max_quarantine_fraction) = 2 is not a valid "
                                    "validation.max_quarantine_fraction: input should be less "
                                    "than or equal to 1"),
        "run_key": ("a/b", "'Run key' (run_key) = 'a/b' is not a valid run.key: must be 1-128"),
    }  # fmt: skip
    for name, (value, expected) in refused.items():
        with pytest.raises(ConfigError) as info:
            support.form_overrides({name: value}, {})
        message = str(info.value)
        assert expected in message, message
        assert "\n" not in message and message.startswith("trigger form field "), message


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
    ti = SimpleNamespace(task_id="score", map_index=2, try_number=3)
    context = {
        "ti": ti,
        "dag_run": SimpleNamespace(run_id="manual__x"),
        "params": {"run_key": "2026-11-23"},
        "exception": ValueError("boom\n  with detail"),
    }
    with caplog.at_level("INFO", logger="batchscore.dag"):
        support.log_failure_summary(context)
        support.log_retry_summary(context)
        support.log_failure_summary({**context, "exception": None, "reason": "task_failure"})
    lines = [r.getMessage() for r in caplog.records if r.name == "batchscore.dag"]
    # In a task, the summary first closes the "Post Execute" log group Airflow has opened around
    # the callbacks, so the UI shows it below the traceback, not folded away.
    assert lines == [
        "::endgroup::",
        "batchscore FAILED run_id=manual__x run_key=2026-11-23 task=score[2] try=3: "
        "ValueError: boom with detail",
        "::endgroup::",
        "batchscore FAILED run_id=manual__x run_key=2026-11-23 task=score[2] try=3 (will retry): "
        "ValueError: boom with detail",
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


def _run(
    dag,
    conf: dict[str, Any],
    logical_date: Any = None,
    prepare: Callable[[Any], None] | None = None,
    **task_overrides: dict[str, Any],
):
    """dag.test() one run; `task_overrides` set attributes of tasks (`publish={"retries": 0}`),
    `prepare` gets the fresh DAG object first."""
    from airflow.dag_processing.dagbag import DagBag

    # A fresh DAG object per run: dag.test() runs tasks in this process, where a run's conf
    # would otherwise stay in the shared params of the next run (the scheduler has no such state).
    dag = DagBag(dag_folder=str(DAGS)).dags[dag.dag_id]
    if prepare is not None:
        prepare(dag)
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


def _xcom(dr, task_id: str, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == dr.dag_id,
                XComModel.run_id == dr.run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
            )
        )
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:  # an extra link's XCom is the bare URL
        return value


def _asset_event_extras(dr) -> dict[str, dict[str, Any]]:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent).where(
                AssetEvent.source_dag_id == dr.dag_id, AssetEvent.source_run_id == dr.run_id
            )
        ).all()
        return {e.uri: e.extra for e in events}


def _summaries(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The task failure callbacks' lines (dag.test() also runs the DAG's: its line says dag_run)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "batchscore.dag"
        and r.getMessage().startswith("batchscore FAILED")
        and " dag_run: " not in r.getMessage()
    ]


def _manifests(root: Path) -> list[Path]:
    return sorted(root.rglob("manifest.json"))


def test_dag_test_end_to_end_local_and_idempotent(
    dag, airflow_db, project: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    monkeypatch.setenv("BATCHSCORE_PARAMS", str(project))
    out = project.parent / "out"

    with caplog.at_level("INFO", logger="batchscore.dag"):
        dr, states = _run(dag, {"run_key": "2026-01-15"})
    assert dr.state == "success", states
    assert states["report"] == "success"
    # The quality report: in the log, in the summary, on the UI's link, in the asset events.
    report_uri = _xcom(dr, "publish")["report_uri"]
    assert report_uri.startswith(f"file://{out}/") and report_uri.endswith("/quality.html")
    assert "/2026-01-15/" in report_uri, report_uri
    assert Path(report_uri.removeprefix("file://")).is_file()
    logged = [r.getMessage() for r in caplog.records if r.name == "batchscore.dag"]
    assert logged.count(f"quality report: {report_uri}") == 2  # publish's log and report's
    for task_id in ("publish", "report"):
        assert _xcom(dr, task_id, "_link_QualityReportLink") == report_uri, task_id
    extras = _asset_event_extras(dr)
    assert set(extras) == {a.uri for a in dag.get_task("report").outlets}
    assert all(
        e["report_uri"] == report_uri and e["run_key"] == "2026-01-15" for e in extras.values()
    )
    assert sum(k.startswith("score[") for k in states) == 3  # 5,000 rows / 2,000 per shard
    # drift and performance status and the model version: in the summary line and the extras
    summary = _xcom(dr, "publish")
    assert summary["drift_status"] in {"ok", "warn", "fail", "no_baseline"}
    assert summary["performance_status"] in {"ok", "fail", "no_baseline"}
    lines = [m for m in logged if m.startswith("batchscore run_key=2026-01-15 status=")]
    assert lines and all(f"drift={summary['drift_status']} " in m for m in lines), lines
    assert all(e["drift_status"] == summary["drift_status"] for e in extras.values())
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


def test_dag_test_unknown_conf_key_fails_resolve_at_once(
    dag, airflow_db, project: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    monkeypatch.setenv("BATCHSCORE_PARAMS", str(project))
    with caplog.at_level("INFO", logger="batchscore.dag"):
        dr, states = _run(dag, {"run_kye": "typo-1", "dry_run": True})
    assert dr.state == "failed"
    assert states["resolve"] == "failed" and states["pull"] == "upstream_failed", states
    resolve = next(ti for ti in dr.get_task_instances() if ti.task_id == "resolve")
    assert resolve.try_number == 1  # AirflowFailException: no retry
    (line,) = _summaries(caplog)
    assert f"run_id={dr.run_id} run_key=<from date> task=resolve try=1: " in line
    assert line.endswith(
        "ConfigError: unknown conf key 'run_kye'; did you mean 'run_key'? Known: run_key, "
        "data_rev, model_path, model_sha256, chunk_size, shard_rows, max_quarantine_fraction, "
        "overwrite, dry_run"
    ), line


def _loosen(name: str, keyword: str) -> Callable[[Any], None]:
    """Drop one rule from a form field's schema: a form that lets through what the config
    refuses (as when the two drift apart)."""

    def prepare(dag: Any) -> None:
        for params in (dag.params, *(t.params for t in dag.tasks)):
            if name in params:
                params.get_param(name).schema.pop(keyword, None)

    return prepare


def test_dag_test_value_the_config_refuses_fails_resolve_naming_the_field(
    dag, airflow_db, project: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    monkeypatch.setenv("BATCHSCORE_PARAMS", str(project))
    conf = {"run_key": "chunk-0", "chunk_size": 0}
    with caplog.at_level("INFO", logger="batchscore.dag"):
        dr, states = _run(dag, conf, prepare=_loosen("chunk_size", "minimum"))
    assert dr.state == "failed" and states["resolve"] == "failed", states
    (line,) = _summaries(caplog)
    assert line.endswith(
        "task=resolve try=1: ConfigError: trigger form field 'Chunk size (rows)' (chunk_size) = 0 "
        "is not a valid score.chunk_size: input should be greater than or equal to 1"
    ), line


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
            time.sleep(60)  # a hung commit: execution_timeout must stop it
        return real_publish(*args, **kwargs)

    monkeypatch.setattr(pipelines.run.finalize, "publish_run", slow_first_time)
    monkeypatch.setenv("BATCHSCORE_PARAMS", str(project))
    out = project.parent / "out"
    timeout = {"execution_timeout": dt.timedelta(seconds=10), "retry_delay": dt.timedelta(0)}

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
    dag, airflow_db, project: Path, monkeypatch: pytest.MonkeyPatch, caplog
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
    with caplog.at_level("INFO", logger="batchscore.dag"):
        dr, states = _run(dag, {"run_key": "commit-then-fail"}, publish=retry)
    assert dr.state == "success", states
    # The failed try's log ends with its summary too (the retry callback's)
    assert _summaries(caplog) == [
        f"batchscore FAILED run_id={dr.run_id} run_key=commit-then-fail task=publish try=1 "
        "(will retry): StorageError: connection reset after the manifest was written"
    ]
    publish = next(ti for ti in dr.get_task_instances() if ti.task_id == "publish")
    assert publish.try_number == 2 and commits == ["committed"]  # try 2 did not commit again
    summary = _xcom(dr, "publish")
    assert summary["status"] == "identical" and summary["newly_published"] is True
    assert states["report"] == "success"  # announced: downstream has not heard of it yet
    (manifest_path,) = (project.parent / "out").glob("*/commit-then-fail/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    out = project.parent / "out"
    assert all((out / part["key"]).is_file() for part in manifest["parts"])
