"""Provenance is honest: a git revision only for an input a commit holds; a pull without a DVC
remote says how to add one. Real git and DVC repos in tmp folders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.config import Settings
from pipelines.data.git import committed_unchanged, head_commit
from pipelines.data.pull import pull_input
from pipelines.errors import DataPullError
from pipelines.run.plan import plan_run
from tests.dvc_fixtures import V1, V2, isolated_env, md5_of, sh


@pytest.fixture
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = isolated_env(tmp_path / "home")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def repo(tmp_path: Path, git_env: dict[str, str]) -> Path:
    """A git repo with one commit holding data/score.csv."""
    root = tmp_path / "repo"
    (root / "data").mkdir(parents=True)
    (root / "data" / "score.csv").write_text(V1)
    sh(git_env, root, "git", "init", "-q", "-b", "main")
    sh(git_env, root, "git", "add", "-A")
    sh(git_env, root, "git", "commit", "-q", "-m", "v1")
    return root


def settings(root: Path, path: Path | str = "data/score.csv", **data: object) -> Settings:
    return Settings.model_validate({"data": {"path": str(path), **data}, "root": root})


def test_a_committed_file_records_its_commit_a_changed_or_untracked_one_none(
    repo: Path, git_env: dict[str, str]
) -> None:
    head = sh(git_env, repo, "git", "rev-parse", "HEAD")
    assert pull_input(settings(repo)).git_rev == head

    (repo / "data" / "score.csv").write_text(V2)  # changed since the commit
    changed = pull_input(settings(repo))
    assert changed.git_rev is None and changed.md5 == md5_of(V2)

    (repo / "data" / "new.csv").write_text(V1)  # in the work tree, never added
    assert not committed_unchanged(repo / "data" / "new.csv")
    assert pull_input(settings(repo, "data/new.csv")).git_rev is None


def test_an_input_outside_any_repo_records_no_revision(repo: Path, tmp_path: Path) -> None:
    """The project folder is a git repo; the input is not in it: its HEAD is not the input's."""
    outside = tmp_path / "elsewhere" / "score.csv"
    outside.parent.mkdir()
    outside.write_text(V1)
    assert head_commit(outside) is None  # precondition: tmp is outside any work tree
    assert head_commit(repo) is not None
    pulled = pull_input(settings(repo, outside))
    assert pulled.git_rev is None and pulled.md5 == md5_of(V1)


def test_a_plan_without_a_pull_records_the_inputs_own_commit(
    make_cfg: Callable[..., Settings], score_file: Path, repo: Path
) -> None:
    """The CLI's `score` plans without a pull: the project (a git repo) is not the input's."""
    cfg = make_cfg(**{"validation.enabled": False}).model_copy(update={"root": repo})
    assert head_commit(cfg.root) is not None and head_commit(score_file) is None
    assert plan_run(cfg).input.git_rev is None
    assert plan_run(cfg, git_rev="a" * 40, dvc_md5="b" * 32).input.git_rev == "a" * 40


def test_a_dvc_tracked_file_records_the_commit_only_while_it_matches(
    tmp_path: Path, git_env: dict[str, str]
) -> None:
    root = tmp_path / "dvcrepo"
    (root / "data").mkdir(parents=True)
    sh(git_env, root, "git", "init", "-q", "-b", "main")
    sh(git_env, root, "dvc", "init", "-q")
    (root / "data" / "score.csv").write_text(V1)
    sh(git_env, root, "dvc", "add", "-q", "data/score.csv")
    sh(git_env, root, "git", "add", "-A")
    sh(git_env, root, "git", "commit", "-q", "-m", "v1")
    head = sh(git_env, root, "git", "rev-parse", "HEAD")
    assert not committed_unchanged(root / "data" / "score.csv")  # git ignores it: DVC's
    pulled = pull_input(settings(root))
    assert pulled.git_rev == head and pulled.recorded_in == "data/score.csv.dvc"

    (root / "data" / "score.csv").write_text(V2)  # no longer what the commit's .dvc records
    assert pull_input(settings(root)).git_rev is None


def test_a_pull_without_a_dvc_remote_says_how_to_add_one(
    tmp_path: Path, git_env: dict[str, str]
) -> None:
    root = tmp_path / "noremote"
    (root / "data").mkdir(parents=True)
    sh(git_env, root, "git", "init", "-q", "-b", "main")
    sh(git_env, root, "dvc", "init", "-q")
    (root / "data" / "score.csv").write_text(V1)
    sh(git_env, root, "dvc", "add", "-q", "data/score.csv")
    sh(git_env, root, "git", "add", "-A")
    sh(git_env, root, "git", "commit", "-q", "-m", "v1")
    with pytest.raises(DataPullError, match="no DVC remote configured") as info:
        pull_input(settings(root, rev="main"), tmp_path / "pulls")
    assert "dvc remote add -d storage s3://bucket/path" in (info.value.fix or "")
    assert not info.value.retryable
