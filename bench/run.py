"""One command: batchscore against the bare model (ceiling) and the naive script, side by side.

    .venv/bin/python -m bench.run                      # 1M, 2M, 5M, 10M rows x hgb, logreg
    .venv/bin/python -m bench.run --quick              # smoke run: 200k and 1M rows, hgb
    .venv/bin/python -m bench.run --sizes 1M --models logreg --repeat 3
    .venv/bin/python -m bench.run --variants ceiling,batchscore-1w,batchscore-1w-gx

Every variant (bench.cells) is timed in-loop and as a whole process; the start-up cells score
1,000 rows with the console script. Generated inputs and trained models are cached under
bench/data/ (gitignored); results go to --out (results.json, results.md, chart.png). See
bench/README.md for the method.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from bench.cells import (
    CHALLENGER_OF,
    DEFAULT_VARIANTS,
    STARTUP_ROWS,
    VARIANTS,
    Variant,
    aggregate,
    plan_cells,
    run_one,
)
from bench.inputs import (
    BENCH,
    ROOT,
    ROW_GROUP_ROWS,
    SINGLE_THREAD,
    TRAIN_ROWS,
    ensure_dataset,
    ensure_model,
    labels_path_for,
    params_value,
    parse_size,
    shard_layout,
    size_label,
)
from bench.report import machine_info, write_outputs

# bench.monitoring, bench.profile and bench.gx_cost import these from here
__all__ = ["BENCH", "ROOT", "SINGLE_THREAD", "aggregate", "ensure_dataset", "ensure_model",
           "labels_path_for", "main", "parse_size", "shard_layout", "size_label"]  # fmt: skip

log = logging.getLogger("bench")


def run_group(
    kind: str,
    rows: int,
    cells: list[tuple[Variant, int]],
    paths: dict[str, Path],
    opts: argparse.Namespace,
) -> list[dict[str, Any]]:
    """The cells of one model and size, repeats interleaved (round 1 of every variant, then
    round 2...), so a change in the machine's load hits drift on and off alike."""
    data = ensure_dataset(opts.data_dir, rows)
    other = paths.get(CHALLENGER_OF[kind])
    runs: dict[str, list[dict[str, Any]]] = {v.name: [] for v, _ in cells}
    for i in range(max(n for _, n in cells)):
        for v, n in cells:
            if i < n:
                scratch = opts.out / "tmp"
                row = run_one(v, data, paths[kind], rows, opts, scratch, challenger=other)
                runs[v.name].append(row)
                _log_run(kind, row, i + 1, n)
    return [aggregate(runs[v.name]) | {"model": kind} for v, _ in cells]


def _log_run(kind: str, r: dict[str, Any], i: int, n: int) -> None:
    label = f"{kind:6} {size_label(r['rows']):>4} {r['variant']:<24} run {i}/{n}"
    if not r["ok"]:
        log.error("%s FAILED: %s", label, r.get("reason", ""))
        return
    log.info("%s work %7.2f s  process %7.2f s  peak %6.0f MB  load %.2f", label, r["work_s"],
             r["process_wall_s"], r["peak_rss_mb"], r["loadavg_before"])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="batchscore vs the bare model (ceiling) vs the naive script, side by side.",
    )
    parser.add_argument("--sizes", default="1M,2M,5M,10M", help="input rows, e.g. 200k,1M,10M")
    parser.add_argument("--models", default="hgb,logreg", help="hgb and/or logreg")
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"any of {','.join(VARIANTS)} (default: {','.join(DEFAULT_VARIANTS)})",
    )
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument("--data-dir", type=Path, default=BENCH / "data")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200k,1M rows, hgb only")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell (median is kept)")
    parser.add_argument("--chunk-size", type=int, default=65_536, help="score.chunk_size")
    parser.add_argument(
        "--shard-groups",
        type=int,
        default=8,
        help="row groups (of 65,536 rows) per shard from 1M rows up (score.shard_rows)",
    )
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin the single-core variants to one CPU",
    )
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if opts.quick:
        opts.sizes, opts.models = "200k,1M", "hgb"
    sizes = [parse_size(s) for s in opts.sizes.split(",") if s.strip()]
    models = [m.strip() for m in opts.models.split(",") if m.strip()]
    names = [v.strip() for v in opts.variants.split(",") if v.strip()]
    unknown = sorted(set(names) - set(VARIANTS)) + sorted(set(models) - set(CHALLENGER_OF))
    if unknown:
        parser.error(f"unknown variant/model: {unknown}")
    variants = [VARIANTS[n] for n in names]
    opts.out.mkdir(parents=True, exist_ok=True)
    needed = set(models) | {CHALLENGER_OF[m] for m in models if any(v.challenger for v in variants)}
    paths = {kind: ensure_model(opts.data_dir, kind) for kind in sorted(needed)}
    groups = plan_cells(variants, sizes, opts.repeat)
    started = dt.datetime.now(dt.UTC)
    doc = _new_doc(argv, opts, sizes, models, names, started)
    for kind in models:
        for rows, cells in groups:
            doc["results"] += run_group(kind, rows, cells, paths, opts)
            doc["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            doc["wall_s"] = round((dt.datetime.now(dt.UTC) - started).total_seconds(), 1)
            (opts.out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    shutil.rmtree(opts.out / "tmp", ignore_errors=True)
    doc["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    write_outputs(doc, opts.out)
    log.info("wrote %s", ", ".join(str(opts.out / n) for n in _OUTPUTS))
    return 0 if all(r["ok"] for r in doc["results"]) else 1


def _new_doc(
    argv: list[str] | None,
    opts: argparse.Namespace,
    sizes: list[int],
    models: list[str],
    variants: list[str],
    started: dt.datetime,
) -> dict[str, Any]:
    """results.json before the first cell: the command, the machine and the configuration."""
    return {
        "started_at": started.isoformat(timespec="seconds"),
        "command": " ".join(
            [Path(sys.executable).name, "-m", "bench.run", *(argv or sys.argv[1:])]
        ),
        "quick": opts.quick,
        "machine": machine_info(),
        "config": {
            "sizes": sizes,
            "models": models,
            "variants": variants,
            "repeat": opts.repeat,
            "startup_rows": STARTUP_ROWS,
            "startup_repeat": max(opts.repeat, VARIANTS["startup"].min_repeat),
            "chunk_size": opts.chunk_size,
            "row_group_rows": ROW_GROUP_ROWS,
            "train_rows": TRAIN_ROWS,
            "pinned_single_core": opts.pin,
            "thread_env": SINGLE_THREAD,
            "challenger_of": CHALLENGER_OF,
            "shard_rows": {size_label(r): shard_layout(r, 2, opts.shard_groups) for r in sizes},
            "validation_batch_rows": params_value("validation", "batch_rows"),
        },
        "results": [],
    }


_OUTPUTS = ("results.json", "results.md", "chart.png")


if __name__ == "__main__":
    raise SystemExit(main())
