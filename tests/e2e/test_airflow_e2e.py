"""End to end through a real Airflow: `airflow standalone` (scheduler, dag-processor, triggerer,
api-server, LocalExecutor) serving our dags/, driven over the REST API like a user or CI would.

One Airflow for the module (startup is most of the cost); ~5k rows so every run takes seconds.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.airflow_harness import AirflowStandalone, HTTPStatusError, build_project, visible_lines
from tests.paths import DAGS, ROOT

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
    _assert_quality_report_is_reachable(airflow, run["dag_run_id"], manifest_path)
    for task_id in ("resolve", "pull", "plan", "publish", "report"):
        assert SECRET not in airflow.task_log(DAG_ID, run["dag_run_id"], task_id), task_id

    again = airflow.trigger(DAG_ID, conf={"run_key": RUN_KEY})
    final = airflow.wait_for_run(DAG_ID, again["dag_run_id"])
    states = airflow.task_states(DAG_ID, again["dag_run_id"])
    assert final["state"] == "success", states
    assert states["report"] == "skipped"  # nothing new: no asset event downstream
    assert _manifests(project, RUN_KEY) == [manifest_path]
    assert manifest_path.read_bytes() == published  # not rewritten


def _assert_quality_report_is_reachable(
    airflow: AirflowStandalone, run_id: str, manifest_path: Path
) -> None:
    """The report's URI on the tasks' "Quality report" link (the UI's task page), in both logs
    and in every asset event's extra."""
    links = {t: airflow.extra_links(DAG_ID, run_id, t) for t in ("publish", "report")}
    uri = links["publish"]["Quality report"]
    assert links["report"] == {"Quality report": uri}, links
    assert uri.startswith(f"file://{manifest_path.parent}/") and uri.endswith("/quality.html")
    assert Path(uri.removeprefix("file://")).read_bytes().startswith(b"<!")  # the HTML page
    for task_id in ("publish", "report"):
        assert f"quality report: {uri}" in airflow.task_log(DAG_ID, run_id, task_id), task_id
    events = airflow.api("GET", "assets/events", source_run_id=run_id)["asset_events"]
    assert {e["name"] for e in events} == {
        "batchscore_scores", "batchscore_quarantine", "batchscore_reports"
    }  # fmt: skip
    assert all(e["extra"]["report_uri"] == uri for e in events), events


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
    assert _manifests(project, "wrong-pin") == []
    # The failure callback's one-line summary is the log's last line as the UI shows it: below
    # the traceback, not folded into the "Post Execute" group Airflow runs the callbacks in.
    shown = visible_lines(airflow.task_log_events(DAG_ID, run["dag_run_id"], "plan"))
    assert shown[-3:-1] == ["Task failed with exception", "[+] Post Execute"], shown[-5:]
    assert shown[-1].startswith(
        f"batchscore FAILED run_id={run['dag_run_id']} run_key=wrong-pin task=plan try=1: "
        "ModelIntegrityError: model file "
    ), shown[-1]
    assert wrong_pin in shown[-1] and "\n" not in shown[-1]


def test_unknown_conf_key_fails_resolve_at_once_naming_the_known_ones(
    airflow: AirflowStandalone, project: Path
) -> None:
    run = airflow.trigger(DAG_ID, conf={"run_kye": "typo", "dry_run": True})  # Airflow accepts it
    final = airflow.wait_for_run(DAG_ID, run["dag_run_id"], timeout=120)
    states = airflow.task_states(DAG_ID, run["dag_run_id"])
    assert final["state"] == "failed" and states["resolve"] == "failed", states
    assert states["pull"] == "upstream_failed", states  # nothing ran with the typo ignored
    (ti,) = [
        t for t in airflow.task_instances(DAG_ID, run["dag_run_id"]) if t["task_id"] == "resolve"
    ]
    assert ti["try_number"] == 1  # AirflowFailException: not retried
    shown = visible_lines(airflow.task_log_events(DAG_ID, run["dag_run_id"], "resolve"))
    assert shown[-1] == (
        f"batchscore FAILED run_id={run['dag_run_id']} run_key=<from date> task=resolve try=1: "
        "ConfigError: unknown conf key 'run_kye'; did you mean 'run_key'? Known: run_key, "
        "data_rev, model_path, model_sha256, chunk_size, shard_rows, max_quarantine_fraction, "
        "overwrite, dry_run"
    ), shown[-5:]
    assert _manifests(project, "typo") == []


def _screenshot_script() -> ModuleType:
    path = ROOT / "scripts" / "screenshot_trigger_form.py"
    spec = importlib.util.spec_from_file_location("screenshot_trigger_form", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not shutil.which("chromium"), reason="needs chromium (./run-tests installs it)")
def test_trigger_form_in_the_ui_has_sections_and_no_required_marks(
    airflow: AirflowStandalone,
) -> None:
    """The form as Airflow's UI renders it, in headless Chromium: each section opened by a click."""
    facts = _screenshot_script().form_facts(airflow.base_url, airflow.token())
    assert facts["items"] == ["What to score", "How", "Publishing", "Advanced Options"]
    assert facts["sections"] == {
        "What to score": ["Run key", "Data revision", "Model artifact", "Model sha256"],
        "How": ["Chunk size (rows)", "Rows per shard", "Quarantine threshold"],
        "Publishing": ["Overwrite", "Dry run"],
    }
    assert facts["switches"] == ["Overwrite", "Dry run"]
    assert facts["required"] == []  # no red asterisk: every field may stay as it is


def _processes_with(env_entry: str) -> list[int]:
    """Pids of live processes whose environment holds `env_entry` (e.g. AIRFLOW_HOME=...)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and env_entry.encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_airflow_local_is_quiet_prints_a_working_login_and_ctrl_c_stops_it_all(
    tmp_path: Path, project: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    from tests.airflow_harness import free_port

    home, port = tmp_path / "airflow-local", free_port()
    env = {
        **os.environ,
        "AIRFLOW_LOCAL_HOME": str(home),
        "AIRFLOW_LOCAL_PORT": str(port),
        "BATCHSCORE_VENV": str(Path(sys.executable).parent.parent),  # no bootstrap
        "BATCHSCORE_PARAMS": str(project),
    }
    out = tmp_path / "terminal.txt"
    with out.open("w") as terminal:
        proc = subprocess.Popen(
            [str(ROOT / "scripts" / "airflow-local")],
            env=env,
            stdout=terminal,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, like a terminal's foreground job
        )
    try:
        deadline = time.monotonic() + 240
        while "Ctrl-C stops everything" not in out.read_text():
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(1)
        lines = out.read_text().splitlines()
        assert len(lines) == 5 and all(line.startswith("airflow-local: ") for line in lines), lines
        assert f"Airflow is up: http://127.0.0.1:{port}" in lines[2]
        login = lines[3].split("login: user ")[1]
        user, password = login.split(" (kept in ")[0].split(", password ")
        stored = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
        assert stored == {user: password} and user == "admin"
        login_request = urllib.request.Request(
            f"http://127.0.0.1:{port}/auth/token",
            data=json.dumps({"username": user, "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(login_request, timeout=30) as answer:  # the UI's login
            assert json.load(answer)["access_token"]
        assert "Starting" not in out.read_text()  # airflow standalone's own output: in its log
        assert (home / "standalone.log").stat().st_size > 10_000
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        rc = proc.wait(timeout=90)
    assert rc == 130, out.read_text()
    assert out.read_text().splitlines()[-1] == "airflow-local: stopping Airflow"
    assert _processes_with(f"AIRFLOW_HOME={home}\0") == []  # the whole Airflow is gone
