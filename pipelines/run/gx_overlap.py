"""GX's own check of the suites, run in a thread of the parent while pool workers score.

Importing GX costs ~2.3 s of CPU, and the fast engine's run needs it only at the end (the audit)
and for GX's kwargs check of the suites. Done in the plan, that import held up every worker's
first row; with a pool the parent only waits while the workers score, so the import and the check
run then, on its otherwise idle core. A suite GX rejects still fails the run before anything is
published: after scoring, the staging is discarded (run/pipeline.py). One process (no pool) gains
nothing from overlapping, and checks before it scores, as the plan did.
"""

from __future__ import annotations

import threading

from pipelines.config import Settings
from pipelines.run.plan import run_suites, uses_gx
from pipelines.run.pool import start_method


def overlaps_gx_check(cfg: Settings) -> bool:
    """Whether this run checks its suites with GX while it scores: the fast engine with its audit,
    more than one worker, forked workers (spawned ones would import GX themselves)."""
    return (
        uses_gx(cfg)
        and cfg.validation.engine == "fast"
        and cfg.score.resolved_workers > 1
        and start_method() == "fork"
    )


class GxCheck:
    """GX's kwargs check of the run's suites: `start()` in a thread, `result()` waits and raises
    what the check raised (or runs it here, if it was never started)."""

    def __init__(self, cfg: Settings) -> None:
        self._cfg = cfg
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._done = False

    def start(self) -> None:
        """Run the check in a daemon thread (call it once the workers are forked)."""
        self._thread = threading.Thread(target=self._run, name="gx-check", daemon=True)
        self._thread.start()

    def result(self) -> None:
        if self._thread is None and not self._done:
            self._run()
        elif self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            run_suites(self._cfg, gx_check=True)
        except BaseException as exc:  # re-raised in the caller's thread by result()
            self._error = exc
        finally:
            self._done = True
