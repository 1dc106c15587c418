"""The local process pool: one worker process per core scores shards, each pinned to its CPU.

Workers are forked where the OS can, so they inherit the imported libraries and the verified
model instead of loading them again (bench/README.md). Progress comes back over a queue:
`(shard, rows)` as rows are done and, while a terminal display runs, `("text", line)` for each
line a worker logs, so the parent prints it above the display instead of through it.
"""

from __future__ import annotations

import io
import logging
import multiprocessing as mp
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from queue import Empty
from typing import Any

from pipelines.config import Settings
from pipelines.errors import WorkerLostError
from pipelines.progress import Progress
from pipelines.run.plan import RunPlan, ShardResult, uses_gx
from pipelines.run.shard import score_shard
from pipelines.termination import stop_if_asked

_progress_queue: Any = None  # set in each worker by `init_worker`
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def score_in_pool(
    cfg: Settings,
    plan: RunPlan,
    workers: int,
    progress: Progress,
    after_fork: Callable[[], None] | None = None,
) -> list[ShardResult]:
    """Score every shard of the plan on `workers` processes; the first failure stops them all.

    `after_fork` runs in the parent once every worker is forked (work that can overlap theirs)."""
    # fork: workers inherit the imported libraries (sklearn, pyarrow, GX cost seconds of CPU to
    # import) and the verified model, instead of loading them again; spawn where there is no fork.
    method = start_method()
    ctx = mp.get_context(method)
    if method == "fork" and uses_gx(cfg) and cfg.validation.engine == "gx":
        # GX on every batch: imported once, here, for every worker (the fast engine's workers
        # never import it: the run audits their samples when it finishes)
        import great_expectations  # noqa: F401
    queue = ctx.Queue()
    slots = ctx.Value("i", 0) if cfg.score.pin_workers else None
    # Spawned children read these when their OpenMP/BLAS runtimes load: one thread per process.
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update(dict.fromkeys(_THREAD_VARS, "1"))

    reader = ProgressReader(queue, progress)
    route = progress.mode == "bar"  # a display runs: workers' log lines go through the parent
    try:
        with ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=init_worker, initargs=(queue, slots, route)
        ) as pool:
            try:
                with progress.paused():  # the display's thread stops while the workers fork
                    futures = [pool.submit(_worker, cfg, plan, i) for i in range(len(plan.shards))]
                reader.start()  # only once the workers exist: never fork with a live thread of ours
                if after_fork is not None:
                    after_fork()
                results = _results(futures)
            except BrokenProcessPool:  # a worker was killed (SIGKILL, the OOM killer)
                reader.abandon()
                _stop(pool)
                raise WorkerLostError(
                    "a worker process died while scoring (killed, or out of memory?)",
                    fix="rerun the same command: the shards that finished are staged and "
                    "verified, and are reused; if memory ran out, lower score.chunk_size or "
                    "score.workers",
                ) from None
            except BaseException:  # a failed shard, or SIGTERM: stop the others now
                reader.abandon()
                _stop(pool)
                raise
        return results
    finally:
        _restore(saved)
        reader.close()


class ProgressReader:
    """The parent's thread that delivers the workers' messages until the pool is over.

    It is stopped by an event, never by a sentinel put on the queue: a worker killed inside a put
    can leave the queue's shared write lock held for ever, and the parent's put would then block
    its feeder thread, which the interpreter joins at exit (a run that said it had stopped, and
    hung). After a clean end every worker has exited, so all they sent is in the pipe to drain.
    """

    def __init__(self, queue: Any, progress: Progress) -> None:
        self._queue, self._progress = queue, progress
        self._done, self._abandoned = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="progress-reader")

    def start(self) -> None:
        self._thread.start()

    def abandon(self) -> None:
        """The workers are being killed: what is left in the pipe may be torn; drop it."""
        self._abandoned.set()

    def close(self) -> None:
        """Deliver what is left (after a clean end) and stop the thread."""
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1 if self._abandoned.is_set() else 30)

    def _run(self) -> None:
        while not self._abandoned.is_set():
            try:
                message = self._queue.get(timeout=0.1)
            except Empty:
                if self._done.is_set():
                    return
                continue
            except Exception:  # a torn message from a killed worker
                if self._abandoned.is_set():
                    return
                raise
            deliver(self._progress, message)


def start_method() -> str:
    """How the pool starts its workers: fork where the OS can (they inherit what is imported)."""
    return "fork" if "fork" in mp.get_all_start_methods() else "spawn"


def deliver(progress: Progress, message: Any) -> None:
    """One message from a worker: `(shard, rows)`, `("text", line)`, or rows (an int)."""
    if isinstance(message, int):
        progress.update(message)
    elif isinstance(message[0], str):
        progress.echo(message[1])
    else:
        progress.update(message[1], shard=message[0])


def init_worker(queue: Any, slots: Any, route_output: bool = False) -> None:
    """Set up one pool worker: single-threaded BLAS/OpenMP, progress queue, own CPU if pinned;
    with `route_output`, its stderr and log lines go to the parent over the queue."""
    global _progress_queue
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one process per core; BLAS/OpenMP threads would oversubscribe
    _progress_queue = queue
    if route_output and queue is not None:
        route_to_queue(queue)
    if slots is not None:
        pin_to_own_cpu(slots)


class QueueLines(io.TextIOBase):
    """A text stream that sends each whole line over the queue as `("text", line)`."""

    def __init__(self, queue: Any) -> None:
        self._queue, self._buffer, self._lock = queue, "", threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            *lines, self._buffer = (self._buffer + text).split("\n")
        for line in lines:
            self._queue.put(("text", line))
        return len(text)


def route_to_queue(queue: Any) -> QueueLines:
    """Send this process's stderr, and the log handlers writing to it, over the queue."""
    sink = QueueLines(queue)
    for handler in logging.getLogger().handlers:
        if (
            isinstance(handler, logging.StreamHandler)
            and not isinstance(handler, logging.FileHandler)
            and handler.stream in (sys.stderr, sys.__stderr__)
        ):
            handler.setStream(sink)
    sys.stderr = sink
    return sink


def pin_to_own_cpu(slots: Any) -> int | None:
    """Pin this worker to the next CPU of the pool's allowed set; returns the CPU.

    Left to the scheduler, two busy workers on two cores keep trading places with each other and
    with the parent, and every move starts the model's trees over in a cold L1/L2 cache: measured
    on 2 cores, the same work took 12% more CPU (bench/README.md). `slots` is a shared counter.
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    with slots.get_lock():
        k = slots.value
        slots.value += 1
    cpu = cpus[k % len(cpus)]
    os.sched_setaffinity(0, {cpu})
    return cpu


def _worker(cfg: Settings, plan: RunPlan, index: int) -> ShardResult:
    on_rows = partial(_report, _progress_queue, index) if _progress_queue else None
    return score_shard(cfg, plan, index, on_rows)


def _results(futures: list[Future[ShardResult]]) -> list[ShardResult]:
    """Every shard's result, in shard order; a failure raises as soon as it happens, not once the
    shards before it are done (their workers are stopped then, not waited for), and so does a
    SIGTERM whose exception was dropped while the parent waited (termination.py)."""
    pending: set[Future[ShardResult]] = set(futures)
    while pending:
        done, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
        for future in done:
            future.result()
        stop_if_asked()
    return [f.result() for f in futures]


def _report(queue: Any, index: int, rows: int) -> None:
    queue.put((index, rows))


def _stop(pool: ProcessPoolExecutor) -> None:
    """Kill the workers and wait for them: dead before the caller discards the staging.

    SIGKILL, not SIGTERM: a worker turns SIGTERM into `Terminated` (inherited), which an idle
    worker prints as a traceback and one blocked sending its result (bigger than the pipe's
    buffer, once a sibling died and nobody reads) turns into another send, hanging the pool's
    shutdown for ever. What a killed worker leaves is staging without a record: never reused.
    """
    children = mp.active_children()
    for child in children:
        child.kill()
    for child in children:
        child.join(timeout=10)
    pool.shutdown(wait=False, cancel_futures=True)


def _restore(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
