"""pull_input against a real git + DVC repo whose remote is the moto S3 server."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import Settings
from pipelines.data.dvc_files import file_md5
from pipelines.data.pull import PulledInput, pull_input
from pipelines.errors import DataPullError, InputDataError
from tests.s3_fixtures import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, REGION, raw_client

DVC_BUCKET = "dvc-remote"
V1 = "customer_id,x\n" + "".join(f"{i},{i * 0.5}\n" for i in range(2_000))
V2 = "customer_id,x\n" + "".join(f"{i},{i * 0.25}\n" for i in range(3_000))


def _isolated_env(home: Path) -> dict[str, str]:
    """Git/DVC settings that make the tests work the same on a fresh machine or a laptop."""
    return {
        "GIT_AUTHOR_NAME": "batchscore tests",
        "GIT_AUTHOR_EMAIL": "tests@batchscore.invalid",
        "GIT_COMMITTER_NAME": "batchscore tests",
        "GIT_COMMITTER_EMAIL": "tests@batchscore.invalid",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "DVC_NO_ANALYTICS": "1",
        "DVC_GLOBAL_CONFIG_DIR": str(home / "dvc-global"),
        "DVC_SYSTEM_CONFIG_DIR": str(home / "dvc-system"),
        "DVC_SITE_CACHE_DIR": str(home / "dvc-site-cache"),
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        # dvc imports hundreds of modules: cache their bytecode outside the venv (halves startup)
        "PYTHONDONTWRITEBYTECODE": "",
        "PYTHONPYCACHEPREFIX": str(Path(tempfile.gettempdir()) / "batchscore-test-pycache"),
    }


def _sh(env: dict[str, str], cwd: Path, *cmd: str) -> str:
    exe = cmd[0]
    if exe == "dvc":
        exe = str(Path(sys.executable).with_name("dvc"))
    result = subprocess.run(
        [exe, *cmd[1:]], cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True
    )
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout.strip()


class DvcRepo:
    """A git + DVC repo with an S3 remote on moto: v1 and v2 of data/score.csv, plus a dir."""

    def __init__(self, root: Path, env: dict[str, str], endpoint: str) -> None:
        self.root, self.env, self.endpoint = root, env, endpoint
        root.mkdir()
        self.sh("git", "init", "-q", "-b", "main")
        self.sh("dvc", "init", "-q")
        self.sh("dvc", "remote", "add", "-d", "s3remote", f"s3://{DVC_BUCKET}/dvcstore")
        self.sh("dvc", "remote", "modify", "s3remote", "endpointurl", endpoint)
        (root / "data").mkdir()
        (root / "data" / "score.csv").write_text(V1)
        (root / "tables").mkdir()
        (root / "tables" / "part-0.csv").write_text(V1)
        (root / "tables" / "part-1.csv").write_text(V2)
        self.sh("dvc", "add", "-q", "data/score.csv", "tables")
        self.sh("git", "add", "-A")
        self.sh("git", "commit", "-q", "-m", "v1")
        self.sh("git", "tag", "v1")
        self.v1 = self.sh("git", "rev-parse", "HEAD")
        (root / "data" / "score.csv").write_text(V2)
        self.sh("dvc", "add", "-q", "data/score.csv")
        self.sh("git", "commit", "-q", "-am", "v2")
        self.v2 = self.sh("git", "rev-parse", "HEAD")

    def sh(self, *cmd: str) -> str:
        return _sh(self.env, self.root, *cmd)

    def push(self) -> None:
        raw_client(self.endpoint).create_bucket(Bucket=DVC_BUCKET)
        self.sh("dvc", "push", "-q", "--all-commits")

    def remote_key(self, md5: str) -> str:
        return f"dvcstore/files/md5/{md5[:2]}/{md5[2:]}"

    def settings(self, **data: Any) -> Settings:
        return Settings.model_validate(
            {"data": {"path": "data/score.csv", **data}, "root": self.root}
        )


def md5_of(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def dvc_repo(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> DvcRepo:
    home = tmp_path_factory.mktemp("dvc-home")
    return DvcRepo(home / "repo", _isolated_env(home), moto_server)


@pytest.fixture
def pushed(
    dvc_repo: DvcRepo, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DvcRepo]:
    """The repo with its data pushed to a freshly reset moto, and its env for pull_input."""
    for name, value in dvc_repo.env.items():
        monkeypatch.setenv(name, value)
    dvc_repo.push()
    yield dvc_repo


def test_pull_at_pinned_rev(pushed: DvcRepo, tmp_path: Path) -> None:
    pulled = pull_input(pushed.settings(rev="v1"), tmp_path / "pulls")

    assert pulled.path.read_text() == V1
    assert pulled.md5 == md5_of(V1)
    assert pulled.git_rev == pushed.v1
    assert pulled.recorded_in == "data/score.csv.dvc"
    assert pulled.path.is_relative_to(tmp_path / "pulls")
    # the working tree (at v2) is untouched; a second call reuses the verified checkout
    assert (pushed.root / "data" / "score.csv").read_text() == V2
    again = pull_input(pushed.settings(rev=pushed.v1[:10], md5=md5_of(V1)), tmp_path / "pulls")
    assert again == pulled
    assert pull_input(pushed.settings(rev="main"), tmp_path / "pulls").md5 == md5_of(V2)


def test_only_the_most_recently_used_checkouts_are_kept(pushed: DvcRepo, tmp_path: Path) -> None:
    pulls = tmp_path / "pulls"
    first = pull_input(pushed.settings(rev="v1"), pulls, keep_checkouts=2)
    second = pull_input(pushed.settings(rev="main"), pulls, keep_checkouts=2)
    assert first.path.is_file() and second.path.is_file()
    again = pull_input(pushed.settings(rev="v1"), pulls, keep_checkouts=1)  # reused, then pruned
    assert again == first and again.path.read_text() == V1
    workspace = first.path.parents[2]  # <pulls>/<repo>/<sha>/data/score.csv
    assert sorted(p.name for p in workspace.iterdir() if p.is_dir()) == [pushed.v1]
    assert not second.path.exists()


def test_file_inside_a_tracked_directory(pushed: DvcRepo, tmp_path: Path) -> None:
    cfg = pushed.settings(path="tables/part-1.csv", rev=pushed.v2)
    pulled = pull_input(cfg, tmp_path / "pulls")
    assert pulled.path.read_text() == V2
    assert pulled.md5 == md5_of(V2)
    assert pulled.recorded_in == "tables.dvc (tables/)"


def test_corrupted_remote_object_is_caught(pushed: DvcRepo, s3_client: Any, tmp_path: Path) -> None:
    key = pushed.remote_key(md5_of(V1))
    s3_client.put_object(Bucket=DVC_BUCKET, Key=key, Body=V1.replace("0.5", "0.6").encode())
    with pytest.raises(DataPullError, match="corrupted or was overwritten") as info:
        pull_input(pushed.settings(rev="v1"), tmp_path / "pulls")
    assert md5_of(V1) in str(info.value) and not info.value.retryable
    assert not list((tmp_path / "pulls").glob(f"*/{pushed.v1}"))  # bad checkout not kept

    # once the remote is repaired, the next attempt pulls the good bytes
    s3_client.put_object(Bucket=DVC_BUCKET, Key=key, Body=V1.encode())
    assert pull_input(pushed.settings(rev="v1"), tmp_path / "pulls").md5 == md5_of(V1)


def test_missing_remote_object_is_caught(pushed: DvcRepo, s3_client: Any, tmp_path: Path) -> None:
    s3_client.delete_object(Bucket=DVC_BUCKET, Key=pushed.remote_key(md5_of(V1)))
    with pytest.raises(DataPullError, match="data/score.csv") as info:
        pull_input(pushed.settings(rev="v1"), tmp_path / "pulls")
    assert "dvc push" in str(info.value)


def test_pinned_md5_must_match_the_revision(pushed: DvcRepo, tmp_path: Path) -> None:
    with pytest.raises(DataPullError, match=f"data.md5 pins {'0' * 32}.*records md5"):
        pull_input(pushed.settings(rev="v1", md5="0" * 32), tmp_path / "pulls")


def test_unknown_revision(pushed: DvcRepo, tmp_path: Path) -> None:
    with pytest.raises(DataPullError, match="'no-such-tag' not found"):
        pull_input(pushed.settings(rev="no-such-tag"), tmp_path / "pulls")


def test_concurrent_pulls_in_one_workspace_serialize(pushed: DvcRepo, tmp_path: Path) -> None:
    results: list[PulledInput | BaseException] = []

    def pull() -> None:
        try:
            results.append(pull_input(pushed.settings(rev="v1"), tmp_path / "pulls"))
        except BaseException as exc:  # surfaced by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=pull) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 2 and all(isinstance(r, PulledInput) for r in results), results
    assert results[0] == results[1]


def test_working_tree_input(
    dvc_repo: DvcRepo, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    pulled = pull_input(dvc_repo.settings())
    assert pulled == PulledInput(
        path=dvc_repo.root / "data" / "score.csv",
        git_rev=dvc_repo.v2,
        md5=md5_of(V2),
        recorded_in="data/score.csv.dvc",
    )
    with pytest.raises(DataPullError, match="data.md5 pins"):
        pull_input(dvc_repo.settings(md5=md5_of(V1)))

    plain = tmp_path / "plain"  # not a git repo, not tracked by DVC
    (plain / "data").mkdir(parents=True)
    (plain / "data" / "score.csv").write_text(V1 + "9,9\n")
    cfg = Settings.model_validate({"data": {"path": "data/score.csv"}, "root": plain})
    with caplog.at_level(logging.WARNING):
        local = pull_input(cfg)
    assert local.git_rev is None and local.md5 == md5_of(V1 + "9,9\n")
    assert local.recorded_in is None

    with pytest.raises(InputDataError, match="not found"):
        pull_input(Settings.model_validate({"data": {"path": "nope.csv"}, "root": plain}))


def test_legacy_dvc2_hash_normalises_line_endings(tmp_path: Path) -> None:
    crlf = tmp_path / "x.csv"
    crlf.write_bytes(b"a,b\r\n1,2\r\n")
    assert file_md5(crlf) == hashlib.md5(b"a,b\r\n1,2\r\n").hexdigest()
    assert file_md5(crlf, "md5-dos2unix") == hashlib.md5(b"a,b\n1,2\n").hexdigest()
