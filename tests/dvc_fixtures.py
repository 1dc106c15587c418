"""A real git + DVC repo whose remote is the moto S3 server, for the DVC pull tests.

`DvcRepo` holds v1 and v2 of data/score.csv (plus a tracked directory); the `dvc_repo` fixture
builds it once per module and `pushed` pushes it to the (reset) moto server. Used by tests/data
and tests/faults; registered with `pytest_plugins` in `tests/conftest.py`, after s3_fixtures.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import Settings
from tests.s3_fixtures import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, REGION, raw_client

DVC_BUCKET = "dvc-remote"
V1 = "customer_id,x\n" + "".join(f"{i},{i * 0.5}\n" for i in range(2_000))
V2 = "customer_id,x\n" + "".join(f"{i},{i * 0.25}\n" for i in range(3_000))


def isolated_env(home: Path) -> dict[str, str]:
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


def sh(env: dict[str, str], cwd: Path, *cmd: str) -> str:
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
        return sh(self.env, self.root, *cmd)

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
    return DvcRepo(home / "repo", isolated_env(home), moto_server)


@pytest.fixture
def pushed(
    dvc_repo: DvcRepo, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DvcRepo]:
    """The repo with its data pushed to a freshly reset moto, and its env for pull_input."""
    for name, value in dvc_repo.env.items():
        monkeypatch.setenv(name, value)
    dvc_repo.push()
    yield dvc_repo
