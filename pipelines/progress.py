"""Progress for a run: its stage (plan → score → publish), rows done / total, rows/s and ETA.

Three modes (`score.progress`): `bar` is a rich live display on stderr, redrawn 4 times a second,
with log lines printed above it while it runs; `log` is one plain log line every `log_every`
seconds (Airflow task logs, CI, `dvc repro` piped to a file); `off` prints nothing. `auto` picks
`bar` on a terminal and `log` elsewhere. rich is imported only when a display is drawn.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any, TextIO

log = logging.getLogger("batchscore.progress")
MAX_SHARD_LINES = 8  # more shards than this: only the running ones get a line of their own


class Progress:
    """Thread-safe row counter and stage tracker that reports rows done, rows/s and ETA.

    Callers: `stage(name, total=, shards=)` when the run moves on, `update(rows, shard=)` as rows
    are done (from any thread), `close()` at the end (or use it as a context manager).
    """

    def __init__(
        self,
        total: int | None = None,
        mode: str = "auto",
        label: str = "scored",
        log_every: float = 10.0,
        stream: TextIO | None = None,
        console: Any = None,
        stages: Sequence[str] = (),
        refresh_per_second: float = 4.0,
    ) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if _interactive(console, self.stream) else "log"
        self.total, self.mode, self.label, self.log_every = total, mode, label, log_every
        self.done = 0
        self.start = time.perf_counter()  # rows/s counts from the stage the first rows came in
        self.refreshes = 0  # frames the display drew
        self.stages: list[tuple[str, float]] = []  # (name, when it began)
        self.expected = tuple(stages)  # the stages still to come are shown dimmed
        self.shard_rows: list[int | None] = []
        self.shard_done: list[int] = []
        self._rows_end: float | None = None  # when the rows' stage ended
        self._last = float("-inf")  # the first rows are logged at once
        self._logged = -1
        self._lock = threading.Lock()  # the counters
        self._display = threading.RLock()  # starting, pausing and ending the display
        self._console, self._live, self._routed = console, None, []
        self._hold = self._closed = False
        self._refresh = refresh_per_second

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(failed=kind is not None)

    def stage(
        self, name: str, total: int | None = None, shards: Sequence[int | None] | None = None
    ) -> None:
        """The run enters stage `name`; `total` and `shards` (rows per shard) if it counts rows."""
        now = time.perf_counter()
        with self._lock:
            if self.done and self._rows_end is None:
                self._rows_end = now
            if not self.done:
                self.start = now
            self.stages.append((name, now))
            if total is not None:
                self.total = total
            if shards is not None:
                self.shard_rows, self.shard_done = list(shards), [0] * len(shards)
        if self.mode == "log":
            if self.done and self._logged != self.done:  # the rows' last line, before the stage
                self._log_line(now)
            detail = f" ({total:,} rows" if total is not None else ""
            if shards is not None and len(shards) > 1:
                detail += f", {len(shards)} shards" if detail else f" ({len(shards)} shards"
            log.info("stage: %s%s", name, detail + ")" if detail else "")
        elif self.mode == "bar":
            self._show()

    def update(self, rows: int, shard: int | None = None) -> None:
        """`rows` more rows are done (of shard number `shard`, if known)."""
        with self._lock:
            self.done += rows
            if shard is not None and 0 <= shard < len(self.shard_done):
                self.shard_done[shard] += rows
            now = time.perf_counter()
            due = now - self._last >= self.log_every or self._finished
            if self.mode == "log" and due:
                self._log_line(now)
        if self.mode == "bar" and self._live is None and not (self._hold or self._closed):
            self._show()  # rows before any stage: the display starts with them

    def _log_line(self, now: float) -> None:
        self._last, self._logged = now, self.done
        log.info(self.line())

    @property
    def _finished(self) -> bool:
        return self.total is not None and self.done >= self.total

    @property
    def current(self) -> str | None:
        """The stage the run is in."""
        return self.stages[-1][0] if self.stages else None

    def rate(self) -> float:
        """Rows per second over the time rows were coming in."""
        elapsed = (self._rows_end or time.perf_counter()) - self.start
        return self.done / max(elapsed, 1e-9)

    def line(self) -> str:
        """Rows done / total, rows/s and ETA as one plain line."""
        rate = self.rate()
        text = f"{self.label} {self.done:,}"
        if self.total:
            pct = 100 * self.done / self.total
            eta = max(self.total - self.done, 0) / rate if rate else 0.0
            text += f"/{self.total:,} rows ({pct:4.1f}%), {rate:,.0f} rows/s, ETA {eta:4.0f}s"
        else:
            text += f" rows, {rate:,.0f} rows/s"
        return text

    def echo(self, text: str) -> None:
        """Print a line of output (a worker's log line) above the display, or to the stream."""
        if self.mode == "off":
            return
        with self._display:
            if self._live is not None:
                from rich.text import Text

                self._live.console.print(Text(text), soft_wrap=True, highlight=False)
                return
        self.stream.write(text + "\n")
        self.stream.flush()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No display (and no display thread) inside: worker processes are forked there."""
        with self._display:
            running, self._hold = self._live is not None, True
            self._hide()
        try:
            yield
        finally:
            with self._display:
                self._hold = False
                if running:
                    self._show()

    def close(self, failed: bool = False) -> None:
        """End the display (a last line says how the run went) or log the last line."""
        counted = self.done or self.total is not None  # not a run that stopped in its plan
        if self.mode == "log" and not self._closed and counted and self._logged != self.done:
            self._log_line(time.perf_counter())
        if self.mode == "bar" and not self._closed:
            with _sigterm_deferred(), self._display:
                self._hide()
                self._hold = True
                self._get_console().print(self._summary(failed), soft_wrap=True, highlight=False)
        self._closed = True

    def _get_console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stream, force_terminal=True)
        return self._console

    def _show(self) -> None:
        """Start the live display and route log lines through it."""
        with _sigterm_deferred(), self._display:
            if self._live is not None or self._hold or self._closed:
                return
            from rich.live import Live

            console = self._get_console()
            live = Live(
                self,
                console=console,
                refresh_per_second=self._refresh,
                transient=True,  # paused() erases it; close() prints a last line instead
                redirect_stdout=_isatty(sys.stdout),  # piped stdout stays stdout
                redirect_stderr=True,
            )
            live.start(refresh=True)
            self._live, self._routed = live, _route_logging(console)

    def _hide(self) -> None:
        """Stop the live display (erasing it), its thread, and the routing of log lines."""
        with _sigterm_deferred(), self._display:
            live, self._live = self._live, None
            if live is None:
                return
            thread = getattr(live, "_refresh_thread", None)
            try:
                live.stop()
            finally:
                for handler, stream in self._routed:
                    handler.setStream(stream)
                self._routed = []
            if thread is not None:
                thread.join(timeout=2)

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        """One frame: the stage and the elapsed time, overall rows, and a line per shard."""
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        with self._lock:
            self.refreshes += 1
            done, total = self.done, self.total
            shards = list(zip(self.shard_rows, self.shard_done, strict=True))
            line = self.line()
        yield self._header()
        if not (done or total or shards):
            return
        grid = Table.grid(padding=(0, 1))
        grid.add_row(f"  {self.label}", ProgressBar(total, done, width=30), line.split(" ", 1)[1])
        many = len(shards) > MAX_SHARD_LINES
        for i, (rows, got) in enumerate(shards if len(shards) > 1 else []):
            if many and (not got or _complete(rows, got)):
                continue  # with many shards, only the running ones get a line
            of = f"{got:,}/{rows:,} rows" if rows is not None else f"{got:,} rows"
            grid.add_row(f"    shard {i + 1}/{len(shards)}", ProgressBar(rows, got, width=30), of)
        yield grid
        if len(shards) > 1:
            finished = sum(_complete(rows, got) for rows, got in shards)
            running = sum(bool(got) and not _complete(rows, got) for rows, got in shards)
            yield Text(f"    shards: {finished} done, {running} running, {len(shards)} in all")

    def _header(self) -> Any:
        """`stage: score | elapsed 3.2s | plan 1.0s ✓ → score 2.2s → publish`."""
        from rich.text import Text

        now = time.perf_counter()
        text = Text.assemble("stage: ", (self.current or "starting", "bold cyan"))
        text.append(f" | elapsed {_duration(now - self.start_time)} | ")
        seen = [name for name, _ in self.stages]
        for k, (name, took) in enumerate(self._timings(now)):
            last = k == len(self.stages) - 1
            text.append(f"{name} {_duration(took)}", "bold" if last else "green")
            text.append("" if last else " ✓", "green")
            text.append(" → ")
        for name in self.expected:
            if name not in seen:
                text.append(name, "dim")
                text.append(" → ")
        text.right_crop(3)
        return text

    def _timings(self, now: float) -> list[tuple[str, float]]:
        """Each stage so far and how long it took (the current one: so far)."""
        ends = [t for _, t in self.stages[1:]] + [now]
        return [(name, end - began) for (name, began), end in zip(self.stages, ends, strict=True)]

    @property
    def start_time(self) -> float:
        """When the first stage began (or the counter was made)."""
        return self.stages[0][1] if self.stages else self.start

    def _summary(self, failed: bool) -> str:
        """The last line on a terminal: where the run ended, its stages' times, rows and rate."""
        now = time.perf_counter()
        trail = " → ".join(f"{name} {_duration(took)}" for name, took in self._timings(now))
        took = _duration(now - self.start_time)
        text = f"stopped in {self.current} after {took}" if failed else f"done in {took}"
        text += f": {trail}" if trail else ""
        if self.done or self.total:
            of = f"/{self.total:,}" if self.total else ""
            text += f"; {self.label} {self.done:,}{of} rows, {self.rate():,.0f} rows/s"
        return text


def _complete(rows: int | None, got: int) -> bool:
    return rows is not None and got >= rows


def _duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no such method, or closed
        return False


def _interactive(console: Any, stream: TextIO) -> bool:
    """A terminal that can redraw: a tty (or the given console's), and not TERM=dumb."""
    if console is not None:
        return bool(console.is_terminal and not console.is_dumb_terminal)
    return _isatty(stream) and os.environ.get("TERM", "").lower() not in ("dumb", "unknown")


class _ConsoleLines(io.TextIOBase):
    """A stream for logging handlers: each whole line is printed above the live display."""

    def __init__(self, console: Any) -> None:
        self._console, self._buffer, self._lock = console, "", threading.Lock()

    def write(self, text: str) -> int:
        from rich.text import Text

        with self._lock:
            *lines, self._buffer = (self._buffer + text).split("\n")
        for line in lines:
            self._console.print(Text(line), soft_wrap=True, highlight=False)
        return len(text)


def _route_logging(console: Any) -> list[tuple[logging.StreamHandler, Any]]:
    """Point every logging handler that writes to the console's terminal at the console."""
    sink = _ConsoleLines(console)
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    routed = []
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            stream = getattr(handler, "stream", None)
            if (
                isinstance(handler, logging.StreamHandler)
                and not isinstance(handler, logging.FileHandler)
                and _same_file(stream, console.file)
            ):
                routed.append((handler, handler.setStream(sink)))
    return routed


def _same_file(a: Any, b: Any) -> bool:
    a, b = getattr(a, "rich_proxied_file", a), getattr(b, "rich_proxied_file", b)
    if a is b:
        return True
    try:
        return os.path.samestat(os.fstat(a.fileno()), os.fstat(b.fileno()))
    except (AttributeError, OSError, ValueError):  # StringIO, closed, no descriptor
        return False


@contextmanager
def _sigterm_deferred() -> Iterator[None]:
    """Hold a SIGTERM until the block is done, then deliver it: the display ends whole."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[FrameType | None] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: caught.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        if caught and callable(previous):
            previous(signal.SIGTERM, caught[0])
        elif caught and previous in (signal.SIG_DFL, None):
            signal.raise_signal(signal.SIGTERM)
