"""One command: batchscore against the bare model (ceiling) and the naive script, side by side.

    .venv/bin/python -m bench.run                      # 1M, 5M, 10M rows x hgb, logreg
    .venv/bin/python -m bench.run --quick              # smoke run: 200k and 1M rows, hgb
    .venv/bin/python -m bench.run --sizes 1M --models logreg --repeat 3

Generated inputs and trained models are cached under bench/data/ (gitignored); results go to
--out (results.json, results.md, chart.png). See bench/README.md for the method.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.measure import measure
from bench.report import machine_info, write_outputs

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
ROW_GROUP_ROWS = 65_536  # params.yaml generate.row_group_rows
TRAIN_ROWS = 200_000
TRAIN_SEED, SCORE_SEED = 42, 43  # the score set is other rows from the same population
VARIANTS = ("ceiling", "batchscore-1w", "batchscore-2w", "naive")
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

log = logging.getLogger("bench")


def parse_size(text: str) -> int:
    """'200k' -> 200_000, '1M' -> 1_000_000, '2500' -> 2500."""
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def size_label(rows: int) -> str:
    if rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    if rows % 1_000 == 0:
        return f"{rows // 1_000}k"
    return str(rows)


# --- cached inputs -------------------------------------------------------------------------


def generator_tag() -> str:
    """8 hex of the demo generator's source: part of every cached file's name.

    The cache used to be keyed by size alone, so a change to the generator (the category shares
    fixed per population, so a night drawn like the training data does not drift) left stale
    files that the drift monitor then flagged. Keyed by the code, a cached file is always what
    the generator writes now.
    """
    import hashlib
    import inspect

    from pipelines.data import demo

    parts = (demo.make_frame, demo._population_shares, demo.write_dataset, demo._LabelWriter)
    text = "".join(inspect.getsource(obj) for obj in parts) + repr(demo.CATEGORIES)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def ensure_dataset(data_dir: Path, rows: int, labels: bool = False) -> Path:
    """The score set of `rows` rows (seeded, so identical on every machine), made once.

    With `labels`, its true labels too (`labels_path_for`), written in the same pass: the data
    file is byte-identical either way (the generator draws the label last), so a cached set
    without labels is rewritten with them. Stale files of another generator are removed.
    """
    from pipelines.data.demo import write_dataset

    stem = f"score-{size_label(rows)}-rg{ROW_GROUP_ROWS}"
    path = data_dir / f"{stem}-{generator_tag()}.parquet"
    if path.is_file() and (not labels or labels_path_for(path).is_file()):
        return path
    for stale in data_dir.glob(f"{stem}*.parquet"):
        stale.unlink()
    log.info("generating %s rows -> %s", f"{rows:,}", path)
    write_dataset(
        path,
        rows,
        SCORE_SEED,
        ROW_GROUP_ROWS,
        with_label=False,
        first_id=1,
        labels_path=labels_path_for(path) if labels else None,
    )
    return path


def labels_path_for(data: Path) -> Path:
    """Where the true labels of a generated score set are kept: beside it."""
    return data.with_name(data.name.removesuffix(".parquet") + ".labels.parquet")


def ensure_model(data_dir: Path, kind: str) -> Path:
    """The `kind` demo pipeline trained once on TRAIN_ROWS rows, with its drift baseline.

    Retrained if sklearn changed or the training set is another generator's (`generator_tag`);
    the baseline is written by training, or made by `batchscore baseline` if it is missing.
    """
    import sklearn

    from pipelines.config import load_config
    from pipelines.data.demo import write_dataset
    from pipelines.model.train import train_model

    model = data_dir / "models" / kind / "model.skops"
    card = model.with_name("model.card.json")
    stamp = model.with_name("bench-train-data.txt")
    train = data_dir / f"train-{size_label(TRAIN_ROWS)}-{generator_tag()}.parquet"
    fresh = stamp.is_file() and stamp.read_text().strip() == train.name
    if card.is_file() and model.is_file() and fresh and _card_version(card) == sklearn.__version__:
        _ensure_baseline(model, train)
        return model
    if not train.is_file():
        for stale in data_dir.glob(f"train-{size_label(TRAIN_ROWS)}*.parquet"):
            stale.unlink()
        write_dataset(train, TRAIN_ROWS, TRAIN_SEED, ROW_GROUP_ROWS, with_label=True)
    cfg = load_config(
        ROOT / "params.yaml",
        {
            "generate.train_path": str(train),
            "model.path": str(model),
            "train.model": kind,
        },
    )
    log.info("training %s on %s rows -> %s", kind, f"{TRAIN_ROWS:,}", model)
    train_model(cfg)
    stamp.write_text(train.name + "\n")
    _ensure_baseline(model, train)
    return model


def _ensure_baseline(model: Path, train: Path) -> None:
    """`<model>.baseline.json` beside the model, so the scoring runs monitor drift."""
    from pipelines.cli import main

    if model.with_suffix(".baseline.json").is_file():
        return
    argv = ["baseline", "--params", str(ROOT / "params.yaml"), "--data", str(train)]
    if main([*argv, "--model", str(model)]):
        raise SystemExit(f"batchscore baseline failed for {model}")


def _params_value(section: str, key: str) -> object:
    from pipelines.config import load_config

    return getattr(getattr(load_config(ROOT / "params.yaml"), section), key)


def _card_version(card: Path) -> str | None:
    return json.loads(card.read_text()).get("sklearn_version")


def shard_layout(rows: int, workers: int, max_groups: int = 8) -> int:
    """score.shard_rows for this input: whole row groups.

    The same 8 row groups (524,288 rows) for every input that has 16 or more, so each shard, and
    so each GX validation batch (a batch never spans shards), is the same size at 1M and at 10M:
    peak memory then compares across sizes. 1M rows make 2 shards, 5M 10 and 10M 20: an even
    number, so 2 workers finish together (5 shards of 1,048,576 rows would leave one worker idle
    for the last one: at most 5/3 = 1.67x). Smaller inputs get smaller shards, one per worker.
    """
    groups = -(-rows // ROW_GROUP_ROWS)
    if groups >= 2 * max_groups:
        return max_groups * ROW_GROUP_ROWS
    return max(1, groups // workers) * ROW_GROUP_ROWS


# --- the run -------------------------------------------------------------------------------


def run_one(
    variant: str,
    data: Path,
    model: Path,
    rows: int,
    opts: argparse.Namespace,
    scratch: Path,
) -> dict[str, Any]:
    env = {**os.environ, **SINGLE_THREAD}
    env.pop("BATCHSCORE_PARAMS", None)
    env = {k: v for k, v in env.items() if not k.startswith("BATCHSCORE__")}
    cores = sorted(os.sched_getaffinity(0))
    one_core = {cores[-1]} if opts.pin else None
    shard_rows = shard_layout(rows, max(2, opts.max_workers), opts.shard_groups)
    args = ["--data", str(data), "--model", str(model), "--chunk-size", str(opts.chunk_size)]
    cpus = one_core
    workers = 1
    if variant == "ceiling":
        args = ["ceiling", *args]
    elif variant == "naive":
        args = ["naive", *args, "--out", str(scratch / "naive-scores.parquet")]
    else:
        workers = 1 if variant == "batchscore-1w" else opts.max_workers
        cpus = one_core if workers == 1 else None
        args = [
            "batchscore", *args,
            "--workers", str(workers),
            "--shard-rows", str(shard_rows),
            "--out", str(scratch / "run"),
        ]  # fmt: skip
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    load_before = os.getloadavg()[0]
    m = measure(args, env=env, cpus=cpus, cwd=ROOT)
    shutil.rmtree(scratch, ignore_errors=True)
    rep = m.report
    result: dict[str, Any] = {
        "variant": variant,
        "workers": workers,
        "pinned_cpus": sorted(cpus) if cpus else None,
        "rows": rows,
        "ok": m.exit_code == 0,
        "process_wall_s": m.process_wall_s,
        "peak_rss_mb": m.peak_rss_mb,
        "peak_rss_single_mb": m.peak_rss_single_mb,
        "rss_samples": m.samples,
        "loadavg_before": round(load_before, 2),
    }
    if m.exit_code:
        result["error"] = m.stderr_tail
        return result
    work = rep["work_s"]
    result |= {
        "work_s": round(work, 3),
        "rows_per_s": round(rows / work, 1),
        "cpu_s": round(rep["cpu_s"], 3),
        "rows_per_cpu_s": round(rows / rep["cpu_s"], 1),
        "stages": {k: round(v, 3) for k, v in rep.get("stages", {}).items()},
    }
    for key in ("phases", "gx", "shards", "chunks", "rows_scored", "rows_quarantined"):
        if key in rep:
            result[key] = rep[key]
    if variant.startswith("batchscore"):
        result["shard_rows"] = shard_rows
        result["reports_module"] = rep.get("reports_module")
        validate = rep["stages"].get("validate", 0.0)
        verdict = rep.get("phases", {}).get("verdict", 0.0)
        # Shard timings are worker-seconds; spread over the workers, plus the run-level verdict,
        # which runs once in the parent.
        result["validate_s"] = round(validate / workers + verdict, 3)
        result["validate_share"] = round(result["validate_s"] / work, 4)
    elif variant == "naive":
        validate = rep["stages"].get("validate")
        result["validate_s"] = None if validate is None else round(validate, 3)
        result["validate_share"] = None if validate is None else round(validate / work, 4)
    return result


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Repeats -> one row: the run with the median work time; peak RSS is the max seen."""
    ok = [r for r in runs if r["ok"]]
    if not ok:
        return runs[-1]
    ok.sort(key=lambda r: r["work_s"])
    best = dict(ok[(len(ok) - 1) // 2])
    best["repeats"] = len(runs)
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in ok)
    best["peak_rss_single_mb"] = max(r["peak_rss_single_mb"] for r in ok)
    if len(ok) > 1:
        best["work_s_all"] = [r["work_s"] for r in ok]
        best["work_s_stdev"] = round(statistics.stdev(best["work_s_all"]), 3)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="batchscore vs the bare model (ceiling) vs the naive script, side by side.",
    )
    parser.add_argument("--sizes", default="1M,5M,10M", help="input rows, e.g. 200k,1M,10M")
    parser.add_argument("--models", default="hgb,logreg", help="hgb and/or logreg")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=",".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument("--data-dir", type=Path, default=BENCH / "data")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200k,1M rows, hgb only")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell (median is kept)")
    parser.add_argument("--chunk-size", type=int, default=65_536, help="score.chunk_size")
    parser.add_argument(
        "--max-workers", type=int, default=os.cpu_count() or 2, help="workers of the N-worker run"
    )
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
    variants = [v.strip() for v in opts.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS)) + sorted(set(models) - {"hgb", "logreg"})
    if unknown:
        parser.error(f"unknown variant/model: {unknown}")
    variants = [v.replace("batchscore-2w", f"batchscore-{opts.max_workers}w") for v in variants]

    opts.out.mkdir(parents=True, exist_ok=True)
    data = {rows: ensure_dataset(opts.data_dir, rows) for rows in sizes}
    model_paths = {kind: ensure_model(opts.data_dir, kind) for kind in models}
    started = dt.datetime.now(dt.UTC)
    doc: dict[str, Any] = {
        "started_at": started.isoformat(timespec="seconds"),
        "command": " ".join(
            [Path(sys.executable).name, "-m", "bench.run", *(argv or sys.argv[1:])]
        ),
        "machine": machine_info(),
        "config": {
            "sizes": sizes,
            "models": models,
            "variants": variants,
            "repeat": opts.repeat,
            "chunk_size": opts.chunk_size,
            "row_group_rows": ROW_GROUP_ROWS,
            "train_rows": TRAIN_ROWS,
            "pinned_single_core": opts.pin,
            "thread_env": SINGLE_THREAD,
            "shard_rows": {
                size_label(r): shard_layout(r, max(2, opts.max_workers), opts.shard_groups)
                for r in sizes
            },
            "validation_batch_rows": _params_value("validation", "batch_rows"),
        },
        "results": [],
    }
    scratch = opts.out / "tmp"
    total = len(models) * len(sizes) * len(variants)
    done = 0
    for kind in models:
        for rows in sizes:
            for variant in variants:
                done += 1
                attempts = []
                for _ in range(opts.repeat):
                    attempts.append(
                        run_one(variant, data[rows], model_paths[kind], rows, opts, scratch)
                    )
                row = aggregate(attempts) | {"model": kind}
                doc["results"].append(row)
                _log_row(done, total, row)
                doc["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
                doc["wall_s"] = round((dt.datetime.now(dt.UTC) - started).total_seconds(), 1)
                (opts.out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    shutil.rmtree(scratch, ignore_errors=True)
    doc["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    write_outputs(doc, opts.out)
    log.info("wrote %s", ", ".join(str(opts.out / n) for n in _OUTPUTS))
    return 0 if all(r["ok"] for r in doc["results"]) else 1


_OUTPUTS = ("results.json", "results.md", "chart.png")


def _log_row(done: int, total: int, r: dict[str, Any]) -> None:
    if not r["ok"]:
        log.error("[%d/%d] %s %s %s FAILED:\n%s", done, total, r["model"], size_label(r["rows"]),
                  r["variant"], r.get("error", ""))  # fmt: skip
        return
    log.info(
        "[%d/%d] %-6s %4s %-14s %7.2f s %10s rows/s  peak %6.0f MB%s",
        done,
        total,
        r["model"],
        size_label(r["rows"]),
        r["variant"],
        r["work_s"],
        f"{r['rows_per_s']:,.0f}",
        r["peak_rss_mb"],
        f"  validation {r['validate_share']:.1%}" if r.get("validate_share") is not None else "",
    )


if __name__ == "__main__":
    raise SystemExit(main())
