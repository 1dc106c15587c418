"""`registry.*` in params.yaml: which MLflow registry `models:/` URIs are resolved against.

Pure pydantic (no other batchscore import) so `pipelines.config` can nest it without a cycle.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RegistrySettings(BaseModel):
    """Where the registry is and how patiently we talk to it.

    The URI precedence is MLflow's own: $MLFLOW_TRACKING_URI (and $MLFLOW_REGISTRY_URI for the
    registry, if set) over `uri`, over the embedded default beside params.yaml.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str | None = Field(
        None,
        description="MLflow tracking/registry URI; null = sqlite:///<params folder>/mlflow.db; "
        "$MLFLOW_TRACKING_URI overrides",
    )
    experiment: str = Field(
        "batchscore-registry",
        min_length=1,
        description="MLflow experiment that holds the runs carrying registered artifacts",
    )
    http_timeout_s: int = Field(
        30, ge=1, description="seconds per HTTP request to a tracking server (MLflow: 120)"
    )
    http_max_retries: int = Field(
        2, ge=0, le=10, description="retries of a failed HTTP request (MLflow: 7, minutes)"
    )
    lock_wait_s: float = Field(
        15.0, ge=0, description="how long an alias move waits for another client's move"
    )
    lock_stale_s: float = Field(
        300.0, gt=0, description="an alias-move lock older than this was left by a crash"
    )
