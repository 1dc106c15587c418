"""Backfills on the real Airflow: `airflow backfill create` (the CLI, as an operator types it)
against `airflow standalone`, one run per date, keyed by its logical date.

- three dates publish three runs, each under the run key of its date;
- the same backfill again with `--reprocess-behavior completed` (every date rerun) changes
  nothing: each rerun plans, finds its run key published with the same fingerprint, and the
  manifests stay byte for byte (`none`, the default, would create no run at all);
- a run of a backfilled date's key with a param that changes the output fails with "already
  published from other inputs" and leaves the published manifest as it was.

Tiny input, one shard, so each run takes seconds. The metadata DB is PostgreSQL (see `postgres`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_harness import AirflowStandalone, build_project
from tests.celery_cluster import (
    PostgresServer,
    metadata_db_env,
    missing_packages_reason,
    reachable_tempdir,
)
from tests.paths import DAGS

pytestmark = [pytest.mark.airflow_e2e, pytest.mark.timeout(600)]

DAG_ID = "batchscore"
DATES = ["2026-03-01", "2026-03-02", "2026-03-03"]
# The DAG runs at 02:00 UTC: a window to the end of the last day holds that day's run.
FIRST, LAST = DATES[0], DATES[-1]
PRELOAD = (
    "airflow,pipelines.run.pipeline,pipelines.quality.gate,pipelines.quality.verdict,"
    "skops.io,great_expectations"
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_project(tmp_path_factory.mktemp("backfill-project"), rows=2_000, shard_rows=5_000)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """The metadata DB: PostgreSQL, as in production (docker-compose.yml).

    On SQLite the backfill CLI and the scheduler are two processes writing one file: the CLI's
    insert of the runs failed "database is locked" five times in a row under load, and a CI run
    left a backfill's runs queued for four minutes. PostgreSQL has row locks and waits.
    """
    reason = missing_packages_reason(["postgresql"])
    if reason:
        pytest.skip(reason)
    root = reachable_tempdir("batchscore-backfill-pg-")
    server = PostgresServer(root / "postgres").start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def airflow(
    project: Path, postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowStandalone]:
    af = AirflowStandalone(
        DAGS,
        tmp_path_factory.mktemp("airflow-home"),
        env={
            "BATCHSCORE_PARAMS": str(project),
            **metadata_db_env(postgres.url()),
            "AIRFLOW__CORE__MP_START_METHOD": "forkserver",
            "AIRFLOW__CORE__MP_FORKSERVER_PRELOAD": PRELOAD,
        },
    )
    try:
        af.start()
        af.wait_for_dag(DAG_ID)
        af.unpause(DAG_ID)  # backfill runs start only on an unpaused DAG
        # Unpausing also starts the latest scheduled run (catchup=False): let it finish first,
        # so the backfills meet an idle scheduler.
        deadline = time.monotonic() + 60
        path = f"dags/{DAG_ID}/dagRuns"
        while not (runs := af.api("GET", path, run_type="scheduled")["dag_runs"]):
            assert time.monotonic() < deadline, "no scheduled run 60 s after unpausing"
            time.sleep(1)
        af.wait_for_run(DAG_ID, runs[0]["dag_run_id"])
        yield af
    finally:
        af.stop()


def backfill(
    af: AirflowStandalone, first: str, last: str, *args: str, timeout: float = 240
) -> list[dict[str, Any]]:
    """`airflow backfill create --dag-id batchscore` for the dates `first`..`last` (and ARGS);
    return the DAG's backfill runs of those dates once all are finished (a rerun of a date
    reuses its run: clearing it sets it queued before the command returns)."""
    # One active backfill per DAG: the scheduler marks one complete in its 30 s housekeeping.
    _wait_completed(af, {b["id"] for b in _backfills(af) if not b["completed_at"]}, timeout)
    window = ["--from-date", f"{first}T00:00:00+00:00", "--to-date", f"{last}T23:59:59+00:00"]
    cmd = [str(Path(sys.executable).with_name("airflow")), "backfill", "create", "--dag-id", DAG_ID]
    done = subprocess.run(
        [*cmd, *window, *args],
        env=af.env,
        cwd=af.home,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    deadline = time.monotonic() + timeout
    while True:
        runs = af.api("GET", f"dags/{DAG_ID}/dagRuns", run_type="backfill", limit=100)["dag_runs"]
        runs = sorted(
            (r for r in runs if first <= r["logical_date"][:10] <= last),
            key=lambda r: r["logical_date"],
        )
        if runs and all(r["state"] in ("success", "failed") for r in runs):
            return runs
        assert time.monotonic() < deadline, (
            f"backfill runs not finished: {[(r['dag_run_id'], r['state']) for r in runs]}\n"
            f"--- {af.log_path} (tail) ---\n{af.log_tail()}"
        )
        time.sleep(1)


def _backfills(af: AirflowStandalone) -> list[dict[str, Any]]:
    return af.api("GET", "backfills", dag_id=DAG_ID)["backfills"]


def _wait_completed(af: AirflowStandalone, ids: set[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for backfill_id in ids:
        while not af.api("GET", f"backfills/{backfill_id}")["completed_at"]:
            assert time.monotonic() < deadline, f"backfill {backfill_id} not completed"
            time.sleep(1)


def manifests(project: Path) -> dict[str, bytes]:
    """Run key -> published manifest bytes, for the backfilled dates."""
    found = {}
    for date in DATES:
        paths = list((project.parent / "out").glob(f"*/{date}/manifest.json"))
        if paths:
            (path,) = paths
            found[date] = path.read_bytes()
    return found


def test_backfill_publishes_one_run_per_date_keyed_by_its_logical_date(
    airflow: AirflowStandalone, project: Path
) -> None:
    runs = backfill(airflow, FIRST, LAST)
    assert sorted(r["logical_date"][:10] for r in runs) == DATES, runs
    for run in runs:
        states = airflow.task_states(DAG_ID, run["dag_run_id"])
        assert run["state"] == "success", states
        assert states["report"] == "success", states  # newly published
    published = manifests(project)
    assert sorted(published) == DATES
    for date, body in published.items():
        assert json.loads(body)["run_key"] == date


def test_the_same_backfill_again_is_a_noop(airflow: AirflowStandalone, project: Path) -> None:
    before = manifests(project)
    assert sorted(before) == DATES  # the previous test published them

    runs = backfill(airflow, FIRST, LAST, "--reprocess-behavior", "completed")  # reruns every date
    assert sorted(r["logical_date"][:10] for r in runs) == DATES
    for run in runs:
        states = airflow.task_states(DAG_ID, run["dag_run_id"])
        assert run["state"] == "success", states
        assert states["report"] == "skipped", states  # nothing new published
        assert "score" not in states or states["score"] in (None, "skipped"), states
    assert manifests(project) == before  # not rewritten


def test_a_date_rerun_with_other_output_fails_clearly_and_overwrites_nothing(
    airflow: AirflowStandalone, project: Path
) -> None:
    """A run of a backfilled date's key whose output would differ: triggered by hand (conf
    run_key = the date) rather than by a third backfill, which Airflow admits only after its
    housekeeping marks the last one complete (about two minutes here); the plan is the same."""
    date = DATES[1]
    before = manifests(project)[date]
    run = airflow.trigger(DAG_ID, conf={"run_key": date, "shard_rows": 500})  # other shards
    run = airflow.wait_for_run(DAG_ID, run["dag_run_id"])
    states = airflow.task_states(DAG_ID, run["dag_run_id"])
    assert run["state"] == "failed" and states["plan"] == "failed", states
    (plan,) = [
        t for t in airflow.task_instances(DAG_ID, run["dag_run_id"]) if t["task_id"] == "plan"
    ]
    log = airflow.task_log(DAG_ID, run["dag_run_id"], "plan", plan["try_number"])
    assert "PublishConflictError" in log and "already published from other inputs" in log, log
    assert manifests(project)[date] == before
