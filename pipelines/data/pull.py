"""Fetch the input at its pinned git revision through DVC, and prove it is the recorded version.

`dvc pull` has been seen to exit 0 with files missing, and with a remote whose `verify` is off
(the default for S3) it copies a corrupted object into the workspace without a word. So the exit
code is never trusted: after the pull the file must exist and its md5 must equal what the pinned
revision's `.dvc` file or `dvc.lock` records (and `data.md5` when the params pin one). Only then
is the input handed to scoring, together with the full git sha and md5 for the run manifest.

DVC takes a lock per workspace and fails if two commands meet there, so every clone/pull in one
workspace runs under a file lock (`fcntl.flock`, released by the kernel if the process dies).
The clone is `pipelines.data.checkout`, what DVC records is `pipelines.data.dvc_files`.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pipelines.config import Settings
from pipelines.data.checkout import clone_at
from pipelines.data.commands import dvc_command, run, scrub, tail
from pipelines.data.dvc_files import DvcRecord, file_md5, find_record, inside, relative
from pipelines.data.git import committed_unchanged, head_commit
from pipelines.errors import ConfigError, DataPullError, InputDataError

log = logging.getLogger(__name__)

DVC_TIMEOUT_S = 3600.0
LOCK_TIMEOUT_S = 2 * 3600.0
KEEP_CHECKOUTS = 3  # verified checkouts kept per repo, most recently used first
# What DVC prints when the remote refuses the credentials (S3 answers a HEAD with a bare 403).
_AUTH_FAILURE = re.compile(
    r"\(403\)|\bForbidden\b|AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|ExpiredToken|"
    r"InvalidToken|Unable to locate credentials|NoCredentialsError"
)
# What DVC says when the repo has no default remote: its warning, and its NoRemoteError
_NO_REMOTE = re.compile(r"no default remote set|no remote specified", re.IGNORECASE)
ADD_REMOTE = (
    "add a default DVC remote to the data repo and commit it: `dvc remote add -d storage "
    "s3://bucket/path` (or `dvc remote default <name>` for one it has), `git add .dvc/config && "
    "git commit`, then `dvc push` the data (a remote only in .dvc/config.local is not cloned)"
)


@dataclass(frozen=True)
class PulledInput:
    """The input a run reads, and exactly which version it is."""

    path: Path
    git_rev: str | None  # full commit sha; None unless a commit holds this file (input_commit)
    md5: str  # the file's md5 (DVC's hash; `md5-dos2unix` for files added by DVC 2)
    repo: str | None = None  # where it was pulled from; None for the working tree
    recorded_in: str | None = None  # the .dvc / dvc.lock that records `md5`, relative to repo

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


def pull_input(
    cfg: Settings,
    workdir: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = DVC_TIMEOUT_S,
    keep_checkouts: int = KEEP_CHECKOUTS,
) -> PulledInput:
    """The input file to score, pulled at `cfg.data.rev` if set, and verified.

    With `data.rev`: clone `data.repo` (default: the project repo, `cfg.root`) into
    `workdir/<repo>/<sha>`, check out the pinned commit, `dvc pull` the input with the repo's
    own DVC remote, and verify it. `env` adds variables for git and dvc (e.g. AWS credentials
    from an Airflow connection). A verified checkout is reused by later calls for the same sha;
    only the `keep_checkouts` most recently used ones are kept (a nightly new revision would
    otherwise add a clone and its data every night).
    Without `data.rev`: the working-tree file, its md5 (a warning if it differs from what DVC
    records, an error if it differs from `data.md5`) and the commit that holds it, if any
    (`input_commit`).
    """
    if cfg.data.rev is None:
        return _working_tree_input(cfg)
    repo = cfg.data.repo or str(cfg.root)
    target = _target(cfg)
    base = Path(workdir) if workdir else Path(tempfile.gettempdir()) / "batchscore-datapull"
    workspace = base / _workspace_name(repo)
    workspace.mkdir(parents=True, exist_ok=True)
    run_env = {**os.environ, **(env or {}), "GIT_TERMINAL_PROMPT": "0", "DVC_NO_ANALYTICS": "1"}
    with _locked(workspace.parent / f"{workspace.name}.lock"):
        checkout, sha = clone_at(repo, cfg.data.rev, workspace, run_env)
        verified_marker = workspace / f"{sha}.verified"  # outside the checkout: keeps it clean
        if verified_marker.exists() and (checkout / target).is_file():
            try:
                pulled = _verified(cfg, checkout, target, sha, repo)
                _mark_used(verified_marker, keep_checkouts)
                return pulled
            except DataPullError as exc:
                log.warning("cached checkout failed verification, pulling again: %s", exc)
        verified_marker.unlink(missing_ok=True)
        dvc = dvc_command()
        result = run([*dvc, "pull", "--force", str(target)], checkout, run_env, timeout_s)
        if result.returncode != 0:
            shutil.rmtree(checkout, ignore_errors=True)
            raise _pull_failed(cfg, target, sha, repo, result)
        try:
            pulled = _verified(cfg, checkout, target, sha, repo, pull_output=tail(result))
        except DataPullError:
            shutil.rmtree(checkout, ignore_errors=True)  # never reuse a bad cache or file
            raise
        _mark_used(verified_marker, keep_checkouts)
        log.info("pulled %s at %s (md5 %s)", target, sha[:12], pulled.md5)
        return pulled


def _mark_used(marker: Path, keep: int) -> None:
    """Mark this verified checkout most recently used; remove all but the `keep` newest."""
    marker.touch()
    workspace = marker.parent
    markers = sorted(workspace.glob("*.verified"), key=lambda m: m.stat().st_mtime_ns, reverse=True)
    for old in markers[max(keep, 1) :]:
        shutil.rmtree(workspace / old.stem, ignore_errors=True)
        old.unlink(missing_ok=True)
        log.info("removed the old checkout %s", old.stem[:12])


def _pull_failed(
    cfg: Settings,
    target: PurePosixPath,
    sha: str,
    repo: str,
    result: subprocess.CompletedProcess[str],
) -> DataPullError:
    """What a failed `dvc pull` means for the user: no remote, refused credentials, or else."""
    output = f"{result.stdout}\n{result.stderr}"
    if _NO_REMOTE.search(output):
        return _no_remote(cfg, target, sha, repo)
    err = DataPullError(
        f"`dvc pull {target}` at {cfg.data.rev} ({sha[:12]}) failed with exit code "
        f"{result.returncode}: {tail(result)}",
        where=scrub(repo),
        fix="check the DVC remote (its URL/endpointurl, credentials in the environment) "
        "and that the data was `dvc push`ed for this revision",
    )
    # Refused credentials: a retry with the same ones cannot succeed, so fail fast.
    err.retryable = not _AUTH_FAILURE.search(output)
    return err


def _no_remote(cfg: Settings, target: PurePosixPath, sha: str, repo: str) -> DataPullError:
    """`dvc pull` had no remote to pull from: say how to add one, not DVC's words."""
    err = DataPullError(
        f"cannot pull {target} at {cfg.data.rev} ({sha[:12]}): no DVC remote configured "
        "(the repo at that revision names no default remote)",
        where=scrub(repo),
        fix=ADD_REMOTE,
    )
    err.retryable = False  # the same config cannot pull on a retry
    return err


def input_commit(path: Path, root: Path, md5: str | None = None) -> str | None:
    """The commit to record for a working-tree input, or None.

    HEAD of the git work tree holding `path`, only when that commit holds this very file: git
    tracks it unchanged, or a `.dvc` file or `dvc.lock` (under `root`, itself committed
    unchanged) records the file's md5. A file outside git, untracked, changed since the commit,
    or differing from what DVC records is described by its hash alone. `md5`: the file's, with
    the record's algorithm, if already known (it is computed only for a DVC-recorded file).
    """
    if head_commit(path) is None:  # outside any work tree, or no commit yet
        return None
    if committed_unchanged(path):
        return head_commit(path)
    record = _record(path, root)
    if record is None or not committed_unchanged(root / record.source.split(" (")[0]):
        return None
    if (md5 or file_md5(path, record.algorithm)) != record.md5:
        return None
    return head_commit(path)


def _record(path: Path, root: Path) -> DvcRecord | None:
    """What a `.dvc` file or `dvc.lock` under `root` records for `path`, if anything usable."""
    record = find_record(root, relative(path, root)) if inside(path, root) else None
    if record and record.md5.endswith(".dir"):  # its directory's listing is not in the cache
        return None
    return record


def _working_tree_input(cfg: Settings) -> PulledInput:
    path = cfg.data.path
    if not path.is_file():
        raise InputDataError(
            f"input file {path} not found",
            where="data.path",
            fix="run `dvc pull` (or `dvc repro generate`), fix data.path, or pin data.rev",
        )
    record = _record(path, cfg.root)
    md5 = file_md5(path, record.algorithm if record else "md5")
    if record and record.md5 != md5:
        log.warning(
            "%s differs from what %s records (md5 %s, file has %s): the run records the file's "
            "md5; `dvc add`/`dvc commit` it or pin data.rev for a reproducible input",
            path,
            record.source,
            record.md5,
            md5,
        )
    if cfg.data.md5 and cfg.data.md5 != md5:
        err = DataPullError(
            f"input {path} has md5 {md5}, but data.md5 pins {cfg.data.md5}",
            where="data.md5",
            fix="restore the pinned input (`dvc checkout`), or update data.md5",
        )
        err.retryable = False
        raise err
    return PulledInput(
        path=path,
        git_rev=input_commit(path, cfg.root, md5 if record else None),
        md5=md5,
        recorded_in=record.source if record and record.md5 == md5 else None,
    )


def _verified(
    cfg: Settings, checkout: Path, target: PurePosixPath, sha: str, repo: str, pull_output: str = ""
) -> PulledInput:
    """Existence and hash checks that do not trust `dvc pull`'s exit code."""
    path = checkout / target
    record = find_record(checkout, target)
    where = f"{scrub(repo)} at {cfg.data.rev} ({sha[:12]})"

    def fail(what: str, fix: str) -> DataPullError:
        err = DataPullError(what, where=where, fix=fix)
        err.retryable = False
        return err

    if record is None:
        raise fail(
            f"{target} is not tracked by DVC: no .dvc file or dvc.lock output records it",
            "pin a revision where the input is `dvc add`ed or produced by a stage, or fix "
            "data.path (relative to the repo root)",
        )
    if record.md5.endswith(".dir"):  # `dvc pull` did not even bring the directory's listing
        detail = f"; dvc said: {pull_output}" if pull_output else ""
        raise fail(
            f"`dvc pull` finished but {target} is missing: the listing of {record.source} "
            f"(md5 {record.md5}) is not in the cache (not in the remote?)" + detail,
            "`dvc push` the data for this revision from the machine that has it in its cache",
        )
    if cfg.data.md5 and cfg.data.md5 != record.md5:
        raise fail(
            f"data.md5 pins {cfg.data.md5}, but {record.source} records md5 {record.md5} "
            f"for {target}",
            "update data.md5 or data.rev so they name the same version",
        )
    if not path.is_file():
        detail = f"; dvc said: {pull_output}" if pull_output else ""
        raise fail(
            f"`dvc pull` finished but {target} is missing (md5 {record.md5} not in the remote?)"
            + detail,
            "`dvc push` the data for this revision from the machine that has it in its cache",
        )
    actual = file_md5(path, record.algorithm)
    if actual != record.md5:
        raise fail(
            f"pulled {target} has md5 {actual}, but {record.source} records {record.md5}: "
            "the object in the DVC remote is corrupted or was overwritten",
            "re-push the correct data (`dvc push --force`), or enable `dvc remote modify "
            "<remote> verify true` to catch it at pull time",
        )
    return PulledInput(path=path, git_rev=sha, md5=actual, repo=repo, recorded_in=record.source)


@contextmanager
def _locked(lock_path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Exclusive lock across processes and threads (each call opens its own file)."""
    with open(lock_path, "a") as fh:
        deadline, waited = time.monotonic() + timeout_s, False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DataPullError(
                        f"another pull held {lock_path} for over {timeout_s:.0f} s",
                        fix="check for a hung git/dvc process on this machine",
                    ) from None
                if not waited:
                    log.info("waiting for another pull in the same workspace (%s)", lock_path)
                    waited = True
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _workspace_name(repo: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(repo.rstrip("/")).stem or "repo")[:40]
    return f"{stem}-{hashlib.sha256(repo.encode()).hexdigest()[:10]}"


def _target(cfg: Settings) -> PurePosixPath:
    if not inside(cfg.data.path, cfg.root):
        raise ConfigError(
            f"data.path {cfg.data.path} is outside the project folder {cfg.root}",
            fix="with data.rev set, data.path must be relative to the DVC repo's root",
        )
    return relative(cfg.data.path, cfg.root)
