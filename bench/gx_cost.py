"""What one GX validation call costs: a fixed part per call and a part per row, by expectation type.

    .venv/bin/python -m bench.gx_cost            # input suite, a 524,288-row batch and 1,000 rows

CPU seconds (best of 3), so the numbers hold on a busy machine. The fixed part (the 1,000-row
call) is paid once per validation batch, which is why batches are shard-sized.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from bench.run import BENCH, ROOT, ensure_dataset, parse_size


def cpu(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    import pyarrow as pa

    from pipelines.data.read import read_batches
    from pipelines.data.source import inspect_input, plan_shards
    from pipelines.quality.gate import StreamingGate
    from pipelines.quality.gx import run_gx
    from pipelines.quality.suite import load_suite, parse_suite

    parser = argparse.ArgumentParser(prog="python -m bench.gx_cost", description=__doc__)
    parser.add_argument("--rows", default="524288", help="rows in the batch")
    parser.add_argument("--suite", type=Path, default=ROOT / "validation/input_suite.json")
    opts = parser.parse_args(argv)
    pa.set_cpu_count(1)
    rows = parse_size(opts.rows)
    data = ensure_dataset(BENCH / "data", max(rows, 1_000_000))
    info = inspect_input(data, "parquet")
    frame = next(read_batches(info, plan_shards(info, 10**9)[0], rows))
    small = frame.iloc[:1_000]
    suite = load_suite(opts.suite)
    raw = json.loads(opts.suite.read_text())
    first = cpu(lambda: run_gx(suite, frame), repeat=1)
    print(f"suite {suite.name}: {len(suite.gx_specs)} expectations run by GX per batch")
    print(f"first call in the process: {first:.3f} s CPU ({len(frame):,} rows)")
    print(f"{'expectations':<58} {'n':>3} {len(frame):>10,} rows {1_000:>8,} rows")
    total_big, total_small = cpu(lambda: run_gx(suite, frame)), cpu(lambda: run_gx(suite, small))
    print(f"{'all':<58} {len(suite.gx_specs):>3} {total_big:>13.3f} s {total_small:>11.3f} s")
    for etype in sorted({e["type"] for e in raw["expectations"]}):
        sub = parse_suite({**raw, "expectations": [e for e in raw["expectations"]
                                                    if e["type"] == etype]}, "subset")  # fmt: skip
        if not sub.gx_specs:
            continue
        big, tiny = cpu(lambda s=sub: run_gx(s, frame)), cpu(lambda s=sub: run_gx(s, small))
        print(f"{etype:<58} {len(sub.gx_specs):>3} {big:>13.3f} s {tiny:>11.3f} s")
    gate = StreamingGate(suite, "customer_id")
    whole = cpu(lambda: gate.check_batch(frame), repeat=2)
    print(f"StreamingGate.check_batch (GX + our row masks + ID hashes): {whole:.3f} s CPU")
    per_row = (total_big - total_small) / (len(frame) - 1_000)
    print(
        f"=> fixed ~{total_small:.2f} s per call, ~{per_row * 1e6:.2f} s per million rows: "
        f"{(total_small + per_row * 1e6):.2f} s per 1M rows in 1M-row batches, "
        f"{(2 * total_small + per_row * 1e6):.2f} s in 500k-row batches"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
