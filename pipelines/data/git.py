"""The git commit a file sits at: recorded only when the file is in a git work tree."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

TIMEOUT_S = 30.0


def head_commit(where: Path) -> str | None:
    """HEAD's commit of the git work tree holding `where` (a file or folder), else None.

    None when git is not installed, `where` is outside any repository, or the repository has no
    commit yet: a run outside git is normal and must not fail or record somebody else's commit.
    """
    folder = where if where.is_dir() else where.parent
    if shutil.which("git") is None or not folder.is_dir():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--verify", "--quiet", "HEAD^{commit}"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env=None,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None
