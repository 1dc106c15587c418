"""What any run must spend besides the model's predict, and the best share of the ceiling it allows.

    python -m bench.floors --rows 5M --model hgb [--repeat 3] [--t1 28.6] [--out DIR]

#17's bar is judged on the whole process, imports included. Some of that time is not the
pipeline's to cut: a process that scores with the model must start Python, import the model's
libraries and load it; one whose gate is GX must import GX; and every row must be read once.
Each is timed here in its own fresh process on one pinned core (single-threaded, like the
benchmark), none of them doing anything of batchscore's, and added to the ceiling (bare
`predict_proba` over in-memory chunks, `bench.variants ceiling`). The ratio is an upper bound:
a pipeline with no overhead of its own (no validation, no hashing, no writing) would reach it,
and no more. For 2 workers the bound is Amdahl's: the floors stay serial (each process pays them
before its first row) and the rest, at best, halves, slowed by what two busy cores cost each other
(measured: two ceilings at once, one per core).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.inputs import (
    BENCH,
    ROOT,
    SINGLE_THREAD,
    ensure_dataset,
    ensure_model,
    parse_size,
    size_label,
)
from bench.measure import measure

# What each child process does. `model` is what any script that scores with the model needs before
# its first predict (the bare skops load, trusting what the file holds: a floor, not a policy);
# `gx` adds the one import a GX gate cannot do without; `read` decodes every row once.
_LOAD = (
    "import pyarrow.parquet, pandas, skops.io as sio\n"
    "sio.load(sys.argv[1], trusted=sio.get_untrusted_types(file=sys.argv[1]))\n"
)
CHILDREN = {
    "interpreter": "pass\n",
    "model": _LOAD,
    "model+gx": _LOAD + "import great_expectations\n",
    "read": "import pyarrow.parquet, pandas, time, json\n"
    "pyarrow.set_memory_pool(pyarrow.jemalloc_memory_pool())  # as a scoring process does\n"
    "t = time.perf_counter()\n"
    "f = pyarrow.parquet.ParquetFile(sys.argv[2])\n"
    "for b in f.iter_batches(batch_size=65_536):\n"
    "    pyarrow.Table.from_batches([b]).to_pandas(split_blocks=True, self_destruct=True)\n"
    "print(json.dumps({'read_s': time.perf_counter() - t}))\n",
}


@dataclass(frozen=True)
class Floors:
    """Seconds, the fastest of the repeats (a floor is generous to the pipeline), one pinned
    core each."""

    interpreter_s: float  # `python -c pass`, start to exit
    model_process_s: float  # start, import pandas/pyarrow/sklearn/skops, load the model, exit
    gx_import_s: float  # what `import great_expectations` adds to that process
    read_s: float  # decode every row of the input to pandas once, in a warm process
    ceiling_s: float  # bare predict_proba over in-memory chunks (the bar's ceiling)
    concurrent_slowdown: float  # a ceiling's time with the other core busy too / alone

    @property
    def fixed_s(self) -> float:
        """What a process with a GX gate pays before its first row, whatever the input."""
        return self.model_process_s + self.gx_import_s

    @property
    def best_share(self) -> float:
        """The highest whole-process % of the ceiling any gated run can reach (as a fraction)."""
        return self.ceiling_s / (self.ceiling_s + self.fixed_s + self.read_s)

    def best_speedup(self, t1: float | None = None) -> float:
        """2 workers over 1 at best, for a 1-worker run of `t1` s (default: the fastest possible
        one, floors + ceiling): the fixed part stays serial, the rest halves, slowed by the
        measured cost of both cores busy."""
        t1 = t1 if t1 is not None else self.fixed_s + self.read_s + self.ceiling_s
        work = t1 - self.fixed_s
        return t1 / (self.fixed_s + self.concurrent_slowdown * work / 2)


def _env() -> dict[str, str]:
    return os.environ | SINGLE_THREAD | {"PYTHONPATH": str(ROOT)}


def _child(kind: str, model: Path, data: Path, cpu: int) -> tuple[float, dict[str, Any]]:
    """Run one child on `cpu`; its wall time start to exit, and what it printed (JSON)."""
    # exit as the console script does (`pipelines.cli.main.exit_now`): no interpreter teardown,
    # which for a process that imported GX costs more than a second and is nobody's work
    code = "import os, sys\n" + CHILDREN[kind] + "sys.stdout.flush()\nos._exit(0)\n"
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, str(model), str(data)],
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"bench.floors: the {kind!r} child failed:\n{done.stderr[-2000:]}")
    out = done.stdout.strip().splitlines()
    return wall, json.loads(out[-1]) if out else {}


def _ceiling(model: Path, data: Path, cpus: set[int]) -> float:
    args = ["ceiling", "--data", str(data), "--model", str(model)]
    m = measure(args, env=_env(), cpus=cpus, cwd=ROOT)
    if m.exit_code:
        raise SystemExit(f"bench.floors: the ceiling failed:\n{m.stderr_tail}")
    return float(m.report["work_s"])


def _concurrent_ceilings(model: Path, data: Path, cores: list[int]) -> list[float]:
    """Two ceilings at once, one pinned to each core: what a 2-worker run's scoring meets."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda c: _ceiling(model, data, {c}), cores[:2]))


def measure_floors(model: Path, data: Path, repeat: int) -> Floors:
    """Each floor `repeat` times, interleaved, on the last core; the fastest of each."""
    cores = sorted(os.sched_getaffinity(0))
    cpu = cores[-1]
    runs: dict[str, list[float]] = {k: [] for k in (*CHILDREN, "ceiling", "concurrent")}
    for _ in range(repeat):
        for kind in CHILDREN:
            wall, out = _child(kind, model, data, cpu)
            runs[kind].append(out.get("read_s", wall))
        runs["ceiling"].append(_ceiling(model, data, {cpu}))
        if len(cores) >= 2:
            runs["concurrent"].append(statistics.mean(_concurrent_ceilings(model, data, cores)))
    best = {k: min(v) if v else float("nan") for k, v in runs.items()}
    return Floors(
        interpreter_s=best["interpreter"],
        model_process_s=best["model"],
        gx_import_s=best["model+gx"] - best["model"],
        read_s=best["read"],
        ceiling_s=best["ceiling"],
        concurrent_slowdown=best["concurrent"] / best["ceiling"],
    )


def render(floors: Floors, label: str, model: str, t1: float | None) -> str:
    """The floors and the bounds they set, beside #17's bar."""
    f = floors
    lines = [
        f"## Floors: {model}, {label} rows, one pinned core",
        "",
        "| what every gated run pays | s |",
        "|---|---:|",
        f"| Python start and exit (`python -c pass`) | {f.interpreter_s:.2f} |",
        f"| start, import pandas/pyarrow/sklearn/skops, load the model, exit | "
        f"{f.model_process_s:.2f} |",
        f"| `import great_expectations` on top of that | {f.gx_import_s:.2f} |",
        f"| read every row to pandas once | {f.read_s:.2f} |",
        f"| the ceiling (bare predict_proba) | {f.ceiling_s:.2f} |",
        f"| two ceilings at once, one per core: each takes | {f.concurrent_slowdown:.2f}x |",
        "",
        f"- Fixed cost before the first row, gate on: **{f.fixed_s:.2f} s** "
        "(a 1,000-row run cannot be faster; the bar is 1.5 s).",
        f"- Best whole-process share of the ceiling: **{f.best_share:.0%}** "
        "(ceiling / (ceiling + fixed + read); no validation, hashing or writing counted).",
        f"- Best 2-worker speed-up for the fastest possible 1-worker run: "
        f"**{f.best_speedup():.2f}x**"
        + (f"; for a 1-worker run of {t1:.2f} s: **{f.best_speedup(t1):.2f}x**" if t1 else "")
        + " (the bar is 1.8x).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.floors", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="5M", help="input rows, e.g. 2M or 5M")
    parser.add_argument("--model", default="hgb", choices=["hgb", "logreg"])
    parser.add_argument("--repeat", type=int, default=3, help="runs per floor (fastest kept)")
    parser.add_argument("--t1", type=float, help="a measured 1-worker process s, for the 2w bound")
    parser.add_argument("--data-dir", type=Path, default=BENCH / "data")
    parser.add_argument("--out", type=Path, help="write floors.md and floors.json here")
    args = parser.parse_args(argv)
    rows = parse_size(args.rows)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    data, model = ensure_dataset(args.data_dir, rows), ensure_model(args.data_dir, args.model)
    floors = measure_floors(model, data, args.repeat)
    text = render(floors, size_label(rows), args.model, args.t1)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        stem = f"floors-{args.model}-{size_label(rows)}"
        (args.out / f"{stem}.md").write_text(text)
        doc = asdict(floors) | {"best_share": floors.best_share, "fixed_s": floors.fixed_s}
        (args.out / f"{stem}.json").write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
