"""`alerts.*` in params.yaml: who is told when a run needs a person, and through which channel.

Pure pydantic (no other batchscore import) so `pipelines.config` can nest it without a cycle.
Secrets live in Airflow connections, never here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AlertsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    quarantine_warn_fraction: float = Field(0.01, ge=0, le=1)
