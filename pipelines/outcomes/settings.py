"""`labels.*` in params.yaml: how delayed label deliveries are read and joined.

Pure pydantic (no other batchscore import) so `pipelines.config` can nest it without a cycle.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LabelsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id_column: str | None = Field(None, description="default: data.id_column")
    label_column: str = "label"
