"""Fetch the input at its pinned git revision through DVC, and prove it is the recorded version.

`dvc pull` has been seen to exit 0 with files missing, and with a remote whose `verify` is off
(the default for S3) it copies a corrupted object into the workspace without a word. So the exit
code is never trusted: after the pull the file must exist and its md5 must equal what the pinned
revision's `.dvc` file or `dvc.lock` records (and `data.md5` when the params pin one). Only then
is the input handed to scoring, together with the full git sha and md5 for the run manifest.

DVC takes a lock per workspace and fails if two commands meet there, so every clone/pull in one
workspace runs under a file lock (`fcntl.flock`, released by the kernel if the process dies).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from pipelines.config import Settings
from pipelines.errors import ConfigError, DataPullError, InputDataError

log = logging.getLogger(__name__)

GIT_TIMEOUT_S = 600.0
DVC_TIMEOUT_S = 3600.0
LOCK_TIMEOUT_S = 2 * 3600.0
KEEP_CHECKOUTS = 3  # verified checkouts kept per repo, most recently used first
_USERINFO = re.compile(r"(\w+://)[^/@\s]+@")
# What DVC prints when the remote refuses the credentials (S3 answers a HEAD with a bare 403).
_AUTH_FAILURE = re.compile(
    r"\(403\)|\bForbidden\b|AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|ExpiredToken|"
    r"InvalidToken|Unable to locate credentials|NoCredentialsError"
)


@dataclass(frozen=True)
class PulledInput:
    """The input a run reads, and exactly which version it is."""

    path: Path
    git_rev: str | None  # full commit sha; None if the input is not in a git repo
    md5: str  # the file's md5 (DVC's hash; `md5-dos2unix` for files added by DVC 2)
    repo: str | None = None  # where it was pulled from; None for the working tree
    recorded_in: str | None = None  # the .dvc / dvc.lock that records `md5`, relative to repo

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


@dataclass(frozen=True)
class _Record:
    md5: str
    algorithm: str  # "md5", or "md5-dos2unix" for legacy DVC 2 outputs
    source: str


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
    Without `data.rev`: the working-tree file, HEAD of `cfg.root`, and the file's md5 (a
    warning if it differs from what DVC records, an error if it differs from `data.md5`).
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
        checkout, sha = _clone_at(repo, cfg.data.rev, workspace, run_env)
        verified_marker = workspace / f"{sha}.verified"  # outside the checkout: keeps it clean
        if verified_marker.exists() and (checkout / target).is_file():
            try:
                pulled = _verified(cfg, checkout, target, sha, repo)
                _mark_used(verified_marker, keep_checkouts)
                return pulled
            except DataPullError as exc:
                log.warning("cached checkout failed verification, pulling again: %s", exc)
        verified_marker.unlink(missing_ok=True)
        dvc = _dvc_command()
        result = _run([*dvc, "pull", "--force", str(target)], checkout, run_env, timeout_s)
        if result.returncode != 0:
            shutil.rmtree(checkout, ignore_errors=True)
            err = DataPullError(
                f"`dvc pull {target}` at {cfg.data.rev} ({sha[:12]}) failed with exit code "
                f"{result.returncode}: {_tail(result)}",
                where=_scrub(repo),
                fix="check the DVC remote (its URL/endpointurl, credentials in the environment) "
                "and that the data was `dvc push`ed for this revision",
            )
            # Refused credentials: a retry with the same ones cannot succeed, so fail fast.
            err.retryable = not _AUTH_FAILURE.search(f"{result.stdout}\n{result.stderr}")
            raise err
        try:
            pulled = _verified(cfg, checkout, target, sha, repo, pull_output=_tail(result))
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


def _working_tree_input(cfg: Settings) -> PulledInput:
    path = cfg.data.path
    if not path.is_file():
        raise InputDataError(
            f"input file {path} not found",
            where="data.path",
            fix="run `dvc pull` (or `dvc repro generate`), fix data.path, or pin data.rev",
        )
    git_rev: str | None = None
    if shutil.which("git"):
        result = _run(["git", "rev-parse", "HEAD"], cfg.root, None, GIT_TIMEOUT_S, check=False)
        git_rev = result.stdout.strip() if result.returncode == 0 else None
    record = _find_record(cfg.root, _relative(path, cfg.root)) if _inside(path, cfg.root) else None
    if record and record.md5.endswith(".dir"):  # its directory's listing is not in the cache
        record = None
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
        git_rev=git_rev,
        md5=md5,
        recorded_in=record.source if record and record.md5 == md5 else None,
    )


def _verified(
    cfg: Settings, checkout: Path, target: PurePosixPath, sha: str, repo: str, pull_output: str = ""
) -> PulledInput:
    """Existence and hash checks that do not trust `dvc pull`'s exit code."""
    path = checkout / target
    record = _find_record(checkout, target)
    where = f"{_scrub(repo)} at {cfg.data.rev} ({sha[:12]})"

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


# -- git and the workspace -------------------------------------------------------------------


def _clone_at(repo: str, rev: str, workspace: Path, env: dict[str, str]) -> tuple[Path, str]:
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
        result = _run(
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
        where=_scrub(repo),
        fix="set data.rev to a commit sha, tag or branch that exists in the repo (pushed)",
    )
    err.retryable = False
    raise err


def _clean_checkout(checkout: Path, sha: str, env: dict[str, str]) -> bool:
    head = _run(["git", "rev-parse", "HEAD"], checkout, env, GIT_TIMEOUT_S, check=False)
    status = _run(["git", "status", "--porcelain"], checkout, env, GIT_TIMEOUT_S, check=False)
    return head.stdout.strip() == sha and status.returncode == 0 and not status.stdout.strip()


def _git(args: Sequence[str], cwd: Path, env: dict[str, str], repo: str) -> None:
    result = _run(["git", *args], cwd, env, GIT_TIMEOUT_S)
    if result.returncode != 0:
        raise DataPullError(
            f"`git {args[0]}` failed with exit code {result.returncode}: {_tail(result)}",
            where=_scrub(repo),
            fix="check data.repo (URL or path) and that this machine may read it",
        )


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


# -- what DVC records --------------------------------------------------------------------------


def _find_record(repo_root: Path, target: PurePosixPath) -> _Record | None:
    """The md5 a `.dvc` file or `dvc.lock` records for `target` (a file, maybe in a dir output).

    Looked up where DVC keeps them: `<path>.dvc` of the file or of a parent directory, and the
    `dvc.lock` beside any `dvc.yaml` from the repo root down to the file's folder.
    """
    candidates: list[Path] = []
    parents = [target, *[p for p in target.parents if p != PurePosixPath(".")]]
    candidates += [repo_root / f"{p}.dvc" for p in parents]
    candidates += [repo_root / p / "dvc.lock" for p in [PurePosixPath("."), *target.parents]]
    for meta in dict.fromkeys(candidates):
        if not meta.is_file():
            continue
        for out_path, out in _outs(meta):
            out_rel = _normalize(meta.parent.relative_to(repo_root) / out_path)
            record = _match(repo_root, meta, out_rel, out, target)
            if record:
                return record
    return None


def _outs(meta: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        doc = yaml.safe_load(meta.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DataPullError(f"cannot read {meta.name}: {exc}", where=str(meta)) from None
    if meta.name == "dvc.lock":
        outs = [o for stage in (doc.get("stages") or {}).values() for o in stage.get("outs") or []]
    else:
        outs = doc.get("outs") or []
    for out in outs:
        if isinstance(out, dict) and out.get("path") and out.get("md5"):
            yield str(out["path"]), out


def _match(
    repo_root: Path, meta: Path, out_rel: PurePosixPath, out: dict[str, Any], target: PurePosixPath
) -> _Record | None:
    algorithm = "md5" if out.get("hash") == "md5" else "md5-dos2unix"
    source = str(meta.relative_to(repo_root))
    md5 = str(out["md5"])
    if out_rel == target and not md5.endswith(".dir"):
        return _Record(md5, algorithm, source)
    if md5.endswith(".dir") and out_rel in target.parents:
        relpath = str(target.relative_to(out_rel))
        listing = _dir_listing(repo_root, md5, algorithm)
        if not listing:  # tracked, but the directory's listing is not in the cache (not pulled)
            return _Record(md5, algorithm, f"{source} ({out_rel}/)")
        for entry in listing:
            if entry.get("relpath") == relpath and entry.get("md5"):
                return _Record(str(entry["md5"]), algorithm, f"{source} ({out_rel}/)")
    return None


def _dir_listing(repo_root: Path, md5: str, algorithm: str) -> list[dict[str, Any]]:
    """A directory output's file list: the `.dir` object in the repo's DVC cache, once pulled."""
    cache = repo_root / ".dvc" / "cache"
    obj = (cache / "files" / "md5" if algorithm == "md5" else cache) / md5[:2] / md5[2:]
    try:
        listing = json.loads(obj.read_text())
    except (OSError, ValueError):
        return []
    return listing if isinstance(listing, list) else []


def file_md5(path: Path, algorithm: str = "md5") -> str:
    """The hash DVC records for a file: plain md5, or DVC 2's md5 of CRLF-normalised text."""
    if algorithm == "md5-dos2unix":
        from dvc_data.hashfile.hash import file_md5 as dvc_file_md5

        return str(dvc_file_md5(str(path), name="md5-dos2unix"))
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# -- subprocesses ------------------------------------------------------------------------------


def _dvc_command() -> list[str]:
    beside = Path(sys.executable).with_name("dvc")
    found = str(beside) if beside.exists() else shutil.which("dvc")
    if not found:
        raise ConfigError(
            "the `dvc` command is not installed", fix="pip install 'dvc[s3]' in this environment"
        )
    return [found]


def _run(
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
            f"`{' '.join(_scrub(c) for c in cmd[:3])} ...` timed out after {timeout_s:.0f} s",
            where=str(cwd),
            fix="check the network path to the git/DVC remote; the task may be retried",
        ) from None
    result = subprocess.CompletedProcess(list(cmd), proc.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise DataPullError(f"`{cmd[0]}` failed: {_tail(result)}", where=str(cwd))
    return result


def _tail(result: subprocess.CompletedProcess[str], lines: int = 15) -> str:
    text = (result.stderr or "").strip() or (result.stdout or "").strip()
    return _scrub("\n".join(text.splitlines()[-lines:])) or "(no output)"


def _scrub(text: str) -> str:
    """Drop `user:password@` from URLs: a git or DVC URL may carry a token."""
    return _USERINFO.sub(r"\1***@", text)


# -- paths -------------------------------------------------------------------------------------


def _target(cfg: Settings) -> PurePosixPath:
    if not _inside(cfg.data.path, cfg.root):
        raise ConfigError(
            f"data.path {cfg.data.path} is outside the project folder {cfg.root}",
            fix="with data.rev set, data.path must be relative to the DVC repo's root",
        )
    return _relative(cfg.data.path, cfg.root)


def _inside(path: Path, root: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(Path(os.path.abspath(root)))


def _relative(path: Path, root: Path) -> PurePosixPath:
    return PurePosixPath(Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix())


def _normalize(path: Path | PurePosixPath) -> PurePosixPath:
    return PurePosixPath(os.path.normpath(path.as_posix()))
