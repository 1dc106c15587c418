"""What can go wrong talking to the registry, as errors a user can act on."""

from __future__ import annotations

from pipelines.errors import BatchscoreError


class RegistryError(BatchscoreError):
    """The registry refused a request: an unknown name, version or alias, a bad argument."""


class RegistryUnavailableError(RegistryError):
    """The tracking server did not answer; a retry may work once it is back."""

    retryable = True


class AliasConflictError(RegistryError):
    """Another client moved (or is moving) the same alias; this move was not made."""


class UnsafeArtifactError(RegistryError):
    """The file to register is a pickle or holds types skops would not trust."""
