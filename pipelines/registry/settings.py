"""`registry.*` in params.yaml: which MLflow registry `models:/` URIs are resolved against.

Pure pydantic (no other batchscore import) so `pipelines.config` can nest it without a cycle.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RegistrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str | None = Field(
        None,
        description="MLflow tracking/registry URI; null = sqlite:///<params folder>/mlflow.db; "
        "$MLFLOW_TRACKING_URI overrides",
    )
