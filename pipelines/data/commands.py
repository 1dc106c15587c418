"""Running git and dvc: in their own process group, with a timeout, and no secret in any message.

A timeout kills the whole group, because `dvc pull` starts children that would otherwise keep
the workspace lock. A git or DVC URL may carry a token (`https://user:token@host/...`), so every
command line or output that can end up in an error message goes through `scrub` first.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipelines.errors import ConfigError, DataPullError

_USERINFO = re.compile(r"(\w+://)[^/@\s]+@")


def dvc_command() -> list[str]:
    """The `dvc` of this environment (beside the interpreter), else the one on PATH."""
    beside = Path(sys.executable).with_name("dvc")
    found = str(beside) if beside.exists() else shutil.which("dvc")
    if not found:
        raise ConfigError(
            "the `dvc` command is not installed", fix="pip install 'dvc[s3]' in this environment"
        )
    return [found]


def run(
    cmd: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None,
    timeout_s: float,
    *,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a command in its own process group, so a timeout kills its children too."""
    proc = subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise DataPullError(
            f"`{' '.join(scrub(c) for c in cmd[:3])} ...` timed out after {timeout_s:.0f} s",
            where=str(cwd),
            fix="check the network path to the git/DVC remote; the task may be retried",
        ) from None
    result = subprocess.CompletedProcess(list(cmd), proc.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise DataPullError(f"`{cmd[0]}` failed: {tail(result)}", where=str(cwd))
    return result


def tail(result: subprocess.CompletedProcess[str], lines: int = 15) -> str:
    """The last lines of a command's stderr (else stdout), scrubbed, for an error message."""
    text = (result.stderr or "").strip() or (result.stdout or "").strip()
    return scrub("\n".join(text.splitlines()[-lines:])) or "(no output)"


def scrub(text: str) -> str:
    """Drop `user:password@` from URLs: a git or DVC URL may carry a token."""
    return _USERINFO.sub(r"\1***@", text)
