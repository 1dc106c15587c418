"""Reliability matrix rows about the model artifact, DVC and the Airflow connection (25, 27-29).

Everything is real: a skops file whose embedded scikit-learn version is rewritten, a git + DVC repo
whose remote is the moto S3 server, two real `dvc` processes fighting over one workspace, the DAG
file loaded by DagBag, and a moto server that checks credentials. Test names carry the matrix row
(`test_row<N>_...`) so the docs can map rows to tests.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_home import use_throwaway_home  # noqa: E402
from tests.paths import DAGS, ROOT

use_throwaway_home()  # before anything imports Airflow

import pipelines.data.pull  # noqa: E402
from pipelines.config import Settings  # noqa: E402
from pipelines.data.pull import PulledInput, pull_input  # noqa: E402
from pipelines.errors import DataPullError, ModelIntegrityError  # noqa: E402
from tests.auth_moto import AuthMoto, auth_moto  # noqa: E402
from tests.dvc_fixtures import DVC_BUCKET, V1, V2, DvcRepo, isolated_env, md5_of, sh  # noqa: E402

# skops scans every loaded module for ufuncs; with Airflow loaded that trips its deprecation shims.
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning:skops.io._utils")

DVC = str(Path(sys.executable).with_name("dvc"))
OTHER_SKLEARN = "1.0.2"


# -- row 25: scikit-learn version skew ------------------------------------------------------------


def _resave_as_other_sklearn(src: Path, dst: Path, version: str = OTHER_SKLEARN) -> int:
    """Copy the skops file with every estimator's `_sklearn_version` state rewritten.

    That state is what `BaseEstimator.__setstate__` compares with the installed version when
    skops rebuilds the object, i.e. what a file really saved by scikit-learn `version` carries.
    Returns how many estimators were rewritten.
    """
    rewritten = 0

    def walk(node: Any) -> None:
        nonlocal rewritten
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "_sklearn_version" and isinstance(value, dict) and "content" in value:
                    value["content"] = json.dumps(version)
                    rewritten += 1
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "schema.json":
                schema = json.loads(data)
                walk(schema)
                data = json.dumps(schema).encode()
            zout.writestr(info, data)
    return rewritten


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def skewed_model(model_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The session model re-saved under scikit-learn 1.0.2's metadata, and a card that lies.

    The card claims the installed version (so the card check cannot catch it) and pins the new
    file's sha256 (so the integrity check passes): only the artifact's own state tells.
    """
    import sklearn

    model = tmp_path / "model.skops"
    assert _resave_as_other_sklearn(model_dir / "model.skops", model) >= 2  # pipeline + steps
    card = json.loads((model_dir / "model.card.json").read_text())
    card.update(sha256=_sha256(model), sklearn_version=sklearn.__version__)
    (tmp_path / "model.card.json").write_text(json.dumps(card))
    return model, tmp_path / "model.card.json"


def test_row25_artifact_from_another_sklearn_version_is_refused_at_load(
    skewed_model: tuple[Path, Path], model_dir: Path
) -> None:
    import sklearn

    from pipelines.model.artifact import load_model

    model, card = skewed_model
    # The real thing first: the installed scikit-learn does warn about this file, ...
    import skops.io as sio
    from sklearn.exceptions import InconsistentVersionWarning

    with pytest.warns(InconsistentVersionWarning, match=f"from version {OTHER_SKLEARN}"):
        sio.load(model, trusted=sio.get_untrusted_types(file=model))
    # ... and load_model escalates it even where warnings are globally ignored (a worker, -W).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ModelIntegrityError) as info:
            load_model(model, pinned_sha256=_sha256(model), card_path=card)
    message = str(info.value)
    assert "saved with another scikit-learn version" in message
    assert OTHER_SKLEARN in message and sklearn.__version__ in message
    assert f"re-save it with scikit-learn {sklearn.__version__}" in message
    # control: the same bytes before the rewrite load fine, so it is the version that is refused
    original = model_dir / "model.skops"
    loaded = load_model(
        original, pinned_sha256=_sha256(original), card_path=model_dir / "model.card.json"
    )
    assert hasattr(loaded.estimator, "predict_proba")


def test_row25_version_skew_fails_the_run_before_scoring(
    skewed_model: tuple[Path, Path], params_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.cli import main

    model, _card = skewed_model
    code = main(
        ["score", "--params", str(params_file), "--no-validation", "--model", str(model)]
        + ["--model-sha256", _sha256(model)]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "saved with another scikit-learn version" in err and OTHER_SKLEARN in err
    assert "Traceback" not in err
    bucket = params_file.parent / "bucket"
    published = [p for p in bucket.rglob("*") if p.is_file() and "failed" not in p.parts]
    assert published == [], published  # nothing scored, nothing staged or committed


# -- DVC repos ------------------------------------------------------------------------------------


# The DVC repo fixtures are test_datapull's own (imported above), so both files build repos alike.


def _dvc_wrapper(tmp_path: Path, after_pull: str) -> tuple[Path, Path]:
    """A `dvc` that runs the real one and then `after_pull` (shell), and always exits 0.

    It is what a `dvc pull` that "succeeded" but left the workspace wrong looks like to the
    caller; the real dvc's own exit code is kept in the returned file for the test to check.
    """
    script = tmp_path / "bin" / "dvc"
    script.parent.mkdir(parents=True, exist_ok=True)
    real_rc = tmp_path / "real-dvc-exit-code"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            if [ "$1" = pull ]; then
                shift
                {DVC} pull "$@"
                echo $? > {real_rc}
                {after_pull}
                exit 0
            fi
            exec {DVC} "$@"
            """
        )
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, real_rc


# -- row 27: DVC remote object missing, `dvc pull` exits 0 ---------------------------------------


def test_row27_pull_exit_0_with_missing_cache_files_fails_the_pull(
    pushed: DvcRepo, s3_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_client.delete_object(Bucket=DVC_BUCKET, Key=pushed.remote_key(md5_of(V1)))
    # The real dvc, told to tolerate missing objects (`--allow-missing`), exits 0 and prints
    # "Missing cache files": the case the exit code cannot catch.
    wrapper, real_rc = _dvc_wrapper(tmp_path, after_pull="")
    wrapper.write_text(wrapper.read_text().replace('pull "$@"', 'pull --allow-missing "$@"'))
    monkeypatch.setattr(pipelines.data.pull, "dvc_command", lambda: [str(wrapper)])

    with pytest.raises(DataPullError) as info:
        pull_input(pushed.settings(rev="v1"), tmp_path / "pulls")
    assert real_rc.read_text().strip() == "0"  # dvc itself said all was well
    message = str(info.value)
    assert "`dvc pull` finished but data/score.csv is missing" in message
    assert md5_of(V1) in message and "Missing cache files" in message  # what dvc said, kept
    assert "exit code" not in message  # the post-pull check caught it, not the exit code
    assert "dvc push" in message and not info.value.retryable
    assert not list((tmp_path / "pulls").glob(f"*/{pushed.v1}"))  # the bad checkout is not kept

    # once the object is back in the remote, the same call pulls and verifies it
    s3_client.put_object(Bucket=DVC_BUCKET, Key=pushed.remote_key(md5_of(V1)), Body=V1.encode())
    pulled = pull_input(pushed.settings(rev="v1"), tmp_path / "pulls")
    assert pulled.md5 == md5_of(V1) and pulled.path.read_text() == V1


def test_row27_pull_exit_0_with_missing_file_in_a_tracked_directory(
    pushed: DvcRepo, s3_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tables/ at v1 holds part-0 (V1) and part-1 (V2); lose part-1's object only
    s3_client.delete_object(Bucket=DVC_BUCKET, Key=pushed.remote_key(md5_of(V2)))
    wrapper, real_rc = _dvc_wrapper(tmp_path, after_pull="")
    wrapper.write_text(wrapper.read_text().replace('pull "$@"', 'pull --allow-missing "$@"'))
    monkeypatch.setattr(pipelines.data.pull, "dvc_command", lambda: [str(wrapper)])

    with pytest.raises(DataPullError, match="finished but tables/part-1.csv is missing") as info:
        pull_input(pushed.settings(path="tables/part-1.csv", rev="v1"), tmp_path / "pulls")
    # dvc itself fails here; forced to "succeed", the listing of tables/ is what is missing, and
    # the message says so (not "not tracked by DVC": tables.dvc does track it)
    assert real_rc.read_text().strip() != ""
    message = str(info.value)
    assert "the listing of tables.dvc (tables/)" in message and ".dir" in message
    assert "not tracked" not in message and not info.value.retryable


def test_row27_pull_exit_0_with_wrong_bytes_fails_the_hash_check(
    pushed: DvcRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # dvc pulls the right object, then something leaves other bytes in place; exit code 0
    wrapper, real_rc = _dvc_wrapper(tmp_path, after_pull='echo "99,99" >> data/score.csv')
    monkeypatch.setattr(pipelines.data.pull, "dvc_command", lambda: [str(wrapper)])

    with pytest.raises(DataPullError) as info:
        pull_input(pushed.settings(rev="v1"), tmp_path / "pulls")
    assert real_rc.read_text().strip() == "0"
    message = str(info.value)
    assert f"has md5 {md5_of(V1 + '99,99' + chr(10))}" in message
    assert f"data/score.csv.dvc records {md5_of(V1)}" in message
    assert not list((tmp_path / "pulls").glob(f"*/{pushed.v1}"))


# -- row 28: concurrent DVC commands in one workspace ----------------------------------------------


def _lock_is_held(lock: Path) -> bool:
    """True while another process holds DVC's workspace lock (zc.lockfile: an flock)."""
    if not lock.exists():
        return False
    with open(lock, "rb") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def test_row28_two_dvc_commands_in_one_workspace_hit_the_dvc_lock(
    dvc_repo: DvcRepo, blackhole_endpoint: str, tmp_path: Path
) -> None:
    env = {**os.environ, **dvc_repo.env}
    workspace = tmp_path / "workspace"
    sh(dvc_repo.env, tmp_path, "git", "clone", "-q", str(dvc_repo.root), str(workspace))
    sh(dvc_repo.env, workspace, "git", "checkout", "-q", "v1")
    # A remote that accepts connections and never answers: the first pull holds the lock for as
    # long as the test needs, deterministically.
    remote = ("dvc", "remote", "modify", "--local", "s3remote")
    sh(dvc_repo.env, workspace, *remote, "endpointurl", blackhole_endpoint)
    lock = workspace / ".dvc" / "tmp" / "lock"
    first = subprocess.Popen(
        [DVC, "pull", "data/score.csv"],
        cwd=workspace,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _lock_is_held(lock):
            assert first.poll() is None, "the first dvc pull ended before taking the lock"
            assert time.monotonic() < deadline, "the first dvc pull never took the lock"
            time.sleep(0.05)
        assert str(first.pid) in lock.read_text()  # zc.lockfile writes its holder's pid

        second = subprocess.run(
            [DVC, "pull", "data/score.csv"],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode != 0
        assert "Unable to acquire lock" in second.stderr, second.stderr
        assert first.poll() is None  # the holder is still at work
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    # the kernel drops the holder's flock with it: the workspace is usable again
    assert not _lock_is_held(lock)
    status = subprocess.run(
        [DVC, "status", "--json"], cwd=workspace, env=env, capture_output=True, text=True
    )
    assert status.returncode == 0, status.stderr


PULL_SCRIPT = textwrap.dedent(
    """
    import json, logging, sys, time
    from pathlib import Path

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    from pipelines.config import Settings
    from pipelines.data.pull import pull_input

    root, workdir, go = sys.argv[1:4]
    cfg = Settings.model_validate({"data": {"path": "data/score.csv", "rev": "v1"}, "root": root})
    while not Path(go).exists():  # start both pulls at the same moment
        time.sleep(0.005)
    print(json.dumps(pull_input(cfg, Path(workdir)).as_dict()))
    """
)


def test_row28_pull_input_serializes_processes_sharing_a_workspace(
    pushed: DvcRepo, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PULL_SCRIPT, str(pushed.root), str(tmp_path / "pulls"), str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(2)  # both interpreters up and polling for the start signal
    go.touch()
    outs = [p.communicate(timeout=180) for p in procs]
    for proc, (_out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert "Unable to acquire lock" not in err
    answers = [json.loads(out) for out, _ in outs]
    pulled = [PulledInput(**{**a, "path": Path(a["path"])}) for a in answers]
    assert pulled[0] == pulled[1] and pulled[0].md5 == md5_of(V1)
    waited = ["waiting for another pull in the same workspace" in err for _, err in outs]
    assert sorted(waited) == [False, True]  # they did overlap, and one waited for the other


def test_row28_dag_never_runs_two_pulls_at_once() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    dag = bag.dags["batchscore"]
    assert dag.max_active_runs == 1  # a manual trigger queues behind the nightly run
    pull = dag.get_task("pull")
    assert pull.max_active_tis_per_dag == 1  # and one pull task at a time across runs
    # plan and the mapped score tasks re-check the pull (a cached no-op on a worker
    # that already has it): those meet in one workspace only through pull_input's file lock,
    # which the test above exercises with real processes.


# -- row 29: garbled connection, wrong credentials ------------------------------------------------

SECRET = "garbled-conn-secret-77c1e0"


@pytest.fixture(scope="module")
def support():
    """The DAG's helper module, imported by name as the DAG file does (dags/ on sys.path)."""
    import batchscore_support

    return batchscore_support


@pytest.fixture
def clean_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
             "AWS_DEFAULT_REGION", "BATCHSCORE__S3__ENDPOINT_URL")  # fmt: skip
    for name in names:  # restored after the test, whatever the helper exported
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)


@pytest.mark.parametrize(
    "value",
    [
        '{"conn_type": "aws", "login": "AKIAGARBLED", "password": "' + SECRET + '"',  # cut JSON
        f"aws://AKIAGARBLED:{SECRET}@[::1/",  # broken URI (unclosed IPv6 host)
        f"AKIAGARBLED:{SECRET}@",  # no scheme: Airflow reads the key id as the type
        f"plain text with {SECRET} in it",  # not a connection at all
    ],
    ids=["truncated-json", "bad-uri", "no-scheme", "garbage"],
)
def test_row29_garbled_connection_fails_fast_and_never_echoes_the_secret(
    support,
    value: str,
    clean_aws_env: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("AIRFLOW_CONN_BATCHSCORE_S3", value)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AirflowFailException) as info, support.fail_fast():
        support.export_s3_connection()
    message = str(info.value)
    assert "ConfigError" in message and "AIRFLOW_CONN_BATCHSCORE_S3" in message
    assert "aws://" in message  # says what a readable one looks like
    out, err = capfd.readouterr()
    for text in (message, caplog.text, out, err):
        assert SECRET not in text
    # nothing half-parsed was handed to boto3 or DVC
    assert "AWS_SECRET_ACCESS_KEY" not in os.environ and "AWS_ACCESS_KEY_ID" not in os.environ


def test_row29_readable_connection_is_still_exported(
    support, clean_aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the documented URI form (README), and a key-less `aws://` one meaning "use the role"
    uri = f"aws://AKIAGOOD:{SECRET}@/?endpoint_url=http%3A%2F%2Fminio%3A9000&region_name=eu-west-1"
    monkeypatch.setenv("AIRFLOW_CONN_BATCHSCORE_S3", uri)
    support.export_s3_connection()
    assert os.environ["AWS_ACCESS_KEY_ID"] == "AKIAGOOD"
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == SECRET
    assert os.environ["BATCHSCORE__S3__ENDPOINT_URL"] == "http://minio:9000"
    conn = {"conn_type": "aws", "login": "AKIAJSON", "password": SECRET, "extra": {}}
    monkeypatch.setenv("AIRFLOW_CONN_BATCHSCORE_S3", json.dumps(conn))
    support.export_s3_connection()
    assert os.environ["AWS_ACCESS_KEY_ID"] == "AKIAJSON"
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AIRFLOW_CONN_BATCHSCORE_S3", "aws://")
    support.export_s3_connection()
    assert "AWS_ACCESS_KEY_ID" not in os.environ


@pytest.fixture(scope="module")
def authed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthMoto]:
    with auth_moto(tmp_path_factory.mktemp("auth-moto")) as server:
        server.client().create_bucket(Bucket="dvc-auth")
        yield server


@pytest.fixture(scope="module")
def authed_repo(authed: AuthMoto, tmp_path_factory: pytest.TempPathFactory) -> DvcRepo:
    """A git + DVC repo whose remote only accepts the auth moto's key; its data pushed."""
    home = tmp_path_factory.mktemp("dvc-auth-home")
    env = {**isolated_env(home), "AWS_ACCESS_KEY_ID": authed.access_key,
           "AWS_SECRET_ACCESS_KEY": authed.secret_key}  # fmt: skip
    root = home / "repo"
    root.mkdir()
    for cmd in (
        ("git", "init", "-q", "-b", "main"),
        ("dvc", "init", "-q"),
        ("dvc", "remote", "add", "-d", "s3remote", "s3://dvc-auth/dvcstore"),
        ("dvc", "remote", "modify", "s3remote", "endpointurl", authed.endpoint),
    ):
        sh(env, root, *cmd)
    (root / "data").mkdir()
    (root / "data" / "score.csv").write_text(V1)
    for cmd in (
        ("dvc", "add", "-q", "data/score.csv"),
        ("git", "add", "-A"),
        ("git", "commit", "-q", "-m", "v1"),
        ("git", "tag", "v1"),
        ("dvc", "push", "-q"),
    ):
        sh(env, root, *cmd)
    repo = DvcRepo.__new__(DvcRepo)
    repo.root, repo.env, repo.endpoint = root, env, authed.endpoint
    return repo


def test_row29_wrong_dvc_remote_credentials_fail_fast_without_the_secret(
    authed: AuthMoto,
    authed_repo: DvcRepo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name, value in authed_repo.env.items():
        monkeypatch.setenv(name, value)
    cfg = Settings.model_validate(
        {"data": {"path": "data/score.csv", "rev": "v1"}, "root": authed_repo.root}
    )
    wrong = f"{authed.secret_key[:-6]}WRONG0"  # e.g. a secret cut or mangled in a connection
    caplog.set_level(logging.DEBUG)
    start = time.monotonic()
    with pytest.raises(DataPullError) as info:
        pull_input(cfg, tmp_path / "pulls", env={"AWS_SECRET_ACCESS_KEY": wrong})
    took = time.monotonic() - start
    message = str(info.value)
    assert "failed with exit code" in message and "dvc push" in message
    assert "403" in message or "Forbidden" in message or "SignatureDoesNotMatch" in message, message
    assert not info.value.retryable  # a retry with the same credentials cannot succeed
    assert took < 60, took
    for text in (message, caplog.text):
        assert wrong not in text and authed.secret_key not in text
    # control: the right key pulls the same revision
    assert pull_input(cfg, tmp_path / "pulls").md5 == md5_of(V1)
