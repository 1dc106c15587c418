"""The benchmark's cells: what each variant runs, on how many cores, and one measured run of it.

Every cell is its own process (`bench.measure`), timed two ways: *work_s*, the timed work inside
it (imports excluded), and *process_wall_s*, the whole process from the outside, start to exit,
imports included: what a user waits for. The start-up cells run the real `batchscore` console
script, nothing of the bench in its process; their work_s is the run's own wall
(`manifest.timings.wall`, plan start to the manifest).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.inputs import ROOT, SINGLE_THREAD, shard_layout
from bench.measure import measure
from bench.variants import score_argv

STARTUP_ROWS = 1_000
DRIFT_OFF = "monitoring.drift.enabled=false"
GATE_OFF = "validation.enabled=false"
CHALLENGER_OF = {"hgb": "logreg", "logreg": "hgb"}


@dataclass(frozen=True)
class Variant:
    """One measured program. `rows` fixes the input size (start-up), else it runs per size."""

    name: str
    program: str  # ceiling | naive | batchscore (the bench wrapper) | cli (the console script)
    workers: int = 1
    sets: tuple[str, ...] = ()
    challenger: bool = False  # --set model.challenger=<the other model>
    rows: int | None = None
    min_repeat: int = 1
    optional: bool = False  # runs only when --variants names it


VARIANTS = {
    v.name: v
    for v in (
        Variant("startup", "cli", rows=STARTUP_ROWS, min_repeat=5),
        Variant("startup-nogate", "cli", sets=(GATE_OFF,), rows=STARTUP_ROWS, min_repeat=5),
        Variant(
            "startup-noaudit",
            "cli",
            sets=("validation.audit_rows=0",),
            rows=STARTUP_ROWS,
            min_repeat=5,
            optional=True,
        ),
        Variant("ceiling", "ceiling"),
        Variant("batchscore-1w", "batchscore"),
        Variant("batchscore-1w-nodrift", "batchscore", sets=(DRIFT_OFF,)),
        Variant("batchscore-1w-challenger", "batchscore", challenger=True),
        Variant("batchscore-2w", "batchscore", workers=2),
        Variant("naive", "naive"),
        # run only when --variants names them: the GX engine, and the fast engine without audit
        Variant("batchscore-1w-gx", "batchscore", sets=("validation.engine=gx",), optional=True),
        Variant(
            "batchscore-1w-noaudit", "batchscore", sets=("validation.audit_rows=0",), optional=True
        ),
    )
}
DEFAULT_VARIANTS = tuple(n for n, v in VARIANTS.items() if not v.optional)
RUN_KEYS = ("ok", "work_s", "process_wall_s", "cpu_s", "process_cpu_s", "peak_rss_mb",
            "loadavg_before", "before_work_s", "after_work_s")  # fmt: skip


def _env() -> dict[str, str]:
    """Single-threaded BLAS/OpenMP; no params file or overrides leaking in from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHSCORE")}
    return env | SINGLE_THREAD


def console_script() -> list[str]:
    """The installed `batchscore` entry point beside this Python, else `python -m`."""
    exe = Path(sys.executable).with_name("batchscore")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "pipelines.cli"]


def run_one(
    v: Variant,
    data: Path,
    model: Path,
    rows: int,
    opts: argparse.Namespace,
    scratch: Path,
    challenger: Path | None = None,
) -> dict[str, Any]:
    """One process of variant `v`, measured; a flat row (`error` says why when it failed)."""
    cores = sorted(os.sched_getaffinity(0))
    cpus = {cores[-1]} if opts.pin and v.workers == 1 else None
    shard_rows = shard_layout(rows, 2, opts.shard_groups)
    sets = [*v.sets, *([f"model.challenger={challenger}"] if v.challenger and challenger else [])]
    common = ["--data", str(data), "--model", str(model), "--chunk-size", str(opts.chunk_size)]
    command = None
    if v.program == "ceiling":
        args = ["ceiling", *common]
    elif v.program == "naive":
        args = ["naive", *common, "--out", str(scratch / "naive-scores.parquet")]
    elif v.program == "cli":
        args = []
        argv = score_argv(data, model, scratch / "run", workers=v.workers,
                          chunk_size=opts.chunk_size, shard_rows=shard_rows, sets=sets)  # fmt: skip
        command = [*console_script(), *argv]
    else:
        args = ["batchscore", *common, "--workers", str(v.workers),
                "--shard-rows", str(shard_rows), "--out", str(scratch / "run"),
                *[a for kv in sets for a in ("--set", kv)]]  # fmt: skip
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "run").mkdir(parents=True)
    load_before = os.getloadavg()[0]
    m = measure(args, env=_env(), cpus=cpus, cwd=ROOT, command=command)
    rep = m.report or _manifest_report(scratch / "run" / "manifest.json", m.exit_code)
    shutil.rmtree(scratch, ignore_errors=True)
    row: dict[str, Any] = {
        "variant": v.name,
        "workers": v.workers,
        "pinned_cpus": sorted(cpus) if cpus else None,
        "rows": rows,
        "sets": sets,
        "ok": m.exit_code == 0 and "work_s" in rep,
        "process_wall_s": m.process_wall_s,
        "process_cpu_s": m.process_cpu_s,
        "peak_rss_mb": m.peak_rss_mb,
        "peak_rss_single_mb": m.peak_rss_single_mb,
        "rss_samples": m.samples,
        "loadavg_before": round(load_before, 2),
    }
    if not row["ok"]:
        return row | {
            "error": m.stderr_tail or "no report",
            "reason": failure_reason(m.stderr_tail),
        }
    row |= _work_fields(v, rep, rows, shard_rows)
    if "work_began_at" in rep:  # the process outside its timed work: start-up, and exit
        row["before_work_s"] = round(rep["work_began_at"] - m.started_at, 3)
        row["after_work_s"] = round(m.ended_at - rep["work_ended_at"], 3)
    return row


def _manifest_report(path: Path, exit_code: int) -> dict[str, Any]:
    """A console-script run's report from its manifest: the run's own wall is its work."""
    import json

    if exit_code or not path.is_file():
        return {}
    manifest = json.loads(path.read_text())
    timings = manifest["timings"]
    return {
        "work_s": timings["wall"],
        "cpu_s": None,
        "stages": {k: v for k, v in timings.items() if k != "wall"},
        "shards": manifest.get("shards"),
        "manifest": {
            "challenger_s": timings.get("challenger"),
            "monitor_s": timings.get("monitor"),
        },
        "work_source": "manifest.timings.wall",
    }


def _work_fields(v: Variant, rep: dict[str, Any], rows: int, shard_rows: int) -> dict[str, Any]:
    """What the child reported: the timed work, its stages and, for batchscore, validation."""
    work = rep["work_s"]
    out: dict[str, Any] = {
        "work_s": round(work, 3),
        "rows_per_s": round(rows / work, 1),
        "cpu_s": None if rep.get("cpu_s") is None else round(rep["cpu_s"], 3),
        "stages": {k: round(x, 3) for k, x in rep.get("stages", {}).items()},
    }
    if out["cpu_s"]:
        out["rows_per_cpu_s"] = round(rows / out["cpu_s"], 1)
    for key in ("phases", "gx", "shards", "chunks", "rows_scored", "rows_quarantined",
                "manifest", "work_source"):  # fmt: skip
        if key in rep:
            out[key] = rep[key]
    if v.program in ("batchscore", "cli"):
        out["shard_rows"] = shard_rows
        validate = rep.get("stages", {}).get("validate", 0.0)
        verdict = rep.get("phases", {}).get("verdict", 0.0)
        # Shard timings are worker-seconds; spread over the workers, plus the run-level verdict,
        # which runs once in the parent.
        out["validate_s"] = round(validate / v.workers + verdict, 3)
        out["validate_share"] = round(out["validate_s"] / work, 4)
    elif v.program == "naive":
        validate = rep.get("stages", {}).get("validate")
        out["validate_s"] = None if validate is None else round(validate, 3)
        out["validate_share"] = None if validate is None else round(validate / work, 4)
    return out


def failure_reason(stderr: str) -> str:
    """The last few lines a failed run printed, on one line: the report's FAILED cell says it."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    return " / ".join(lines[-3:])[-300:] or "no output"


def plan_cells(
    variants: list[Variant], sizes: list[int], repeat: int
) -> list[tuple[int, list[tuple[Variant, int]]]]:
    """Per input size, the variants and how often each runs: the start-up cells at their fixed
    size first (each at least its `min_repeat`), then every other variant at each size."""
    fixed = sorted({v.rows for v in variants if v.rows})
    groups = [(r, [(v, max(repeat, v.min_repeat)) for v in variants if v.rows == r]) for r in fixed]
    groups += [(r, [(v, repeat) for v in variants if not v.rows]) for r in sizes]
    return [(r, cells) for r, cells in groups if cells]


def _lower_median(values: list[float]) -> float:
    return sorted(values)[(len(values) - 1) // 2]


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Repeats -> one row: the run with the median work time, the median process wall time, the
    highest peak RSS seen, and every run's numbers under `runs` (the report shows them)."""
    ok = [r for r in runs if r["ok"]]
    if not ok:
        return runs[-1] | {"repeats": len(runs)}
    ok_sorted = sorted(ok, key=lambda r: r["work_s"])
    best = dict(ok_sorted[(len(ok) - 1) // 2])
    best["repeats"] = len(runs)
    best["failed_runs"] = len(runs) - len(ok)
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in ok)
    best["peak_rss_single_mb"] = max(r["peak_rss_single_mb"] for r in ok)
    for key in ("process_wall_s", "process_cpu_s", "cpu_s"):  # medians of their own
        values = [r[key] for r in ok if r.get(key) is not None]
        if values:
            best[key] = _lower_median(values)
    if len(ok) > 1:
        import statistics

        best["work_s_all"] = [r["work_s"] for r in ok]
        best["work_s_stdev"] = round(statistics.stdev(best["work_s_all"]), 3)
        best["process_wall_s_all"] = [r["process_wall_s"] for r in ok]
    best["runs"] = [{k: r.get(k) for k in RUN_KEYS} for r in runs]
    return best
