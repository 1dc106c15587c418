"""SIGTERM as a clean stop: what Airflow, Kubernetes and `kill` send before they SIGKILL.

The CLI turns SIGTERM into `Terminated`, so the run's usual failure path removes its staging
and exits with one line. Between writing the manifest and returning, a stop is deferred: the
run is published by then and must not be reported as failed (`commit_shield`).

The exception alone is not enough: Python runs a signal handler wherever the main thread happens
to be, and an exception raised inside a `__del__`, a weakref or ctypes callback is printed as
"Exception ignored" and dropped (a CI run that was sent SIGTERM scored on and published). So the
handler also records the stop, and the run asks (`stop_if_asked`) after every batch and before
it commits.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)
_state = {"shielded": False, "pending": False, "asked": False}


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM). A BaseException, like KeyboardInterrupt, so
    that no `except Exception` on the way swallows it."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if _state["shielded"]:
        _state["pending"] = True
        log.warning("SIGTERM during the commit: finishing the commit first")
        return
    _state["asked"] = True
    raise Terminated("SIGTERM")


def install() -> None:
    """Turn SIGTERM into `Terminated` in this process (forked workers inherit it)."""
    reset()
    signal.signal(signal.SIGTERM, _on_sigterm)


def reset() -> None:
    """Forget a stop already asked for (a process that handled it and goes on: tests)."""
    _state.update(shielded=False, pending=False, asked=False)


def stop_if_asked() -> None:
    """Raise `Terminated` again if a SIGTERM came, in case its first one was dropped."""
    if _state["asked"]:
        raise Terminated("SIGTERM")


@contextmanager
def commit_shield() -> Iterator[None]:
    """Defer SIGTERM while a commit is being written; once written, the run stands. A stop
    asked for before it (whose exception was dropped) still stops the run unpublished."""
    stop_if_asked()
    previous = _state["shielded"]
    _state["shielded"] = True
    try:
        yield
    finally:
        _state["shielded"] = previous
        if _state["pending"] and not previous:
            _state["pending"] = False
            log.warning("SIGTERM arrived during the commit; the run is published, stopping now")
