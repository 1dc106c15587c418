"""Where a model's card lives: beside the artifact, `model.skops` → `model.card.json`."""

from __future__ import annotations

from pathlib import Path


def card_path_for(model_path: Path) -> Path:
    """The default card path of an artifact (all suffixes go: `m.tar.skops` → `m.card.json`)."""
    return model_path.with_name(model_path.name.split(".")[0] + ".card.json")
