"""A real Airflow Celery cluster on one machine, for end-to-end tests: PostgreSQL, Redis, Airflow.

`CeleryCluster` starts, on free loopback ports in a throwaway folder, each in its own process group:

- PostgreSQL (Debian's `postgresql`): a fresh cluster made by `initdb`, run by `pg_ctl`, as an
  unprivileged user when the tests run as root (PostgreSQL refuses root); the metadata DB and the
  Celery result backend;
- `redis-server` (Debian's), no persistence: the Celery broker;
- Airflow with `CeleryExecutor`: `airflow db migrate`, then the api-server, scheduler and
  dag-processor as separate processes and N `airflow celery worker` processes, each with its own
  Celery hostname and task-instance hostname (`w1`, `w2` ...), as separate machines would have.

PostgreSQL and Redis start in parallel; the Airflow processes all start at once after the
migration. `stop()` (also run at exit and on SIGTERM) ends every process group it started, then any
process left whose environment carries this cluster's AIRFLOW_HOME (task processes a worker forked).

    with CeleryCluster(DAGS, tmp, env={...}) as cluster:
        af = cluster.airflow          # the REST client of tests/airflow_harness.py
        af.wait_for_dag("batchscore")

`missing_packages_reason()` installs the Debian packages when they are missing (as `./run-tests`
does for Chromium: only as root with apt-get) and says why the cluster cannot run otherwise.
`PostgresServer` alone is the metadata DB of other Airflow tests (`missing_packages_reason(
["postgresql"])` first).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.airflow_harness import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    AirflowHarnessError,
    AirflowStandalone,
    _exit_on_sigterm,
    _group_alive,
    free_port,
)

DEBIAN_PACKAGES = {"postgresql": "pg_ctl", "redis-server": "redis-server"}
PG_USER = "postgres"  # the cluster's superuser (trust auth on loopback only)
PG_DB = "airflow"
UNPRIVILEGED = "nobody"  # who runs PostgreSQL when we are root
WORKER_HOST_ENV = "BATCHSCORE_TEST_WORKER_HOSTNAME"
CELERY_EXECUTOR_MODULE = "airflow.providers.celery.executors.celery_executor"
# Celery config merged over Airflow's on the workers: `imports` are imported by each worker before
# it forks its pool, so every task process (forked from the pool) starts with them loaded, as
# LocalExecutor's forkserver preload does.
CELERY_CONFIG_MODULE = "batchscore_test_celery_config"
# Airflow records `hostname_callable()` as a task instance's hostname; the default (the FQDN) is
# the same for every worker on one machine, so each worker names itself from its environment.
HOSTNAME_MODULE = textwrap.dedent(
    f"""
    import os


    def hostname() -> str:
        return os.environ["{WORKER_HOST_ENV}"]
    """
)


class ClusterError(AirflowHarnessError):
    """A part of the cluster did not start or answer; the message says which and its log tail."""


# -- Debian packages ---------------------------------------------------------------------------


def pg_bin_dir() -> Path | None:
    """Where `initdb` and `pg_ctl` are: the newest /usr/lib/postgresql/<ver>/bin, else PATH."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for candidate in reversed(versions):
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found and shutil.which("initdb") else None


def _missing(wanted: Sequence[str]) -> list[str]:
    found = {
        "postgresql": pg_bin_dir() is not None,
        "redis-server": shutil.which("redis-server") is not None,
    }
    return [name for name in wanted if not found[name]]


def missing_packages_reason(wanted: Sequence[str] = tuple(DEBIAN_PACKAGES)) -> str | None:
    """None when the Debian packages `wanted` are here (installing them first if we can), else
    why not.

    Installs like `./run-tests` installs Chromium: apt-get, only as root, only what is missing.
    """
    missing = _missing(wanted)
    if not missing:
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return (
            f"needs Debian's {' and '.join(missing)} (not installed, and not root with apt-get "
            f"to install them): apt-get install {' '.join(missing)}"
        )
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "text": True}
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    update = subprocess.run(["apt-get", "update", "-qq"], env=env, **quiet)
    # Two test workers may install at once: the second waits for dpkg's lock instead of failing.
    lock_wait = ["-o", "DPkg::Lock::Timeout=300"]
    install = subprocess.run(
        ["apt-get", *lock_wait, "install", "-y", "-qq", *missing], env=env, **quiet
    )
    still = _missing(wanted)
    if still:
        return (
            f"could not install {' and '.join(still)} with apt-get "
            f"(update: {update.returncode}, install: {install.returncode}): "
            f"{(install.stderr or update.stderr).strip()[-300:]}"
        )
    return None


# -- process groups ----------------------------------------------------------------------------


def _spawn(
    cmd: Sequence[str], log: Path, env: Mapping[str, str], cwd: Path, **kwargs: Any
) -> subprocess.Popen[bytes]:
    """Start `cmd` in its own process group, output appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **kwargs,
        )


def stop_group(pgid: int, grace: float = 15.0) -> None:
    """SIGTERM the process group `pgid`, SIGKILL whatever is left after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _group_alive(pgid):
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def processes_with(env_entry: str) -> list[int]:
    """Pids of live processes whose environment holds `env_entry` (e.g. AIRFLOW_HOME=...)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and env_entry.encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return [pid for pid in found if pid != os.getpid()]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


def _wait(what: str, check: Any, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except ClusterError:  # a process died: waiting longer cannot help
            raise
        except Exception as exc:  # not up yet: connection refused, bad answer
            last = exc
        time.sleep(0.3)
    raise ClusterError(
        f"{what} not ready after {timeout:.0f}s ({last})\n--- {log} ---\n{_tail(log)}"
    )


# -- PostgreSQL --------------------------------------------------------------------------------


def reachable_tempdir(prefix: str) -> Path:
    """A new temp folder PostgreSQL's unprivileged user can enter (pytest's temp tree is 0700)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    return root


def metadata_db_env(db_url: str) -> dict[str, str]:
    """The Airflow settings that make the PostgreSQL at `db_url` its metadata DB."""
    return {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        # Airflow derives an asyncpg URL from a PostgreSQL one; asyncpg is not in the lock.
        # Empty: no async engine (only multi-team and the run "wait" stream use one).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": "",
    }


class PostgresServer:
    """A throwaway PostgreSQL cluster in `base`, on a free loopback port, trust auth, no fsync."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "data"
        self.log = base / "postgres.log"
        self.port = free_port()
        self.bin = pg_bin_dir()
        # PostgreSQL refuses to run as root: then it runs as an unprivileged user.
        self.user = UNPRIVILEGED if os.geteuid() == 0 else None
        self.pgid: int | None = None

    def url(self, scheme: str = "postgresql+psycopg2") -> str:
        return f"{scheme}://{PG_USER}@127.0.0.1:{self.port}/{PG_DB}"

    def _run(self, *cmd: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        assert self.bin is not None
        as_user = {"user": self.user, "group": pwd.getpwnam(self.user).pw_gid} if self.user else {}
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8", "HOME": str(self.base)}
        result = subprocess.run(
            [str(self.bin / cmd[0]), *cmd[1:]],
            cwd=self.base,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            **as_user,
        )
        if result.returncode != 0:
            raise ClusterError(
                f"{cmd[0]} failed ({result.returncode}): {result.stdout}\n{result.stderr}\n"
                f"--- {self.log} ---\n{_tail(self.log)}"
            )
        return result

    def start(self) -> PostgresServer:
        if self.bin is None:
            raise ClusterError("PostgreSQL's initdb/pg_ctl not found (apt-get install postgresql)")
        self.base.mkdir(parents=True, exist_ok=True)
        if self.user:
            os.chown(self.base, pwd.getpwnam(self.user).pw_uid, pwd.getpwnam(self.user).pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", PG_USER, "--auth=trust", "-E", "UTF8")
        atexit.register(self.stop)
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        # pg_ctl starts the postmaster in its own session: its pid is the group of every backend.
        self.pgid = int((self.data / "postmaster.pid").read_text().split()[0])
        self._create_database()
        return self

    def _create_database(self) -> None:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=PG_USER, dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {PG_DB}")
        finally:
            conn.close()

    def stop(self) -> None:
        atexit.unregister(self.stop)
        if self.pgid is not None:
            with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
                self._run(
                    "pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=30
                )
            stop_group(self.pgid, grace=5)
            self.pgid = None


# -- Redis -------------------------------------------------------------------------------------


class RedisServer:
    """`redis-server` on a free loopback port with no persistence: a broker for one test run."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.log = base / "redis.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.base.mkdir(parents=True, exist_ok=True)
        cmd = [shutil.which("redis-server") or "redis-server", "--port", str(self.port)]
        cmd += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.base)]
        self.proc = _spawn(cmd, self.log, {"PATH": os.environ.get("PATH", "")}, self.base)
        atexit.register(self.stop)
        _wait("redis-server", self._pong, 30, self.log)
        return self

    def _pong(self) -> bool:
        import redis

        if self.proc is not None and self.proc.poll() is not None:
            raise ClusterError(f"redis-server exited ({self.proc.returncode}):\n{_tail(self.log)}")
        return bool(redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2).ping())

    def stop(self) -> None:
        atexit.unregister(self.stop)
        if self.proc is not None:
            stop_group(self.proc.pid, grace=5)
            self.proc.wait(timeout=10)
            self.proc = None


# -- Airflow on Celery -------------------------------------------------------------------------


class CeleryAirflow(AirflowStandalone):
    """Airflow's components as separate processes with `CeleryExecutor`, and its REST client.

    The REST client (login, trigger, runs, task instances, logs) is `AirflowStandalone`'s; only
    start-up and shutdown differ: one process group per component instead of `standalone`.
    """

    def __init__(
        self,
        dags_folder: Path,
        home: Path,
        *,
        db_url: str,
        broker_url: str,
        result_backend: str,
        workers: Sequence[str] = ("w1", "w2"),
        concurrency: int = 1,
        preload: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 240.0,
    ) -> None:
        cluster_env = {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            **metadata_db_env(db_url),
            "AIRFLOW__CELERY__BROKER_URL": broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": result_backend,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(concurrency),
            # every component must sign and check the same tokens (standalone shares one process)
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "TMPDIR": str(Path(home).resolve() / "tmp"),  # DVC checkouts, parts: inside the home
        }
        super().__init__(
            dags_folder,
            home,
            env={**cluster_env, **(env or {})},
            startup_timeout=startup_timeout,
        )
        self.workers = list(workers)
        self.concurrency = concurrency
        self.preload = list(preload)
        self.groups: dict[str, subprocess.Popen[bytes]] = {}
        self.startup_seconds: dict[str, float] = {}

    def _airflow(self) -> str:
        return str(Path(sys.executable).parent / "airflow")

    def _component_log(self, name: str) -> Path:
        return self.home / f"{name}.log"

    def start(self) -> CeleryAirflow:
        """Migrate the DB, start every component at once; return when all are up."""
        started = time.monotonic()
        (self.home / "tmp").mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({ADMIN_USER: ADMIN_PASSWORD}))
        hosts = self.home / "worker-hostname"
        hosts.mkdir(exist_ok=True)
        (hosts / "batchscore_test_hostname.py").write_text(HOSTNAME_MODULE)
        config = (
            "from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG\n"
            f"CELERY_CONFIG = {{**DEFAULT_CELERY_CONFIG, 'imports': {self.preload!r}}}\n"
        )
        (hosts / f"{CELERY_CONFIG_MODULE}.py").write_text(config)
        atexit.register(self.stop)
        _exit_on_sigterm()
        try:
            # The executor's import, checked while the DB migrates: a broken Celery/provider pair
            # would otherwise show as a scheduler that exits at start.
            probe = subprocess.Popen(
                [sys.executable, "-c", f"import {CELERY_EXECUTOR_MODULE}"],
                cwd=self.home,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            migrate = subprocess.run(
                [self._airflow(), "db", "migrate"],
                cwd=self.home,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if migrate.returncode != 0:
                raise ClusterError(
                    f"airflow db migrate failed:\n{migrate.stdout[-3000:]}\n"
                    f"{migrate.stderr[-3000:]}"
                )
            probe_out = probe.communicate(timeout=120)[0]
            if probe.returncode != 0:
                raise ClusterError(
                    f"the CeleryExecutor does not import ({CELERY_EXECUTOR_MODULE}): "
                    f"{probe_out.strip().splitlines()[-1]}. Lock a celery release that "
                    "apache-airflow-providers-celery works with (see requirements.lock)"
                )
            self.startup_seconds["db migrate"] = round(time.monotonic() - started, 1)
            for component in ("api-server", "scheduler", "dag-processor"):
                self._start(component, [component])
            for name in self.workers:
                self._start_worker(name, hosts)
            self._wait_healthy()
            self._wait_workers()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds["airflow"] = round(time.monotonic() - started, 1)
        return self

    def _start(self, name: str, args: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.groups[name] = _spawn(
            [self._airflow(), *args],
            self._component_log(name),
            {**self.env, **(env or {})},
            self.home,
        )

    def _start_worker(self, name: str, hosts: Path) -> None:
        """One Celery worker as if on its own machine: its own Celery and task-instance hostname."""
        path = os.pathsep.join(p for p in (str(hosts), self.env.get("PYTHONPATH")) if p)
        env = {
            WORKER_HOST_ENV: name,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "batchscore_test_hostname.hostname",
            "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": f"{CELERY_CONFIG_MODULE}.CELERY_CONFIG",
            "PYTHONPATH": path,
        }
        args = ["celery", "worker", "--celery-hostname", f"{name}@batchscore-test"]
        args += ["--concurrency", str(self.concurrency), "--skip-serve-logs"]
        args += ["--without-gossip", "--without-mingle"]
        self._start(f"worker-{name}", args, env)

    def _wait_healthy(self) -> None:
        """The API answers, the scheduler and dag-processor heartbeat (no triggerer here)."""

        def healthy() -> bool:
            self._check_alive()
            health = self._request("GET", "/api/v2/monitor/health", auth=False)
            parts = ("metadatabase", "scheduler", "dag_processor")
            return all((health.get(c) or {}).get("status") == "healthy" for c in parts)

        _wait(
            "Airflow (api-server, scheduler, dag-processor)",
            healthy,
            self.startup_timeout,
            self._component_log("scheduler"),
        )
        self.token()

    def _wait_workers(self) -> None:
        for name in self.workers:
            log = self._component_log(f"worker-{name}")

            def ready(log: Path = log) -> bool:
                self._check_alive()
                return " ready." in log.read_text(errors="replace")

            _wait(f"celery worker {name}", ready, self.startup_timeout, log)

    def _check_alive(self) -> None:
        for name, proc in self.groups.items():
            if proc.poll() is not None:
                log = self._component_log(name)
                raise ClusterError(
                    f"{name} exited ({proc.returncode})\n--- {log} ---\n{_tail(log)}"
                )

    def log_tail(self, lines: int = 60) -> str:
        """The tail of every component's log (what `_fail` shows when a wait times out)."""
        return "\n".join(
            f"--- {name} ---\n{_tail(self._component_log(name), lines // 2)}"
            for name in self.groups
        )

    def stop(self, grace: float = 20.0) -> None:
        """End every component's group, then task processes a worker forked that outlived it."""
        atexit.unregister(self.stop)
        with ThreadPoolExecutor(max(len(self.groups), 1)) as pool:
            list(pool.map(lambda p: stop_group(p.pid, grace), self.groups.values()))
        for proc in self.groups.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self.groups.clear()
        for pid in processes_with(f"AIRFLOW_HOME={self.home}\0"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


# -- the whole cluster -------------------------------------------------------------------------


class CeleryCluster:
    """PostgreSQL + Redis + Airflow on Celery with `workers`, all in a fresh folder under `base`."""

    def __init__(
        self,
        dags_folder: Path,
        base: Path,
        *,
        env: Mapping[str, str] | None = None,
        workers: Sequence[str] = ("w1", "w2"),
        concurrency: int = 1,
        preload: Sequence[str] = (),
    ) -> None:
        self.root = reachable_tempdir("batchscore-celery-")
        self.postgres = PostgresServer(self.root / "postgres")
        self.redis = RedisServer(self.root / "redis")
        self.airflow = CeleryAirflow(
            dags_folder,
            Path(base) / "airflow-home",
            db_url=self.postgres.url(),
            broker_url=self.redis.url,
            result_backend=self.postgres.url("db+postgresql+psycopg2"),
            workers=workers,
            concurrency=concurrency,
            preload=preload,
            env=env,
        )
        self.startup_seconds: dict[str, float] = {}

    def start(self) -> CeleryCluster:
        """PostgreSQL and Redis in parallel, then Airflow; everything is stopped on failure."""
        started = time.monotonic()
        atexit.register(self.stop)
        try:
            with ThreadPoolExecutor(2) as pool:
                services = [pool.submit(s.start) for s in (self.postgres, self.redis)]
                for future in services:
                    future.result()
            self.startup_seconds["postgres+redis"] = round(time.monotonic() - started, 1)
            self.airflow.start()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds.update(self.airflow.startup_seconds)
        self.startup_seconds["total"] = round(time.monotonic() - started, 1)
        return self

    def stop(self) -> None:
        atexit.unregister(self.stop)
        self.airflow.stop()
        self.redis.stop()
        self.postgres.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> CeleryCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
