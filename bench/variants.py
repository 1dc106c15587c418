"""The measured programs. Each runs in its own process, started by `bench.measure`.

    python -m bench.variants ceiling    --data F --model M --chunk-size N --report R
    python -m bench.variants batchscore --data F --model M --workers W --shard-rows S ... --report R
    python -m bench.variants naive      --data F --model M --out F --report R
    python -m bench.variants labels     --data LABELS --model M --out DIR --run-key K --report R

Every variant imports its libraries *before* its timer starts, so `work_s` compares the work and
not interpreter start-up; the parent also records the whole process wall time. Each writes a JSON
report (rows, `work_s`, per-stage seconds) to `--report`.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class Clock:
    """Wall seconds and CPU seconds (this process plus the children it reaped, e.g. the pool's
    workers) of the timed work. CPU time is a check on a busy machine: it does not grow when
    other programs take the cores, wall time does."""

    def __init__(self) -> None:
        self.wall0, self.cpu0, self.epoch0 = time.perf_counter(), self._cpu(), time.time()

    @staticmethod
    def _cpu() -> float:
        me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    def stop(self) -> dict[str, float]:
        """The timed work, and when it began and ended (epoch s): the parent, which knows when
        the process started and exited, splits the rest into start-up and exit."""
        return {
            "work_s": time.perf_counter() - self.wall0,
            "cpu_s": self._cpu() - self.cpu0,
            "work_began_at": self.epoch0,
            "work_ended_at": time.time(),
        }


def _load_model(model: Path) -> Any:
    from pipelines.model.artifact import load_model

    return load_model(model, pinned_sha256=None, card_path=model.with_name("model.card.json"))


# --- 1. ceiling: bare predict_proba over in-memory chunks -------------------------------------


def run_ceiling(args: argparse.Namespace) -> dict[str, Any]:
    """`predict_proba` over chunks already in memory as pandas; nothing else is timed."""
    import pyarrow.parquet as pq
    from threadpoolctl import threadpool_limits

    loaded = _load_model(args.model)
    features = [f.name for f in loaded.features]
    frame = pq.read_table(args.data, columns=features).to_pandas()
    n = len(frame)
    chunks = [frame.iloc[s : s + args.chunk_size] for s in range(0, n, args.chunk_size)]
    est = loaded.estimator
    with threadpool_limits(1):
        est.predict_proba(chunks[0].iloc[:1_000])  # first-call set-up is not the model's rate
        clock = Clock()
        for chunk in chunks:
            est.predict_proba(chunk)
        spent = clock.stop()
    return {"rows": n, **spent, "chunks": len(chunks), "stages": {"predict": spent["work_s"]}}


# --- 2. batchscore: the real pipeline through its CLI --------------------------------------


def run_batchscore(args: argparse.Namespace) -> dict[str, Any]:
    """`batchscore score` in this process (its workers are child processes), fully instrumented.

    Only timers are added: plan_run, finalize_run and the run-level quality verdict are wrapped
    to time them; nothing the pipeline does is changed.
    """
    import skops.io  # noqa: F401  (imported before the timer, like the other variants)

    import pipelines.run.finalize as finalize
    import pipelines.run.pipeline as run
    from pipelines.cli import main

    _preimport_gate(args.set, args.workers)
    phases: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - t

        return wrapper

    # wrapped where they are looked up: run_pipeline calls the first two, publish_run the last
    for name, module, attr in (("plan", run, "plan_run"), ("finalize", run, "finalize_run"),
                               ("verdict", finalize, "quality_verdicts")):  # fmt: skip
        if hasattr(module, attr):  # a renamed function only loses its timer
            setattr(module, attr, timed(name, getattr(module, attr)))
    summary = args.out / "manifest.json"
    argv = score_argv(
        args.data, args.model, args.out, workers=args.workers, chunk_size=args.chunk_size,
        shard_rows=args.shard_rows, sets=args.set, run_key=args.run_key, overwrite=args.overwrite,
    )  # fmt: skip
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    clock = Clock()
    code = main(argv)
    spent = clock.stop()
    if profiler:
        profiler.stop()
        _save_profile(profiler, args.profile)
    if code:
        raise SystemExit(f"batchscore exited with {code}")
    manifest = json.loads(summary.read_text())
    timings = manifest["timings"]
    return {
        "rows": manifest["counts"]["rows_in"],
        "rows_scored": manifest["counts"]["rows_scored"],
        "rows_quarantined": manifest["counts"]["rows_quarantined"],
        **spent,
        "shards": manifest["shards"],
        "chunks": manifest["chunks"],
        "workers": args.workers,
        "stages": {k: v for k, v in timings.items() if k != "wall"},
        "phases": phases,
        "manifest_wall_s": timings.get("wall"),
        "gx": _gx_seconds(manifest.get("quality", {})),
        "manifest": _manifest_facts(manifest),
    }


def score_argv(
    data: Path,
    model: Path,
    out: Path,
    *,
    workers: int,
    chunk_size: int,
    shard_rows: int,
    sets: list[str] | tuple[str, ...] = (),
    run_key: str = "bench",
    overwrite: bool = True,
) -> list[str]:
    """The `batchscore score` arguments of one bench cell: the wrapper here and the start-up
    cells (the real console script, `bench.cells`) run the same command."""
    return [
        "score",
        "--params", str(ROOT / "params.yaml"),
        "--input", str(data),
        "--model", str(model),
        "--output", f"file://{out / 'bucket'}",
        "--run-key", run_key,
        "--workers", str(workers),
        "--chunk-size", str(chunk_size),
        "--summary", str(out / "manifest.json"),
        *(["--overwrite"] if overwrite else []),
        "--set", "score.progress=off",
        "--set", f"score.shard_rows={shard_rows}",
        *[a for kv in sets for a in ("--set", kv)],
    ]  # fmt: skip


def _preimport_gate(sets: list[str], workers: int = 1) -> None:
    """Import GX before the timer only when this run's gate will import it anyway, and before
    its work starts (not on a pool with the fast engine: that run imports GX while it scores).

    The whole-process time must stay what `batchscore score` costs: GX takes ~1.8 s to import,
    and a run with the gate off, or with the fast engine and no GX audit (`audit_rows` 0), never
    imports it. A config this cannot read (an unknown key) pre-imports nothing; `batchscore
    score` then fails the same way.
    """
    from pipelines.config import load_config

    overrides = dict(kv.split("=", 1) for kv in sets if "=" in kv)
    overrides["score.workers"] = str(workers)
    try:
        cfg = load_config(ROOT / "params.yaml", overrides)
    except Exception:  # noqa: BLE001 - the run itself reports it
        return
    validation = cfg.validation
    if not validation.enabled:
        return
    import pipelines.quality.gate  # noqa: F401

    try:
        from pipelines.run.gx_overlap import overlaps_gx_check
    except ImportError:  # a tree from before the overlap
        overlaps_gx_check = None
    if overlaps_gx_check is not None and overlaps_gx_check(cfg):
        return  # the run imports GX itself, in the parent while its workers score
    engine = getattr(validation, "engine", "gx")
    if engine == "gx" or getattr(validation, "audit_rows", 0):
        import great_expectations  # noqa: F401


def _manifest_facts(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the monitoring/challenger/resume benchmark reads from the manifest: kept small, so
    the report JSON holds the evidence (content hash, reuse count) without the whole manifest."""
    challenger, mon = manifest.get("challenger") or {}, manifest.get("monitoring") or {}
    return {
        "content_sha256": manifest.get("content_sha256"),
        "shards_reused": manifest.get("shards_reused", 0),
        "monitor_s": manifest.get("timings", {}).get("monitor"),
        "challenger_s": manifest.get("timings", {}).get("challenger"),
        "challenger_comparison": challenger.get("comparison"),
        "estimated_performance": manifest.get("estimated_performance"),
        "drift_status": mon.get("status") or (mon.get("drift") or {}).get("status"),
    }


def _gx_seconds(quality: dict[str, Any]) -> dict[str, float]:
    """GX vs our own mask/hash seconds inside the gates, when the verdict reports them."""
    out: dict[str, float] = {}
    for gate in ("input", "output"):
        timings = (quality.get(gate) or {}).get("timings") or {}
        for key, value in timings.items():
            if isinstance(value, int | float):
                out[f"{gate}_{key}"] = float(value)
    return out


def _save_profile(profiler: Any, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".html").write_text(profiler.output_html())
    out.with_suffix(".txt").write_text(
        profiler.output_text(unicode=False, color=False, show_all=False)
    )
    profiler.last_session.save(out.with_suffix(".pyisession"))


# --- 3. naive: what a user would write without a pipeline ----------------------------------


def run_naive(args: argparse.Namespace) -> dict[str, Any]:
    """pandas reads the whole file, GX validates the whole frame, predict, `to_parquet`."""
    import numpy as np
    import pandas as pd

    try:
        import great_expectations as gx

        from pipelines.quality.suite import load_suite
    except ImportError:  # the quality module is not there yet: measure the rest
        gx = None
    loaded = _load_model(args.model)
    est, features = loaded.estimator, [f.name for f in loaded.features]
    stages: dict[str, float] = {}
    gx_result: dict[str, Any] = {"status": "pending: pipelines.quality.suite not available"}

    clock = Clock()
    frame = pd.read_parquet(args.data)
    stages["read"] = time.perf_counter() - clock.wall0

    if gx is not None:
        t = time.perf_counter()
        suite = load_suite(args.input_suite)
        context = gx.get_context(mode="ephemeral")
        batch = (
            context.data_sources.add_pandas("naive")
            .add_dataframe_asset("frame")
            .add_batch_definition_whole_dataframe("all")
            .get_batch(batch_parameters={"dataframe": frame})
        )
        gx_suite = gx.ExpectationSuite(name=suite.name, expectations=suite.raw["expectations"])
        result = batch.validate(gx_suite)
        stages["validate"] = time.perf_counter() - t
        gx_result = {
            "status": "ran",
            "success": bool(result.success),
            "expectations": len(result.results),
        }

    t = time.perf_counter()
    proba = est.predict_proba(frame[features])
    stages["predict"] = time.perf_counter() - t

    t = time.perf_counter()
    best = proba.argmax(axis=1)
    pd.DataFrame(
        {
            "customer_id": frame["customer_id"],
            "score": proba[:, 1],
            "predicted_class": np.asarray(est.classes_)[best],
            "model_version": loaded.version,
            "run_key": "bench",
        }
    ).to_parquet(args.out, index=False)
    stages["write"] = time.perf_counter() - t
    return {"rows": len(frame), **clock.stop(), "stages": stages, "gx": gx_result}


# --- 4. labels add: a label delivery joined to a published run -----------------------------


def run_labels(args: argparse.Namespace) -> dict[str, Any]:
    """`batchscore labels add --json` in this process; its printed JSON is the report's counts.

    The outcomes modules are imported before the timer, like the pipeline's in `run_batchscore`,
    so `work_s` is the join and the evaluation, not interpreter start-up.
    """
    import contextlib
    import io

    import pipelines.outcomes.add  # noqa: F401
    from pipelines.cli import main

    argv = [
        "labels", "add",
        "--params", str(ROOT / "params.yaml"),
        "--labels", str(args.data),
        "--run-key", args.run_key,
        "--output", f"file://{args.out / 'bucket'}",
        "--json",
        *[a for kv in args.set for a in ("--set", kv)],
    ]  # fmt: skip
    printed = io.StringIO()
    clock = Clock()
    with contextlib.redirect_stdout(printed):
        code = main(argv)
    spent = clock.stop()
    if code:
        raise SystemExit(f"batchscore labels add exited with {code}")
    result = json.loads(printed.getvalue())
    counts = result.get("counts", {})
    return {"rows": counts.get("rows_read"), **spent, "labels": result}


# --- entry point ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.variants")
    parser.add_argument("variant", choices=["ceiling", "batchscore", "naive", "labels"])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--chunk-size", type=int, default=65_536)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--shard-rows", type=int, default=524_288)
    parser.add_argument("--out", type=Path, help="output folder (batchscore) or file (naive)")
    parser.add_argument("--input-suite", type=Path, default=ROOT / "validation/input_suite.json")
    parser.add_argument("--profile", type=Path, help="pyinstrument profile to this path stem")
    parser.add_argument("--run-key", default="bench", help="batchscore/labels: the run key")
    parser.add_argument(
        "--set", action="append", default=[], help="batchscore/labels: a --set KEY=VALUE"
    )
    parser.add_argument(
        "--no-overwrite",
        dest="overwrite",
        action="store_false",
        help="batchscore: no --overwrite (a rerun then resumes an interrupted attempt)",
    )
    args = parser.parse_args(argv)
    run = {
        "ceiling": run_ceiling,
        "batchscore": run_batchscore,
        "naive": run_naive,
        "labels": run_labels,
    }
    report = run[args.variant](args)
    report["variant"] = args.variant
    args.report.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    code = main()
    if set(sys.argv[1:2]) & {"batchscore", "labels"}:  # stand-ins for the `batchscore` script:
        from pipelines.cli.main import exit_now  # they exit as it does (no teardown)

        exit_now(code)
    raise SystemExit(code)
