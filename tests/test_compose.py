"""Static checks of the compose stack and its image (Docker cannot run here).

They pin what would otherwise only break at `docker compose up`: every service is there, images are
pinned, health checks gate start order, the env var names are the ones the code reads, and the
Dockerfile installs from the lock file.
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.paths import ROOT

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
ONE_SHOT = {"airflow-init", "minio-init"}
LONG_RUNNING = set(AIRFLOW_SERVICES) | {"postgres", "redis", "minio", "mlflow"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _default(value: str) -> str:
    """Resolve `${VAR:-default}` to its default, the value `docker compose up` uses with no .env."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def _lock_version(package: str) -> str:
    text = (ROOT / "requirements.lock").read_text()
    match = re.search(rf"^{re.escape(package)}==([^\s;]+)", text, re.MULTILINE)
    assert match, f"{package} is not pinned in requirements.lock"
    return match.group(1)


def test_all_services_present(services: dict) -> None:
    assert set(services) >= LONG_RUNNING | ONE_SHOT
    for name, command in AIRFLOW_SERVICES.items():
        assert services[name]["command"] == command, name


def test_images_pinned_by_tag(services: dict) -> None:
    for name, svc in services.items():
        image = _default(svc["image"])
        repo, _, tag = image.rpartition(":")
        assert repo and tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} must be pinned, not latest"
        assert "/" not in tag, f"{name}: image {image!r} has no tag"


def test_airflow_services_build_the_project_image(services: dict) -> None:
    images = set()
    for name in [*AIRFLOW_SERVICES, "airflow-init"]:
        svc = services[name]
        assert svc["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
        images.add(svc["image"])
    assert len(images) == 1, "all Airflow services must run the same image"


def test_long_running_services_have_health_checks(services: dict) -> None:
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck")
        assert check and check.get("test"), f"{name} has no health check"
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name
        assert {"interval", "timeout", "retries"} <= set(check), name
        assert services[name].get("restart") == "always", name
    for name in ONE_SHOT:
        assert services[name].get("restart") == "no", f"{name} must run once"


def test_start_order_waits_on_health(services: dict) -> None:
    for name in AIRFLOW_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy", name
        assert deps["redis"]["condition"] == "service_healthy", name
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
    worker = services["airflow-worker"]["depends_on"]
    assert worker["minio-init"]["condition"] == "service_completed_successfully"
    assert worker["airflow-apiserver"]["condition"] == "service_healthy"
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert services["airflow-init"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_ports(services: dict) -> None:
    assert "8080:8080" in services["airflow-apiserver"]["ports"]
    assert {"9000:9000", "9001:9001"} <= set(services["minio"]["ports"])
    assert "5000:5000" in services["mlflow"]["ports"]
    exposed = {name for name, svc in services.items() if svc.get("ports")}
    assert exposed == {"airflow-apiserver", "minio", "mlflow"}, "only the UIs/APIs are published"


def test_airflow_env_is_consistent(services: dict) -> None:
    envs = [_env(services[name]) for name in [*AIRFLOW_SERVICES, "airflow-init"]]
    shared = [
        "AIRFLOW_CONFIG",
        "AIRFLOW__CORE__EXECUTOR",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "AIRFLOW__CORE__DAGS_FOLDER",
        "BATCHSCORE_PARAMS",
    ]
    for key in shared:
        values = {env.get(key) for env in envs}
        assert len(values) == 1 and None not in values, f"{key} differs between Airflow services"
    env = envs[0]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert _default(env["AIRFLOW__CELERY__BROKER_URL"]).startswith("redis://redis:6379")
    assert "@postgres:5432/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert (
        env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    )
    # One airflow.cfg on a shared volume carries the generated fernet and JWT keys everywhere.
    assert env["AIRFLOW_CONFIG"].startswith("/opt/airflow/config/")


def test_worker_gets_storage_settings_under_the_names_the_code_reads(services: dict) -> None:
    worker = _env(services["airflow-worker"])
    assert _default(worker["BATCHSCORE__OUTPUT__URI"]) == "s3://batchscore/runs"
    assert worker["BATCHSCORE__S3__ENDPOINT_URL"] == "http://minio:9000"
    minio = _env(services["minio"])
    assert worker["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
    assert worker["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    # Credentials only where tasks run.
    for name in set(AIRFLOW_SERVICES) - {"airflow-worker"}:
        assert "AWS_SECRET_ACCESS_KEY" not in _env(services[name]), name


def test_output_bucket_is_created_at_start(services: dict) -> None:
    init = services["minio-init"]
    bucket = _default(_env(services["airflow-worker"])["BATCHSCORE__OUTPUT__URI"])[5:].split("/")[0]
    assert bucket in _default(_env(init)["MINIO_BUCKETS"]).split()
    mounted = [v.split(":")[0] for v in init["volumes"]]
    for src in mounted:
        assert (ROOT / src).is_file(), f"minio-init mounts missing file {src}"
    script = (ROOT / "docker" / "minio-init.sh").read_text()
    assert "mc mb --ignore-existing" in script


def test_volumes_declared_and_shared(compose: dict, services: dict) -> None:
    named = set(compose["volumes"])
    for name, svc in services.items():
        for spec in svc.get("volumes", []):
            src = spec.split(":")[0]
            if not src.startswith((".", "/")):
                assert src in named, f"{name} uses undeclared volume {src}"
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "minio-data:/data" in services["minio"]["volumes"]
    for name in AIRFLOW_SERVICES:
        mounts = {v.split(":")[1] for v in services[name]["volumes"]}
        assert {"/opt/airflow/config", "/opt/airflow/logs"} <= mounts, name


def test_config_loader_reads_the_compose_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    config = pytest.importorskip("pipelines.config")
    monkeypatch.setenv("BATCHSCORE__OUTPUT__URI", "s3://batchscore/runs")
    monkeypatch.setenv("BATCHSCORE__S3__ENDPOINT_URL", "http://minio:9000")
    cfg = config.load_config()
    assert str(cfg.output.uri).rstrip("/") == "s3://batchscore/runs"
    assert str(cfg.s3.endpoint_url).rstrip("/") == "http://minio:9000"


def test_dockerfile_installs_from_the_lock() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG AIRFLOW_IMAGE=(\S+)", text, re.MULTILINE)
    assert base, "Dockerfile must pin its base image in ARG AIRFLOW_IMAGE"
    image = base.group(1)
    assert image.startswith("apache/airflow:") and "latest" not in image
    assert image.split(":")[1].startswith(_lock_version("apache-airflow") + "-python3.11")
    run_lines = [line for line in text.splitlines() if line.startswith("RUN pip install")]
    assert any("-r requirements.lock" in line for line in run_lines)
    assert any("--no-deps ." in line for line in run_lines)
    lock_index = text.index("-r requirements.lock")
    assert lock_index < text.index("--no-deps ."), "dependencies before the project"
    for copied in ["requirements.lock", "pipelines/", "params.yaml", "validation/", "dags/"]:
        assert f" {copied}" in text, f"Dockerfile does not copy {copied}"


def test_dockerignore_keeps_context_small() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".env"} <= ignored


def test_worker_reads_the_local_input_and_model_read_only(services: dict) -> None:
    mounts = services["airflow-worker"]["volumes"]
    assert "./data:/opt/batchscore/data:ro" in mounts
    assert "./models:/opt/batchscore/models:ro" in mounts


def test_mlflow_registry_on_postgres_with_artifacts_in_minio(services: dict) -> None:
    """The registry runs the lock's mlflow (the project image) on its own PostgreSQL database,
    proxying artifacts to the MinIO bucket minio-init creates; the workers point at it."""
    svc = services["mlflow"]
    env = _env(svc)
    assert svc["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    assert _lock_version("mlflow")  # the image installs the lock, so the server is that mlflow
    backend = _default(env["MLFLOW_BACKEND_STORE_URI"])
    assert backend.startswith("postgresql+psycopg2://")
    assert backend.endswith("@postgres:5432/mlflow")
    script = svc["command"][0]
    assert "CREATE DATABASE mlflow" in script and "exec mlflow server" in script
    for flag in ("--backend-store-uri", "--artifacts-destination", "--allowed-hosts"):
        assert flag in script, flag
    assert "--port 5000" in script and "mlflow:5000" in script
    destination = env["MLFLOW_ARTIFACTS_DESTINATION"]
    bucket = destination.removeprefix("s3://").split("/")[0]
    assert bucket in _default(_env(services["minio-init"])["MINIO_BUCKETS"]).split()
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    minio = _env(services["minio"])
    assert env["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
    assert env["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert svc["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    assert "http://localhost:5000/health" in svc["healthcheck"]["test"]


def test_workers_reach_the_registry_by_the_standard_variable(services: dict) -> None:
    worker = _env(services["airflow-worker"])
    assert worker["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"  # no credentials in it
    assert services["airflow-worker"]["depends_on"]["mlflow"]["condition"] == "service_healthy"
    for name in set(AIRFLOW_SERVICES) - {"airflow-worker"}:
        assert "MLFLOW_TRACKING_URI" not in _env(services[name]), name
