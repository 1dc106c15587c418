"""Progress for long runs: a live line on a terminal, plain log lines everywhere else."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

log = logging.getLogger("batchscore.progress")


class Progress:
    """Thread-safe row counter that reports rows done, rows/s and ETA.

    `mode` 'auto' draws a bar when stderr is a terminal and logs every `log_every` seconds
    otherwise (Airflow task logs, CI, `dvc repro` piped to a file).
    """

    def __init__(
        self,
        total: int | None,
        mode: str = "auto",
        label: str = "scored",
        log_every: float = 10.0,
        stream: TextIO | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "log"
        self.total, self.mode, self.label, self.log_every = total, mode, label, log_every
        self.done = 0
        self.start = time.perf_counter()
        self._last = 0.0
        self._logged = -1
        self._lock = threading.Lock()

    def update(self, rows: int) -> None:
        with self._lock:
            self.done += rows
            now = time.perf_counter()
            if self.mode == "bar" and now - self._last >= 0.2:
                self._last = now
                self.stream.write("\r" + self.line() + "\033[K")
                self.stream.flush()
            elif self.mode == "log" and (now - self._last >= self.log_every or self._finished):
                self._last, self._logged = now, self.done
                log.info(self.line())

    @property
    def _finished(self) -> bool:
        return self.total is not None and self.done >= self.total

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = self.done / elapsed
        text = f"{self.label} {self.done:,}"
        if self.total:
            pct = 100 * self.done / self.total
            eta = (self.total - self.done) / rate if rate else 0.0
            text += f"/{self.total:,} rows ({pct:4.1f}%), {rate:,.0f} rows/s, ETA {eta:4.0f}s"
        else:
            text += f" rows, {rate:,.0f} rows/s"
        return text

    def close(self) -> None:
        if self.mode == "bar":
            self.stream.write("\r" + self.line() + "\033[K\n")
            self.stream.flush()
        elif self.mode == "log" and self._logged != self.done:
            log.info(self.line())
