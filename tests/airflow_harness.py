"""A real `airflow standalone` for end-to-end tests, driven over its REST API.

`AirflowStandalone` starts Airflow 3 (scheduler, dag-processor, triggerer, api-server,
LocalExecutor, SQLite) in its own process group under a throwaway AIRFLOW_HOME, on free loopback
ports, and always kills the whole group on `stop()`, so a failing test leaves no process behind.
Authentication is the simple auth manager's real `/auth/token` login, with a password the harness
writes beforehand.

    with AirflowStandalone(dags_folder=..., home=tmp_path) as af:
        af.wait_for_dag("my_dag")
        af.unpause("my_dag")
        run = af.trigger("my_dag", conf={...})
        final = af.wait_for_run("my_dag", run["dag_run_id"])

Nothing here knows about batchscore: it is also what `scripts/airflow-local` users get, minus the
tests.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tests.paths import ROOT

ADMIN_USER = "admin"
ADMIN_PASSWORD = "e2e-admin-password"
TERMINAL_RUN_STATES = {"success", "failed"}


class AirflowHarnessError(RuntimeError):
    """Airflow did not start, answer or finish as expected; the message carries the log tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def airflow_env(
    home: Path,
    dags_folder: Path,
    api_port: int,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for a self-contained Airflow under `home` serving `dags_folder`.

    Every port Airflow opens is chosen here so two instances (or another engineer's) never clash.
    Intervals are shortened so a test sees a new DAG and a finished run within seconds.
    """
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "PATH": f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW_CONFIG": str(home / "airflow.cfg"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "NO_COLOR": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


class AirflowStandalone:
    """One `airflow standalone` process group and a small REST client for it."""

    def __init__(
        self,
        dags_folder: Path,
        home: Path,
        *,
        env: Mapping[str, str] | None = None,
        api_port: int | None = None,
        startup_timeout: float = 180.0,
    ) -> None:
        self.dags_folder = Path(dags_folder).resolve()
        self.home = Path(home).resolve()
        self.api_port = api_port or free_port()
        self.base_url = f"http://127.0.0.1:{self.api_port}"
        self.startup_timeout = startup_timeout
        self.log_path = self.home / "standalone.log"
        self.env = airflow_env(self.home, self.dags_folder, self.api_port, env)
        self.proc: subprocess.Popen[bytes] | None = None
        self._token: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> AirflowStandalone:
        """Start Airflow and return once the API answers and every component heartbeats."""
        self.home.mkdir(parents=True, exist_ok=True)
        # A known password for the simple auth manager: it keeps existing entries as they are.
        (self.home / "passwords.json").write_text(json.dumps({ADMIN_USER: ADMIN_PASSWORD}))
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "airflow"), "standalone"],
            cwd=self.home,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() kills every child with it
        )
        log.close()
        atexit.register(self.stop)  # even if the caller forgets, or pytest-timeout interrupts
        _exit_on_sigterm()  # a plain SIGTERM would skip atexit and every `finally`
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, grace: float = 20.0) -> None:
        """Terminate the whole process group; SIGKILL whatever is left after `grace` seconds."""
        if self.proc is None:
            return
        atexit.unregister(self.stop)
        pgid = self.proc.pid  # == the group id, thanks to start_new_session
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> AirflowStandalone:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def _fail(self, message: str) -> AirflowHarnessError:
        return AirflowHarnessError(f"{message}\n--- {self.log_path} (tail) ---\n{self.log_tail()}")

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise self._fail(f"airflow standalone exited with code {self.proc.returncode}")
            try:
                health = self._request("GET", "/api/v2/monitor/health", auth=False)
                last = health
                components = ("metadatabase", "scheduler", "dag_processor", "triggerer")
                if all((health.get(c) or {}).get("status") == "healthy" for c in components):
                    self.token()
                    return
            except (OSError, AirflowHarnessError) as exc:
                last = exc
            time.sleep(1)
        raise self._fail(
            f"Airflow not healthy after {self.startup_timeout:.0f}s (last answer: {last})"
        )

    # -- REST --------------------------------------------------------------------------------------

    def token(self) -> str:
        """A JWT from the simple auth manager's login endpoint (cached)."""
        if self._token is None:
            answer = self._request(
                "POST",
                "/auth/token",
                body={"username": ADMIN_USER, "password": ADMIN_PASSWORD},
                auth=False,
            )
            self._token = answer["access_token"]
        return self._token

    def api(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        """Call `/api/v2/<path>` as the admin user; raise AirflowHarnessError on HTTP errors."""
        return self._request(method, f"/api/v2/{path.lstrip('/')}", body=body, query=query)

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        auth: bool = True,
        timeout: float = 30.0,
    ) -> Any:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise HTTPStatusError(exc.code, f"{method} {path} -> {exc.code}: {detail}") from None
        if not raw:
            return None
        ctype = resp.headers.get("Content-Type", "")
        return json.loads(raw) if "json" in ctype else raw.decode(errors="replace")

    # -- DAGs and runs -----------------------------------------------------------------------------

    def import_errors(self) -> list[dict[str, Any]]:
        return self.api("GET", "importErrors")["import_errors"]

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the dag-processor has serialized `dag_id`; fail early on an import error."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                dag = self.api("GET", f"dags/{dag_id}")
                self.api("GET", f"dags/{dag_id}/details")
                return dag
            except HTTPStatusError as exc:
                if exc.status != 404:
                    raise
            errors = self.import_errors()
            if errors:
                raise self._fail(f"import errors while waiting for {dag_id}: {errors}")
            time.sleep(1)
        raise self._fail(f"DAG {dag_id} not parsed after {timeout:.0f}s")

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"dags/{dag_id}", {"is_paused": False}, update_mask="is_paused")

    def trigger(
        self,
        dag_id: str,
        conf: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        logical_date: str | None = None,
    ) -> dict[str, Any]:
        """Trigger a manual run (no logical date unless given); returns the created DagRun."""
        body: dict[str, Any] = {"logical_date": logical_date, "conf": dict(conf or {})}
        if run_id:
            body["dag_run_id"] = run_id
        return self.api("POST", f"dags/{dag_id}/dagRuns", body)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180.0) -> dict[str, Any]:
        """Poll a run until it succeeds or fails; return its final DagRun."""
        deadline = time.monotonic() + timeout
        run: dict[str, Any] = {}
        while time.monotonic() < deadline:
            run = self.api("GET", f"dags/{dag_id}/dagRuns/{_quote(run_id)}")
            if run["state"] in TERMINAL_RUN_STATES:
                took = time.monotonic() - (deadline - timeout)
                print(f"\n{dag_id} {run_id}: {run['state']} (waited {took:.0f}s)")
                print(self.timeline(dag_id, run_id))
                return run
            time.sleep(1)
        states = self.task_states(dag_id, run_id)
        raise self._fail(
            f"run {run_id} still {run.get('state')} after {timeout:.0f}s; tasks: {states}"
        )

    def timeline(self, dag_id: str, run_id: str) -> str:
        """One line per task instance: state and duration, for a test's output."""
        lines = []
        for ti in sorted(self.task_instances(dag_id, run_id), key=lambda t: t["start_date"] or ""):
            index = ti.get("map_index", -1)
            name = ti["task_id"] if index < 0 else f"{ti['task_id']}[{index}]"
            took = f"{ti['duration']:.1f}s" if ti.get("duration") is not None else "-"
            lines.append(f"  {name:<18} {ti['state'] or '-':<16} {took}")
        return "\n".join(lines)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"dags/{dag_id}/dagRuns/{_quote(run_id)}/taskInstances"
        return self.api("GET", path, limit=1000)["task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        states = {}
        for ti in self.task_instances(dag_id, run_id):
            index = ti.get("map_index", -1)
            states[ti["task_id"] if index < 0 else f"{ti['task_id']}[{index}]"] = ti["state"]
        return states

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> str:
        """The task's log as text (all structured log lines' events joined)."""
        events = self.task_log_events(dag_id, run_id, task_id, try_number, map_index)
        return "\n".join(str(e.get("event", "")) for e in events)

    def task_log_events(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> list[dict[str, Any]]:
        """The task's log as the UI gets it: one dict per line (`event`, `level`, `logger` ...)."""
        path = f"dags/{dag_id}/dagRuns/{_quote(run_id)}/taskInstances/{task_id}/logs/{try_number}"
        answer = self.api("GET", path, map_index=map_index, full_content="true")
        content = answer.get("content", answer) if isinstance(answer, dict) else answer
        if not isinstance(content, list):
            content = str(content).splitlines()
        return [item if isinstance(item, dict) else {"event": str(item)} for item in content]

    def extra_links(
        self, dag_id: str, run_id: str, task_id: str, map_index: int = -1
    ) -> dict[str, str | None]:
        """The task instance's extra links (name -> URL), as the UI's task page shows them."""
        path = f"dags/{dag_id}/dagRuns/{_quote(run_id)}/taskInstances/{task_id}/links"
        answer = self.api("GET", path, map_index=map_index)
        return answer.get("extra_links", answer)


def visible_lines(events: list[dict[str, Any]]) -> list[str]:
    """A task log's lines as the UI's log view shows them at first: `::group::` markers become
    folded headers (the lines inside stay hidden until clicked), `::endgroup::` closes the
    innermost one (an extra one closes nothing)."""
    shown, depth = [], 0
    for event in (str(e.get("event", "")) for e in events):
        if "::group::" in event:
            if depth == 0:
                shown.append(f"[+] {event.split('::group::', 1)[1]}")
            depth += 1
        elif "::endgroup::" in event:
            depth = max(depth - 1, 0)
        elif depth == 0:
            shown.append(event)
    return shown


class HTTPStatusError(AirflowHarnessError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _quote(run_id: str) -> str:
    return urllib.parse.quote(run_id, safe="")


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit (if nobody handles it yet) so cleanup code runs."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:

        def _raise(signum: int, frame: object) -> None:
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, _raise)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg(0) also succeeds for zombies we have not reaped; reap ours and look again.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(-pgid, os.WNOHANG)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def running_airflow(dags_folder: Path, home: Path, **kwargs: Any) -> Iterator[AirflowStandalone]:
    """Context manager form for fixtures: `with running_airflow(...) as af: yield af`."""
    af = AirflowStandalone(dags_folder, home, **kwargs)
    try:
        yield af.start()
    finally:
        af.stop()


# -- a tiny project for DAG tests ------------------------------------------------------------------


def build_project(
    root: Path,
    *,
    rows: int = 5_000,
    shard_rows: int = 2_000,
    output_uri: str | None = None,
    s3_endpoint: str | None = None,
    validation: bool = True,
) -> Path:
    """A self-contained params.yaml with tiny seeded data and a freshly trained model.

    Returns the params file; point `BATCHSCORE_PARAMS` at it. Row groups of 1,000 rows and
    `shard_rows` rows per shard give the DAG several shards to fan out over.
    """
    import yaml

    from pipelines.config import load_config
    from pipelines.data.demo import write_dataset
    from pipelines.model.train import train_model

    root.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["generate"].update(
        train_rows=2_000,
        score_rows=rows,
        row_group_rows=1_000,
        train_path=str(root / "data" / "train.parquet"),
        score_path=str(root / "data" / "score.parquet"),
    )
    params["train"].update(model="logreg", max_iter=50)
    params["data"].update(path=str(root / "data" / "score.parquet"), rev=None, md5=None)
    params["model"].update(path=str(root / "models" / "model.skops"), sha256=None, card=None)
    params["score"].update(chunk_size=500, workers=1, shard_rows=shard_rows, progress="off")
    params["validation"]["enabled"] = validation
    for suite in ("input_suite", "output_suite"):  # null: the built-in suite
        if params["validation"].get(suite):
            params["validation"][suite] = str(ROOT / params["validation"][suite])
    params["output"]["uri"] = output_uri or f"file://{root / 'out'}"
    params["s3"]["endpoint_url"] = s3_endpoint
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))

    cfg = load_config(path, env={})
    write_dataset(cfg.generate.train_path, 2_000, seed=1, row_group_rows=1_000)
    write_dataset(cfg.data.path, rows, seed=2, row_group_rows=1_000, with_label=False)
    train_model(cfg)
    return path
