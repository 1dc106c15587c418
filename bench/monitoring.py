"""What the monitoring, challenger, labels and resume work costs, measured whole-process.

    .venv/bin/python -m bench.monitoring            # full: ~20 min on 2 cores
    .venv/bin/python -m bench.monitoring --quick    # 1M rows only, 1 run per cell (~3 min)

Every cell is one `batchscore score` (or `labels add`) process, started and watched by
`bench.measure` (wall time, peak RSS of the process tree) on the inputs and models `bench.run`
caches under bench/data/. Four questions (bench/README.md, "Monitoring, challenger, labels,
resume"): does drift monitoring stay within 5% of wall and flat in memory; does a challenger cost
about one more predict; does `labels add` stay flat in memory to 20M rows; does a rerun of a
killed run reuse the finished shards and publish the same content. Results go to
bench/results/monitoring.json and monitoring.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.measure import measure
from bench.monitoring_report import write_monitoring
from bench.report import machine_info
from bench.run import (
    BENCH,
    ROOT,
    SINGLE_THREAD,
    aggregate,
    ensure_dataset,
    ensure_model,
    labels_path_for,
    parse_size,
    shard_layout,
    size_label,
)

log = logging.getLogger("bench.monitoring")
FAULT_ENV = "BATCHSCORE_FAULT_AT"  # pipelines.publish.commit: SIGKILL at a named point
RUN_KEY = "night"
DRIFT_OFF = "monitoring.drift.enabled=false"


@dataclass
class Bench:
    """Where things go and how cells run; `cells` collects every measured process."""

    data_dir: Path
    scratch: Path
    pin: bool
    chunk_size: int
    cells: list[dict[str, Any]] = field(default_factory=list)

    def one_core(self) -> set[int] | None:
        """The single-process cells run on one pinned CPU, as bench.run's 1-worker variant."""
        return {sorted(os.sched_getaffinity(0))[-1]} if self.pin else None


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: single-threaded BLAS/OpenMP, no stray batchscore overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHSCORE")}
    return {**env, **SINGLE_THREAD, **(extra or {})}


def _summary(name: str, rows: int, m: Any, load: float, workers: int) -> dict[str, Any]:
    """One measured process as a flat row; the child's report fields when it succeeded."""
    rep = m.report
    row: dict[str, Any] = {
        "cell": name,
        "rows": rows,
        "workers": workers,
        "ok": m.exit_code == 0,
        "exit_code": m.exit_code,
        "process_wall_s": m.process_wall_s,
        "peak_rss_mb": m.peak_rss_mb,
        "peak_rss_single_mb": m.peak_rss_single_mb,
        "loadavg_before": round(load, 2),
    }
    if m.exit_code == 0:
        row |= {"work_s": round(rep["work_s"], 3), "cpu_s": round(rep["cpu_s"], 3)}
        for key in ("stages", "phases", "shards", "manifest"):
            if key in rep:
                row[key] = rep[key]
        if "labels" in rep:
            row["labels"] = _labels_facts(rep["labels"])
    return row


def _labels_facts(result: dict[str, Any]) -> dict[str, Any]:
    """The few numbers of a `labels add --json` answer the report shows."""
    run = (result.get("runs") or [{}])[0]
    ev = run.get("evaluation") or {}
    return {
        "rows_read": result.get("counts", {}).get("rows_read"),
        "rows_joined": run.get("rows_joined"),
        "status": run.get("status"),
        "roc_auc": ev.get("roc_auc"),
        "coverage": ev.get("coverage"),
    }


def score(
    b: Bench,
    name: str,
    data: Path,
    model: Path,
    rows: int,
    out: Path,
    *,
    workers: int = 1,
    shard_rows: int | None = None,
    sets: tuple[str, ...] = (),
    overwrite: bool = True,
    env: dict[str, str] | None = None,
    timeout: float = 3600.0,
) -> dict[str, Any]:
    """One `batchscore score` process into the local bucket under `out` (kept for the caller)."""
    shard_rows = shard_rows or shard_layout(rows, 2)
    args = [
        "batchscore", "--data", str(data), "--model", str(model),
        "--chunk-size", str(b.chunk_size), "--workers", str(workers),
        "--shard-rows", str(shard_rows), "--out", str(out), "--run-key", RUN_KEY,
        *(() if overwrite else ("--no-overwrite",)),
        *[a for kv in sets for a in ("--set", kv)],
    ]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    cpus = b.one_core() if workers == 1 else None
    m = measure(args, env=_env(env), cpus=cpus, cwd=ROOT, timeout=timeout)
    row = _summary(name, rows, m, load, workers) | {"shard_rows": shard_rows, "sets": list(sets)}
    row["timed_out"] = m.process_wall_s >= timeout
    if not row["ok"] and not env:
        log.error("%s %s failed:\n%s", name, size_label(rows), m.stderr_tail)
    b.cells.append(row)
    _log(row)
    return row


def _log(row: dict[str, Any]) -> None:
    work = f"{row['work_s']:7.2f} s" if row["ok"] else f"exit {row['exit_code']}"
    log.info(
        "%-22s %4s  %s  process %6.1f s  peak %6.0f MB  load %.2f",
        row["cell"], size_label(row["rows"]), work, row["process_wall_s"],
        row["peak_rss_mb"], row["loadavg_before"],
    )  # fmt: skip


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# --- 1 + 2. drift on/off and challenger on/off -----------------------------------------------


def drift_and_challenger(
    b: Bench, sizes: list[int], repeats: dict[int, int], challenger_sizes: set[int]
) -> dict[str, Any]:
    """Per size, `repeats[size]` rounds of drift on / drift off / challenger on, interleaved so a
    change in the machine's load hits the three alike; the 'off' of the challenger comparison is
    the drift-on cell (the same command without the challenger)."""
    model, challenger = ensure_model(b.data_dir, "hgb"), ensure_model(b.data_dir, "logreg")
    out: dict[str, Any] = {}
    for rows in sizes:
        data = ensure_dataset(b.data_dir, rows, labels=True)  # made once for every part
        runs: dict[str, list[dict[str, Any]]] = {"drift_on": [], "drift_off": [], "challenger": []}
        for _ in range(repeats[rows]):
            configs = {"drift_on": (), "drift_off": (DRIFT_OFF,)}
            if rows in challenger_sizes:
                configs["challenger"] = (f"model.challenger={challenger}",)
            if rows == max(sizes) and rows not in challenger_sizes and len(sizes) > 1:
                configs.pop("drift_off")  # the largest size only shows RSS with drift on
            for name, sets in configs.items():
                scratch = _fresh(b.scratch / "score")
                cell = f"{name}-1w"
                runs[name].append(score(b, cell, data, model, rows, scratch, sets=sets))
        out[size_label(rows)] = {k: aggregate(v) for k, v in runs.items() if v}
    shutil.rmtree(b.scratch / "score", ignore_errors=True)
    return out


# --- 3. labels add ---------------------------------------------------------------------------


def labels_join(b: Bench, sizes: list[int], repeats: dict[int, int]) -> dict[str, Any]:
    """Per size: publish a run (2 workers), then `labels add` of the full delivery, repeated.

    Each repeat starts from a run without deliveries (its labels/ folder removed), since adding
    the same file twice stores nothing the second time. Sizes above 10M are generated into the
    scratch folder and deleted afterwards (20M rows: ~1 GB of input, ~0.2 GB published).
    """
    model = ensure_model(b.data_dir, "hgb")
    out: dict[str, Any] = {}
    for rows in sizes:
        data_dir = b.scratch / "big-data" if rows > 10_000_000 else b.data_dir
        data = ensure_dataset(data_dir, rows, labels=True)
        bucket = _fresh(b.scratch / "labels")
        published = score(b, "publish-2w", data, model, rows, bucket, workers=2)
        runs = []
        for _ in range(repeats[rows] if published["ok"] else 0):
            for folder in (bucket / "bucket").glob(f"*/{RUN_KEY}/labels"):
                shutil.rmtree(folder)
            runs.append(_labels_add(b, labels_path_for(data), model, rows, bucket))
        out[size_label(rows)] = {
            "publish": published,
            "labels_add": aggregate(runs) if runs else {},
        }
        shutil.rmtree(bucket, ignore_errors=True)
        if data_dir != b.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
    return out


def _labels_add(b: Bench, labels: Path, model: Path, rows: int, bucket: Path) -> dict[str, Any]:
    """One `batchscore labels add` process for the run published under `bucket`."""
    args = [
        "labels", "--data", str(labels), "--model", str(model),
        "--out", str(bucket), "--run-key", RUN_KEY,
    ]  # fmt: skip
    load = os.getloadavg()[0]
    m = measure(args, env=_env(), cpus=b.one_core(), cwd=ROOT)
    row = _summary("labels-add", rows, m, load, 1)
    if not row["ok"]:
        log.error("labels add %s failed:\n%s", size_label(rows), m.stderr_tail)
    b.cells.append(row)
    _log(row)
    return row


# --- 4. resume -------------------------------------------------------------------------------


def resume(b: Bench, rows: int, shard_rows: int, kill_after: int, repeats: int) -> dict[str, Any]:
    """An uninterrupted 2-worker run, then the same run killed after shard `kill_after` and
    rerun; per repeat: staged shard records after the kill, reuse, walls, content hashes."""
    model = ensure_model(b.data_dir, "hgb")
    data = ensure_dataset(b.data_dir, rows, labels=True)
    rounds = []
    for _ in range(repeats):
        full = score(b, "resume-uninterrupted", data, model, rows, _fresh(b.scratch / "full"),
                     workers=2, shard_rows=shard_rows)  # fmt: skip
        bucket = _fresh(b.scratch / "resumed")
        # a killed worker can leave the parent hung (see the report); the bench then kills it
        limit = max(30.0, 2 * full["process_wall_s"])
        killed = score(b, "resume-killed", data, model, rows, bucket, workers=2,
                       shard_rows=shard_rows, overwrite=False,
                       env={FAULT_ENV: f"after_shard_{kill_after}"}, timeout=limit)  # fmt: skip
        staged = len(list((bucket / "bucket").glob(f"*/{RUN_KEY}/attempts/*/shards/shard-*.json")))
        rerun = score(b, "resume-rerun", data, model, rows, bucket, workers=2,
                      shard_rows=shard_rows, overwrite=False)  # fmt: skip
        rounds.append(_resume_round(full, killed, rerun, staged))
    shutil.rmtree(b.scratch / "full", ignore_errors=True)
    shutil.rmtree(b.scratch / "resumed", ignore_errors=True)
    return {"rows": rows, "shard_rows": shard_rows, "shards": -(-rows // shard_rows),
            "kill_after_shard": kill_after, "rounds": rounds}  # fmt: skip


def _resume_round(
    full: dict[str, Any], killed: dict[str, Any], rerun: dict[str, Any], staged: int
) -> dict[str, Any]:
    """One kill-and-rerun against its uninterrupted run: what the report's resume table shows."""
    mf, mr = full.get("manifest") or {}, rerun.get("manifest") or {}
    return {
        "uninterrupted_work_s": full.get("work_s"),
        "uninterrupted_process_s": full["process_wall_s"],
        "killed_exit_code": killed["exit_code"],
        "killed_process_s": killed["process_wall_s"],
        "killed_hung": killed["timed_out"],
        "records_staged_at_kill": staged,
        "rerun_ok": rerun["ok"],
        "rerun_work_s": rerun.get("work_s"),
        "rerun_process_s": rerun["process_wall_s"],
        "shards_reused": mr.get("shards_reused"),
        "content_sha256_uninterrupted": mf.get("content_sha256"),
        "content_sha256_rerun": mr.get("content_sha256"),
        "content_identical": bool(mf.get("content_sha256"))
        and mf.get("content_sha256") == mr.get("content_sha256"),
    }


# --- the command -----------------------------------------------------------------------------


def plan(quick: bool) -> dict[str, Any]:
    """Sizes and repeats: the full run fits ~20 min on 2 cores, --quick ~3 min."""
    if quick:
        one = {parse_size("1M"): 1}
        return {"drift_sizes": [1_000_000], "drift_repeats": one, "challenger_sizes": [1_000_000],
                "labels_sizes": [1_000_000], "labels_repeats": one,
                "resume": {"rows": 1_000_000, "shard_rows": 131_072, "kill_after": 3,
                           "repeats": 1}}  # fmt: skip
    m = 1_000_000
    return {
        "drift_sizes": [m, 5 * m, 10 * m],
        "drift_repeats": {m: 3, 5 * m: 3, 10 * m: 1},
        "challenger_sizes": [m, 5 * m],
        "labels_sizes": [m, 5 * m, 20 * m],
        "labels_repeats": {m: 3, 5 * m: 2, 20 * m: 1},
        "resume": {"rows": 5 * m, "shard_rows": 524_288, "kill_after": 4, "repeats": 2},
    }


def run_all(b: Bench, p: dict[str, Any], doc: dict[str, Any], out: Path) -> None:
    """The four parts in turn; the JSON is rewritten after each, so a stopped run keeps data."""
    parts = (
        ("drift_challenger", lambda: drift_and_challenger(
            b, p["drift_sizes"], p["drift_repeats"], set(p["challenger_sizes"]))),
        ("labels", lambda: labels_join(b, p["labels_sizes"], p["labels_repeats"])),
        ("resume", lambda: resume(b, p["resume"]["rows"], p["resume"]["shard_rows"],
                                  p["resume"]["kill_after"], p["resume"]["repeats"])),
    )  # fmt: skip
    for name, part in parts:
        log.info("--- %s", name)
        doc[name] = part()
        doc["cells"] = b.cells
        (out / "monitoring.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.monitoring",
        description="Cost of drift monitoring, a challenger, labels add and resume.",
    )
    parser.add_argument("--quick", action="store_true", help="1M rows only, 1 run per cell")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument("--data-dir", type=Path, default=BENCH / "data")
    parser.add_argument("--chunk-size", type=int, default=65_536, help="score.chunk_size")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="no CPU pinning")
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    opts.out.mkdir(parents=True, exist_ok=True)
    b = Bench(opts.data_dir, opts.data_dir / "tmp-monitoring", opts.pin, opts.chunk_size)
    p = plan(opts.quick)
    started = dt.datetime.now(dt.UTC)
    command = [Path(sys.executable).name, "-m", "bench.monitoring", *(argv or sys.argv[1:])]
    doc: dict[str, Any] = {
        "started_at": started.isoformat(timespec="seconds"),
        "command": " ".join(command),
        "quick": opts.quick,
        "machine": machine_info(),
        "plan": {
            k: v
            if not isinstance(v, dict) or k == "resume"
            else {size_label(r): n for r, n in v.items()}
            for k, v in p.items()
        },  # fmt: skip
        "config": {
            "chunk_size": opts.chunk_size,
            "pinned_single_core": opts.pin,
            "thread_env": SINGLE_THREAD,
            "run_key": RUN_KEY,
        },  # fmt: skip
    }
    try:
        run_all(b, p, doc, opts.out)
    finally:
        shutil.rmtree(b.scratch, ignore_errors=True)
    doc["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    doc["wall_s"] = round((dt.datetime.now(dt.UTC) - started).total_seconds(), 1)
    write_monitoring(doc, opts.out)
    log.info("wrote %s and %s", opts.out / "monitoring.json", opts.out / "monitoring.md")
    return 0 if all(c["ok"] or c["cell"] == "resume-killed" for c in b.cells) else 1


if __name__ == "__main__":
    raise SystemExit(main())
