"""Profile one batchscore run (1 worker, so everything is in one process) with pyinstrument.

    .venv/bin/python -m bench.profile                    # 1M rows, hgb
    .venv/bin/python -m bench.profile --rows 1M --model logreg --top 25

Writes <out>/<model>-<rows>.html (open in a browser), .txt (call tree) and .pyisession, and
prints two tables: the hottest functions by self time, and the pipeline's own functions by
inclusive time (where the wall clock goes, step by step).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.measure import measure
from bench.run import BENCH, ensure_dataset, ensure_model, parse_size, shard_layout, size_label


def _walk(frame: Any, seen: frozenset[str], self_t: dict, incl: dict) -> None:
    if frame.is_synthetic:  # [self]/[root] pseudo-frames: counted in their parent's self time
        for child in frame.children:
            _walk(child, seen, self_t, incl)
        return
    key = f"{frame.function} ({frame.file_path_short}:{frame.line_no})"
    self_t[key] += frame.total_self_time
    if key not in seen:  # recursion: count a function's inclusive time once per stack
        incl[key] += frame.time
    for child in frame.children:
        _walk(child, seen | {key}, self_t, incl)


def hot_spots(session_path: Path, top: int) -> tuple[str, float]:
    """Markdown tables of the top functions by self time and the pipeline's by inclusive time."""
    from pyinstrument.session import Session

    session = Session.load(session_path)
    root = session.root_frame()
    self_t: dict[str, float] = defaultdict(float)
    incl: dict[str, float] = defaultdict(float)
    _walk(root, frozenset(), self_t, incl)
    total = root.time
    lines = [f"Profiled wall time: {total:.2f} s", "", "| self s | share | function |",
             "|---:|---:|---|"]  # fmt: skip
    for key, t in sorted(self_t.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| {t:.2f} | {t / total:.1%} | `{key}` |")
    lines += ["", "| inclusive s | share | pipeline function |", "|---:|---:|---|"]
    ours = [(k, t) for k, t in incl.items() if "pipelines/" in k or "pipelines." in k]
    for key, t in sorted(ours, key=lambda kv: -kv[1])[:top]:
        lines.append(f"| {t:.2f} | {t / total:.1%} | `{key}` |")
    return "\n".join(lines) + "\n", total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--rows", default="1M")
    parser.add_argument("--model", default="hgb", choices=["hgb", "logreg"])
    parser.add_argument("--chunk-size", type=int, default=65_536)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "profile")
    parser.add_argument("--data-dir", type=Path, default=BENCH / "data")
    parser.add_argument("--tag", default="", help="suffix for the output names (e.g. before)")
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    rows = parse_size(opts.rows)
    data = ensure_dataset(opts.data_dir, rows)
    model = ensure_model(opts.data_dir, opts.model)
    stem = opts.out / f"{opts.model}-{size_label(rows)}{'-' + opts.tag if opts.tag else ''}"
    shard_rows = shard_layout(rows, 2)
    m = measure(
        [
            "batchscore",
            "--data",
            str(data),
            "--model",
            str(model),
            "--chunk-size",
            str(opts.chunk_size),
            "--workers",
            "1",
            "--shard-rows",
            str(shard_rows),
            "--out",
            str(opts.out / "tmp-run"),
            "--profile",
            str(stem),
        ],  # fmt: skip
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    shutil.rmtree(opts.out / "tmp-run", ignore_errors=True)
    if m.exit_code:
        print(m.stderr_tail)
        return 1
    table, _ = hot_spots(stem.with_suffix(".pyisession"), opts.top)
    stem.with_suffix(".md").write_text(table)
    print(table)
    print(f"run: {m.report['work_s']:.2f} s, stages {m.report['stages']}, "
          f"phases {m.report.get('phases')}")  # fmt: skip
    print(f"profile: {stem}.html / .txt / .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
