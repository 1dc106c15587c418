"""A scoring process allocates Arrow memory from jemalloc (or the system), not mimalloc."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import sys
import pyarrow as pa
from pipelines.config import load_config
from pipelines.run.pipeline import run_pipeline
cfg = load_config(sys.argv[1], {"validation.enabled": False, "score.progress": "off"}, env={})
run_pipeline(cfg)
print(pa.default_memory_pool().backend_name)
"""


def _pool_after_a_run(params_file: Path, chosen: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(params_file)],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    )  # fmt: skip
    return out.stdout.split()[-1]


def test_a_run_scores_on_jemalloc_or_the_system_allocator(params_file: Path) -> None:
    # mimalloc (pyarrow's default) handed pages back between batches: 10% of a 1M-row run
    assert _pool_after_a_run(params_file, None) in {"jemalloc", "system"}


@pytest.mark.parametrize("chosen", ["mimalloc", "system"])
def test_a_pool_the_user_chose_is_kept(params_file: Path, chosen: str) -> None:
    assert _pool_after_a_run(params_file, chosen) == chosen
