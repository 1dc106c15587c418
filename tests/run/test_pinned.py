"""A run deserializes its model once per process, and never a file whose bytes changed."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from pipelines.errors import ModelIntegrityError
from pipelines.run import pinned
from pipelines.run.pipeline import run_pipeline


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every deserialization (`load_model` call) from now on, with an empty per-process cache."""
    calls: list[Path] = []
    real = pinned.load_model

    def counted(path: Path, **kwargs: Any) -> Any:
        calls.append(path)
        return real(path, **kwargs)

    monkeypatch.setattr(pinned, "_models", {})
    monkeypatch.setattr(pinned, "load_model", counted)
    return calls


def test_a_run_of_three_shards_on_one_process_loads_its_model_once(
    make_cfg: Any, loads: list[Path]
) -> None:
    cfg = make_cfg(score__workers=1, score__shard_rows=2_000, validation__enabled=False)
    manifest = run_pipeline(cfg)
    assert manifest.shards == 3
    assert loads == [cfg.model.path]  # the plan's load; the shards reuse it


def test_a_pin_is_checked_on_the_cached_model_and_changed_bytes_are_loaded_again(
    make_cfg: Any, loads: list[Path], tmp_path: Path
) -> None:
    cfg = make_cfg()
    spec = pinned.champion_spec(cfg)
    model = pinned.load_spec(cfg, spec)
    assert pinned.load_spec(cfg, pinned.pinned(spec, model)) is model
    assert len(loads) == 1
    wrong = spec.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(ModelIntegrityError, match="refusing to load"):
        pinned.load_spec(cfg, wrong)
    # other bytes under the same path: loaded (and verified) again, never the cached model
    copy = tmp_path / "model.skops"
    shutil.copy(spec.path, copy)
    moved = spec.model_copy(update={"path": str(copy)})
    pinned.load_spec(cfg, moved)
    copy.write_bytes(copy.read_bytes() + b"\0")
    with pytest.raises(ModelIntegrityError, match="refusing to load"):
        pinned.load_spec(cfg, pinned.pinned(moved, model))
