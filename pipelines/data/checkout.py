"""A git checkout of a pinned revision in a workspace folder: cloned fresh, or reused if clean.

The clone goes to a staging folder first and is renamed to `<workspace>/<sha>` only once its
revision resolved, so a failed clone never leaves a folder that looks like a checkout.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pipelines.data.commands import run, scrub, tail
from pipelines.errors import DataPullError

GIT_TIMEOUT_S = 600.0


def clone_at(repo: str, rev: str, workspace: Path, env: dict[str, str]) -> tuple[Path, str]:
    """A checkout of `rev` at `workspace/<sha>`: a fresh clone, or a clean earlier one."""
    staging = Path(tempfile.mkdtemp(prefix=".clone-", dir=workspace))
    try:
        _git(["clone", "--quiet", "--no-checkout", repo, str(staging)], workspace, env, repo)
        sha = _resolve(staging, rev, env, repo)
        checkout = workspace / sha
        if checkout.is_dir() and _clean_checkout(checkout, sha, env):
            return checkout, sha
        shutil.rmtree(checkout, ignore_errors=True)
        os.replace(staging, checkout)
        _git(["checkout", "--quiet", "--detach", sha], checkout, env, repo)
        return checkout, sha
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _resolve(clone: Path, rev: str, env: dict[str, str], repo: str) -> str:
    for candidate in (rev, f"origin/{rev}"):
        result = run(
            ["git", "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}"],
            clone,
            env,
            GIT_TIMEOUT_S,
            check=False,
        )
        if result.returncode == 0:
            return result.stdout.strip()
    err = DataPullError(
        f"git revision {rev!r} not found",
        where=scrub(repo),
        fix="set data.rev to a commit sha, tag or branch that exists in the repo (pushed)",
    )
    err.retryable = False
    raise err


def _clean_checkout(checkout: Path, sha: str, env: dict[str, str]) -> bool:
    head = run(["git", "rev-parse", "HEAD"], checkout, env, GIT_TIMEOUT_S, check=False)
    status = run(["git", "status", "--porcelain"], checkout, env, GIT_TIMEOUT_S, check=False)
    return head.stdout.strip() == sha and status.returncode == 0 and not status.stdout.strip()


def _git(args: Sequence[str], cwd: Path, env: dict[str, str], repo: str) -> None:
    result = run(["git", *args], cwd, env, GIT_TIMEOUT_S)
    if result.returncode != 0:
        raise DataPullError(
            f"`git {args[0]}` failed with exit code {result.returncode}: {tail(result)}",
            where=scrub(repo),
            fix="check data.repo (URL or path) and that this machine may read it",
        )
