"""Run one measurement as a separate process and watch it from outside.

Peak memory is measured two ways, both from the parent:

* `peak_rss_mb`: the largest *sum* of RSS over the whole process tree (the child and every
  descendant, e.g. the pipeline's worker processes), sampled with psutil every `interval` s.
  This is what the machine had to hold at once. Shared pages (libraries mapped by several
  workers) are counted once per process, so for a multi-process run it overstates a little.
* `peak_rss_single_mb`: the kernel's high-water mark of the largest single process in the tree
  (`ru_maxrss` from `wait4`, which includes every descendant the child waited for). Exact, never
  misses a spike between samples, but does not add processes up.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

MB = 1024 * 1024


@dataclass
class Measurement:
    """What the parent saw of one child process, plus the JSON the child reported."""

    exit_code: int
    process_wall_s: float
    peak_rss_mb: float
    peak_rss_single_mb: float
    samples: int
    process_cpu_s: float = 0.0
    started_at: float = 0.0  # epoch s, just before the child was started
    ended_at: float = 0.0  # epoch s, when it was seen to exit
    report: dict[str, Any] = field(default_factory=dict)
    stderr_tail: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.Error):  # exited between listing and reading
            total += p.memory_info().rss
    return total


def measure(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cpus: set[int] | None = None,
    interval: float = 0.05,
    timeout: float = 3600.0,
    cwd: Path | None = None,
    command: Sequence[str] | None = None,
) -> Measurement:
    """Run `python -m bench.variants ARGS --report FILE` and measure it.

    With `command`, that program instead, as it is (ARGS unused, no report): the start-up cells
    time the real `batchscore` console script, nothing of the bench in its process.
    `cpus` pins the child (and so everything it starts) to those CPUs, via sched_setaffinity
    before exec. The child writes its own timings to the report file; the parent adds wall time
    and peak memory.
    """
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        report = Path(tmp) / "report.json"
        errlog = Path(tmp) / "stderr.log"
        cmd = (
            list(command)
            if command
            else [sys.executable, "-m", "bench.variants", *args, "--report", str(report)]
        )

        def pin() -> None:
            if cpus:
                os.sched_setaffinity(0, cpus)

        with open(errlog, "wb") as err:
            started_at, start = time.time(), time.perf_counter()
            child = subprocess.Popen(
                cmd,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                cwd=cwd,
                preexec_fn=pin if cpus else None,
            )
            proc = psutil.Process(child.pid)
            peak = samples = 0
            status = usage = None
            deadline = start + timeout
            while True:
                pid, status, usage = os.wait4(child.pid, os.WNOHANG)
                if pid:
                    break
                peak = max(peak, _tree_rss(proc))
                samples += 1
                if time.perf_counter() > deadline:
                    for p in [*proc.children(recursive=True), proc]:
                        with contextlib.suppress(psutil.Error):
                            p.kill()
                    _, status, usage = os.wait4(child.pid, 0)
                    break
                time.sleep(interval)
            wall, ended_at = time.perf_counter() - start, time.time()
            child.returncode = os.waitstatus_to_exitcode(status)
        single = usage.ru_maxrss / 1024 if usage else 0.0  # ru_maxrss is in KiB on Linux
        cpu = usage.ru_utime + usage.ru_stime if usage else 0.0  # its reaped descendants too
        data = json.loads(report.read_text()) if report.is_file() else {}
        tail = errlog.read_text(errors="replace")[-3000:]
    return Measurement(
        exit_code=child.returncode,
        process_wall_s=round(wall, 3),
        peak_rss_mb=round(max(peak / MB, single), 1),
        peak_rss_single_mb=round(single, 1),
        samples=samples,
        process_cpu_s=round(cpu, 3),
        started_at=started_at,
        ended_at=ended_at,
        report=data,
        stderr_tail=tail if child.returncode else "",
    )
