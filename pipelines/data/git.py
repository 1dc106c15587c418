"""What git says about a file: the commit it sits at, and whether that commit holds it.

Every answer is None/False outside a git work tree (or without git): a run outside git is normal
and must not fail or record somebody else's commit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

TIMEOUT_S = 30.0


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    """`git -C folder args...`, or None when git is missing, the folder is not, or git hangs."""
    if shutil.which("git") is None or not folder.is_dir():
        return None
    try:
        return subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},  # read only: never take index.lock
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def head_commit(where: Path) -> str | None:
    """HEAD's commit of the git work tree holding `where` (a file or folder), else None.

    None when git is not installed, `where` is outside any repository, or the repository has no
    commit yet.
    """
    folder = where if where.is_dir() else where.parent
    out = _git(folder, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    return (out.stdout.strip() or None) if out is not None and out.returncode == 0 else None


def committed_unchanged(path: Path) -> bool:
    """Whether git tracks the file `path` and it is as HEAD has it (nothing staged or modified).

    False outside a work tree, for an untracked or ignored file (e.g. data DVC tracks), and for
    a repository without a commit.
    """
    folder, name = path.parent, path.name
    tracked = _git(folder, "ls-files", "--error-unmatch", "--", name)
    if tracked is None or tracked.returncode != 0:
        return False
    same = _git(folder, "diff", "--quiet", "HEAD", "--", name)
    return same is not None and same.returncode == 0
