"""Errors a user can act on.

Every failure a user can cause (bad params, missing files, schema drift, a tampered model, a failed
quality gate) is raised as a `BatchscoreError` whose message says what was wrong, where, and what
to do. The CLI prints that message alone; Airflow tasks turn the non-retryable ones into
`AirflowFailException`.
"""

from __future__ import annotations


class BatchscoreError(Exception):
    """Base class: a problem the user can fix; `retryable` tells orchestrators whether to retry."""

    retryable = False

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what, self.where, self.fix = what, where, fix
        parts = [what]
        if where:
            parts.append(f"(in {where})")
        msg = " ".join(parts)
        if fix:
            msg += f". Fix: {fix}"
        super().__init__(msg)


class ConfigError(BatchscoreError):
    """A param is missing, mistyped or out of range."""


class InputDataError(BatchscoreError):
    """The input file is missing, empty, corrupt or unreadable."""


class InputChangedError(InputDataError):
    """The input's bytes are not the ones the run planned (modified, grown or deleted since)."""

    retryable = True


class SchemaMismatchError(BatchscoreError):
    """The input's columns do not match what the model expects."""


class ModelIntegrityError(BatchscoreError):
    """The model artifact is not the pinned one, or is unsafe to load."""


class QualityGateError(BatchscoreError):
    """A data-quality expectation failed the run (table-level, or too many rows quarantined)."""


class PublishConflictError(BatchscoreError):
    """The run key is already published with different output."""


class StorageError(BatchscoreError):
    """The object store failed in a way that retries did not fix."""

    retryable = True


class StagingLostError(StorageError):
    """Staged parts vanished before the commit: retrying the same attempt cannot bring them
    back; a rerun of the run key scores them again."""

    retryable = False


class LocalWriteError(StorageError):
    """A local folder refused a write (disk full, read-only, no permission): staging is removed
    rather than kept for a resume, since it takes the space the rerun needs."""


class WorkerLostError(BatchscoreError):
    """A worker process died mid-run (killed, out of memory): the finished shards are kept."""

    retryable = True


class DataPullError(BatchscoreError):
    """The versioned input could not be fetched or did not match its recorded hash."""

    retryable = True
