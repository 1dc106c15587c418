"""What a run says: one line per shard, one rate everywhere, no GX chatter, a link to its report."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.config import Settings
from pipelines.run.finalize import publish_run
from pipelines.run.pipeline import run_pipeline
from pipelines.run.plan import plan_run, rows_per_s
from pipelines.run.shard import score_shard
from tests.paths import ROOT

SHARD_LINE = re.compile(
    r"^shard (\d+): ([\d,]+) rows in, ([\d,]+) scored, ([\d,]+) quarantined, ([\d,]+) rows/s$"
)
GX_NOISE = ("great_expectations", "ephemeral docs site", "Loading 'datasources'")


def _n(text: str) -> int:
    return int(text.replace(",", ""))


def test_each_shard_logs_one_line_with_its_counts_and_rate(
    make_cfg: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    cfg = make_cfg(**{"score.shard_rows": 2_000, "validation.enabled": False})
    with caplog.at_level(logging.INFO, logger="pipelines.run.shard"):
        manifest = run_pipeline(cfg)
    lines = [r.getMessage() for r in caplog.records if r.name == "pipelines.run.shard"]
    found = [SHARD_LINE.match(line) for line in lines]
    assert all(found) and len(found) == manifest.shards == 3, lines
    assert [int(m[1]) for m in found if m] == [0, 1, 2]
    assert sum(_n(m[2]) for m in found if m) == manifest.counts.rows_in == 5_003
    assert sum(_n(m[3]) for m in found if m) == manifest.counts.rows_scored
    assert all(_n(m[5]) > 0 for m in found if m)


def test_the_cli_summary_the_report_and_the_manifest_give_one_rate(
    tmp_path: Path, model_dir: Path, score_file: Path
) -> None:
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "pipelines.cli", "score",
        "--params", str(ROOT / "params.yaml"),
        "--input", str(score_file),
        "--model", str(model_dir / "model.skops"),
        "--output", f"file://{out}",
        "--run-key", "rate",
        "--summary", str(tmp_path / "summary.json"),
        "--set", "validation.enabled=false",
        "--set", "score.progress=off",
        "--set", "score.shard_rows=2000",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "summary.json").read_text())
    rate = manifest["rows_per_s"]
    # defined once: rows in over the run's wall time (plan start -> manifest), as recorded
    assert rate == rows_per_s(manifest["counts"]["rows_in"], manifest["timings"]["wall"]) > 0
    assert f"{rate:,.0f} rows/s" in done.stdout  # the CLI's summary line
    assert re.search(rf"run rate: .* {rate:.0f} rows/s \(committed\)", done.stderr), done.stderr
    report_key = next(p["key"] for p in manifest["parts"] if p["key"].endswith("quality.json"))
    report = json.loads((out / report_key).read_text())
    assert report["rows_per_s"] == rate
    assert report["timings"]["wall"] == manifest["timings"]["wall"]


def test_gx_logs_nothing_of_its_own_in_a_task_process(
    tmp_path: Path, model_dir: Path, score_file: Path
) -> None:
    """Like an Airflow task: the root logger at INFO, no CLI to quiet anything; plan, then one
    shard with both GX gates. GX's INFO lines never reach the log; ours do."""
    script = textwrap.dedent(
        """
        import logging, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
        from pipelines.config import load_config
        from pipelines.run.plan import plan_run
        from pipelines.run.shard import score_shard
        root, model, data, out = sys.argv[1:5]
        cfg = load_config(f"{root}/params.yaml", {
            "data.path": data, "model.path": model, "output.uri": f"file://{out}",
            "run.key": "quiet", "score.progress": "off", "validation.batch_rows": 2000,
            "validation.input_suite": f"{root}/validation/input_suite.json",
            "validation.output_suite": None,
        }, env={})
        score_shard(cfg, plan_run(cfg), 0)
        """
    )
    args = [str(ROOT), str(model_dir / "model.skops"), str(score_file), str(tmp_path / "out")]
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    noise = [line for line in done.stderr.splitlines() if any(n in line for n in GX_NOISE)]
    assert not noise, noise[:5]
    assert "pipelines.run.shard: shard 0: 5,003 rows in, 5,003 scored" in done.stderr
    assert done.stdout == ""


def test_publish_says_where_the_report_is(make_cfg: Callable[..., Settings]) -> None:
    cfg = make_cfg(**{"validation.enabled": False})
    plan = plan_run(cfg)
    done = publish_run(cfg, plan, [score_shard(cfg, plan, 0)])
    assert done.status == "committed" and done.report_uri is not None
    assert done.report_uri.startswith("file://") and done.report_uri.endswith("/quality.html")
    page = Path(done.report_uri.removeprefix("file://"))
    assert page.is_file() and b"<html" in page.read_bytes()[:500].lower()
    again = publish_run(cfg, plan_run(cfg), [])  # already published: the same report
    assert again.status == "already_published" and again.report_uri == done.report_uri

    dry = make_cfg(**{"validation.enabled": False, "run.dry_run": True, "run.key": "dry"})
    plan = plan_run(dry)
    assert publish_run(dry, plan, [score_shard(dry, plan, 0)]).report_uri is None
