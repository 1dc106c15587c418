"""Turn bench results into results.json, results.md (tables + the bar) and chart.png.

.venv/bin/python -m bench.report bench/results/results.json  # re-render from the JSON
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = (
    "scikit-learn",
    "pandas",
    "pyarrow",
    "numpy",
    "great-expectations",
    "skops",
    "threadpoolctl",
    "psutil",
)
ORDER = {"ceiling": 0, "batchscore-1w": 1, "naive": 9}
BARS = {"of_ceiling": 0.80, "rss_growth": 1.25, "scaling": 1.7, "validate_share": 0.15}


def machine_info() -> dict[str, Any]:
    """CPU, cores, RAM, OS, Python and library versions, git revision, current load."""
    from importlib.metadata import PackageNotFoundError, version

    import psutil

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    libs = {}
    for name in LIBRARIES:
        try:
            libs[name] = version(name)
        except PackageNotFoundError:
            libs[name] = None
    rev = _git(["rev-parse", "--short", "HEAD"])
    dirty = bool(_git(["status", "--porcelain", "--untracked-files=no"]))
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "libraries": libs,
        "git_rev": f"{rev}{' (uncommitted changes)' if dirty else ''}" if rev else None,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def _git(args: list[str]) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


# --- the bar -------------------------------------------------------------------------------


def _cell(results: list[dict[str, Any]], model: str, rows: int, variant: str) -> dict | None:
    for r in results:
        if r["model"] == model and r["rows"] == rows and r["variant"] == variant and r["ok"]:
            return r
    return None


def evaluate_bars(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each bar of the issue, per model (and size), with the numbers behind the verdict."""
    results = doc["results"]
    models = doc["config"]["models"]
    sizes = sorted(doc["config"]["sizes"])
    batch_variants = [v for v in doc["config"]["variants"] if v.startswith("batchscore-")]
    multi = next((v for v in batch_variants if v != "batchscore-1w"), None)
    bars = []
    for model in models:
        for rows in sizes:
            one = _cell(results, model, rows, "batchscore-1w")
            ceiling = _cell(results, model, rows, "ceiling")
            if one and ceiling:
                ratio = one["rows_per_s"] / ceiling["rows_per_s"]
                ok = ratio >= BARS["of_ceiling"]
                name = "1 worker >= 80% of ceiling rows/s"
                bars.append(_bar(name, model, rows, ratio, ok, f"{ratio:.0%}"))
            many = _cell(results, model, rows, multi) if multi else None
            if one and many:
                ratio = many["rows_per_s"] / one["rows_per_s"]
                ok = ratio >= BARS["scaling"]
                name = f"{many['workers']} workers >= 1.7x 1 worker"
                bars.append(_bar(name, model, rows, ratio, ok, f"{ratio:.2f}x"))
            for run in (one, many):
                if run and run.get("validate_share") is not None:
                    share = run["validate_share"]
                    name = f"validation < 15% of wall ({run['variant']})"
                    ok = share < BARS["validate_share"]
                    bars.append(_bar(name, model, rows, share, ok, f"{share:.1%}"))
        # Peak memory is set by the shard (= validation batch) size, so only sizes that share
        # the largest input's shard size are comparable (1M and up with the default layout).
        shard_rows = doc["config"].get("shard_rows", {})
        same = [r for r in sizes if shard_rows.get(_label(r)) == shard_rows.get(_label(sizes[-1]))]
        if len(same) > 1:
            lo, hi = same[0], same[-1]
            span = f"{_label(hi)} vs {_label(lo)}"
            for variant in [v for v in doc["config"]["variants"] if v.startswith("batchscore")]:
                a, b = _cell(results, model, lo, variant), _cell(results, model, hi, variant)
                if a and b:
                    g = b["peak_rss_mb"] / a["peak_rss_mb"]
                    name = f"peak RSS flat, {variant} ({span}) <= 1.25x"
                    ok = g <= BARS["rss_growth"]
                    bars.append(_bar(name, model, None, g, ok, f"{g:.2f}x"))
            a, b = _cell(results, model, lo, "naive"), _cell(results, model, hi, "naive")
            if a and b:
                g = b["peak_rss_mb"] / a["peak_rss_mb"]
                name = f"naive peak RSS grows ({span})"
                bars.append(_bar(name, model, None, g, g > 1.5, f"{g:.2f}x"))
    return bars


def _bar(name: str, model: str, rows: int | None, value: float, ok: bool, shown: str) -> dict:
    return {
        "bar": name,
        "model": model,
        "rows": rows,
        "value": round(value, 4),
        "holds": ok,
        "shown": shown,
    }


# --- outputs -------------------------------------------------------------------------------


def _label(rows: int) -> str:
    if rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    return f"{rows // 1_000}k" if rows % 1_000 == 0 else str(rows)


def _sort_key(r: dict[str, Any]) -> tuple:
    return (r["rows"], ORDER.get(r["variant"], 5), r["variant"])


def render_markdown(doc: dict[str, Any]) -> str:
    m, cfg = doc["machine"], doc["config"]
    lines = [
        "# batchscore benchmark",
        "",
        f"`{doc['command']}` - started {doc['started_at']}, took {doc.get('wall_s', '?')} s.",
        "",
        f"**Machine**: {m['cpu']}, {m['logical_cores']} logical cores, {m['ram_gib']} GiB RAM, "
        f"{m['os']}, Python {m['python']}; load average {m['loadavg_start'][0]} at start, "
        f"{(m.get('loadavg_end') or ['?'])[0]} at end (a busy machine makes every number noisy).",
        "",
        "**Libraries**: "
        + ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v)
        + f"; batchscore at git {m.get('git_rev')}.",
        "",
        f"**Setup**: chunk_size {cfg['chunk_size']:,} rows; row groups of "
        f"{cfg['row_group_rows']:,} rows; models trained once on {cfg['train_rows']:,} rows; "
        f"{cfg['repeat']} run(s) per cell (median kept); every process single-threaded "
        f"(OMP/BLAS = 1)"
        + ("; single-core variants pinned to one CPU." if cfg["pinned_single_core"] else "."),
        "score.shard_rows by input size: "
        + ", ".join(f"{k}: {v:,}" for k, v in cfg["shard_rows"].items())
        + f"; validation.batch_rows {cfg['validation_batch_rows']:,} (params.yaml) - one GX call "
        "per shard.",
        "",
        "rows/s = input rows / in-process wall time of the timed work (imports excluded; for "
        "batchscore the whole `batchscore score` call: plan, read, GX, score, write, publish, "
        "commit). *process s* is the whole process from the outside, interpreter start-up "
        "included. Peak RSS: the process tree (workers included), sampled every 50 ms from "
        "outside. *CPU s*: CPU seconds of the timed work, workers included; *vs ceiling, CPU* "
        "compares rows per CPU-second, a check that does not move when other programs share "
        "the machine (the bar itself is judged on wall time). Validation share: see "
        "bench/README.md.",
        "",
    ]
    for model in cfg["models"]:
        rows = sorted((r for r in doc["results"] if r["model"] == model), key=_sort_key)
        lines += [
            f"## {model}",
            "",
            "| rows | variant | wall s | rows/s | vs ceiling | CPU s | vs ceiling, CPU | "
            "peak RSS MB | validation | process s |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            if not r["ok"]:
                lines.append(f"| {_label(r['rows'])} | {r['variant']} | FAILED |" + " |" * 7)
                continue
            ceiling = _cell(doc["results"], model, r["rows"], "ceiling")
            vs = f"{r['rows_per_s'] / ceiling['rows_per_s']:.0%}" if ceiling else ""
            vs_cpu = (
                f"{r['rows_per_cpu_s'] / ceiling['rows_per_cpu_s']:.0%}"
                if ceiling and r.get("rows_per_cpu_s") and ceiling.get("rows_per_cpu_s")
                else ""
            )
            share = r.get("validate_share")
            val = "pending" if share is None else f"{share:.1%} ({r['validate_s']:.2f} s)"
            if r["variant"] == "ceiling":
                val = ""
            lines.append(
                f"| {_label(r['rows'])} | {r['variant']} | {r['work_s']:.2f} | "
                f"{r['rows_per_s']:,.0f} | {vs} | {r.get('cpu_s', 0):.2f} | {vs_cpu} | "
                f"{r['peak_rss_mb']:,.0f} | {val} | "
                f"{r['process_wall_s']:.1f} |"
            )
        lines += [
            "",
            "Where batchscore's time goes (seconds; shard stages summed over shards):",
            "",
        ]
        stage_keys = ("read", "prepare", "validate", "predict", "write", "upload", "total")
        lines += [
            "| rows | variant | shards | " + " | ".join(stage_keys) + " | plan | finalize |",
            "|---:|---|---:|" + "---:|" * (len(stage_keys) + 2),
        ]
        for r in rows:
            if r["ok"] and r["variant"].startswith("batchscore"):
                st, ph = r.get("stages", {}), r.get("phases", {})
                lines.append(
                    f"| {_label(r['rows'])} | {r['variant']} | {r.get('shards', '')} | "
                    + " | ".join(f"{st.get(k, 0):.2f}" for k in stage_keys)
                    + f" | {ph.get('plan', 0):.2f} | {ph.get('finalize', 0):.2f} |"
                )
        naive = [r for r in rows if r["ok"] and r["variant"] == "naive"]
        if naive:
            lines += ["", "Naive script stages (seconds):", ""]
            lines += [
                "| rows | read | validate (GX) | predict | write |",
                "|---:|---:|---:|---:|---:|",
            ]
            for r in naive:
                st = r["stages"]
                gx = f"{st['validate']:.2f}" if "validate" in st else "pending"
                lines.append(
                    f"| {_label(r['rows'])} | {st['read']:.2f} | {gx} | {st['predict']:.2f} | "
                    f"{st['write']:.2f} |"
                )
        lines.append("")
    bars = evaluate_bars(doc)
    lines += ["## The bar", "", "| bar | model | rows | value | holds |", "|---|---|---:|---:|---|"]
    for b in bars:
        lines.append(
            f"| {b['bar']} | {b['model']} | {_label(b['rows']) if b['rows'] else ''} | "
            f"{b['shown']} | {'yes' if b['holds'] else '**no**'} |"
        )
    lines += ["", "![rows/s and peak RSS by input size](chart.png)", ""]
    return "\n".join(lines)


def render_chart(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = doc["config"]["models"]
    fig, axes = plt.subplots(2, len(models), figsize=(6.5 * len(models), 8), squeeze=False)
    variants = sorted({r["variant"] for r in doc["results"]}, key=lambda v: ORDER.get(v, 5))
    styles = {"ceiling": "k--", "naive": "r-o"}
    for col, model in enumerate(models):
        for variant in variants:
            pts = sorted(
                (r["rows"], r["rows_per_s"], r["peak_rss_mb"])
                for r in doc["results"]
                if r["model"] == model and r["variant"] == variant and r["ok"]
            )
            if not pts:
                continue
            xs = [p[0] / 1e6 for p in pts]
            style = styles.get(variant, "-o")
            axes[0][col].plot(xs, [p[1] / 1e3 for p in pts], style, label=variant)
            axes[1][col].plot(xs, [p[2] for p in pts], style, label=variant)
        axes[0][col].set_title(f"{model}: throughput")
        axes[0][col].set_ylabel("k rows/s (higher is better)")
        axes[1][col].set_title(f"{model}: peak RSS (process tree)")
        axes[1][col].set_ylabel("MB (lower is better)")
        for ax in axes[:, col]:
            ax.set_xlabel("input rows (millions)")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    m = doc["machine"]
    fig.suptitle(
        f"batchscore vs ceiling vs naive - {m['cpu']}, {m['logical_cores']} cores, "
        f"{m['ram_gib']} GiB",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(doc: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    doc["bars"] = evaluate_bars(doc)
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / "results.md").write_text(render_markdown(doc))
    render_chart(doc, out / "chart.png")


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    path = Path(args[0]) if args else ROOT / "bench/results/results.json"
    write_outputs(json.loads(path.read_text()), path.parent)
    print(f"rendered {path.parent / 'results.md'} and chart.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
