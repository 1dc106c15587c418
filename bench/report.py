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

from bench.bar import evaluate_bars, label, startup_rows, summary_rows

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
ORDER = {"startup": -2, "startup-nogate": -1, "ceiling": 0, "batchscore-1w": 1, "naive": 9}


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


# --- results.md ------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:.0%}"


def _signed(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _s(x: float | None, digits: int = 2) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def _header(doc: dict[str, Any]) -> list[str]:
    m, cfg = doc["machine"], doc["config"]
    quick = " **A `--quick` smoke run: small sizes, one model.**" if doc.get("quick") else ""
    return [
        "# batchscore benchmark",
        "",
        f"`{doc['command']}` - started {doc['started_at']}, "
        f"took {doc.get('wall_s', '?')} s.{quick}",
        "",
        f"**Machine**: {m['cpu']}, {m['logical_cores']} logical cores, {m['ram_gib']} GiB RAM, "
        f"{m['os']}, Python {m['python']}; load average {m['loadavg_start'][0]} at start, "
        f"{(m.get('loadavg_end') or ['?'])[0]} at end (a busy machine makes every number noisy; "
        "each run's load is in the runs table).",
        "",
        "**Libraries**: "
        + ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v)
        + f"; batchscore at git {m.get('git_rev')}.",
        "",
        f"**Setup**: chunk_size {cfg['chunk_size']:,} rows; row groups of "
        f"{cfg['row_group_rows']:,} rows; models trained once on {cfg['train_rows']:,} rows, "
        f"with their drift baseline; {cfg['repeat']} run(s) per cell, start-up cells "
        f"{cfg.get('startup_repeat', '?')} (medians kept); every process single-threaded "
        "(OMP/BLAS = 1)"
        + ("; 1-worker variants pinned to one CPU." if cfg["pinned_single_core"] else ".")
        + " score.shard_rows by input size: "
        + ", ".join(f"{k}: {v:,}" for k, v in cfg["shard_rows"].items())
        + ".",
        "",
        "*Ceiling*: bare `predict_proba` over in-memory chunks on one pinned core, in-loop s. "
        "*In-loop*: batchscore's timed work (the `batchscore score` call, imports excluded). "
        "*Process*: the whole process from outside, start to exit, imports included: what a user "
        "waits for. % of ceiling = ceiling s / batchscore s. 2w speed-up = process s of 1 worker "
        "/ 2 workers. Drift added = process s with drift on (the default) / drift off - 1. "
        "Challenger extra = process s with `model.challenger` - without, against the "
        "challenger's own predict (manifest `timings.challenger`). Peak RSS: the process tree, "
        "sampled every 50 ms from outside. Method: bench/README.md.",
        "",
    ]


def _summary_table(doc: dict[str, Any]) -> list[str]:
    lines = [
        "## Against the ceiling (1 worker, gate on, drift on)",
        "",
        "| model | rows | ceiling s | in-loop s | process s | in-loop % of ceiling | "
        "whole-process % of ceiling (by CPU s) | 2w speed-up | drift added (by CPU s) | "
        "challenger extra s (by CPU s) / its own predict s | peak RSS MB 1w / 2w |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summary_rows(doc):
        extra, own = s["challenger_extra_s"], s["challenger_own_s"]
        chal = (
            f"{extra:+.2f} ({_signed(s.get('challenger_extra_cpu_s'), '+.2f')}) / {_s(own)}"
            if extra is not None
            else ""
        )
        drift = (
            f"{s['drift_added']:+.1%} ({_signed(s.get('drift_added_cpu'), '+.1%')})"
            if s["drift_added"] is not None
            else ""
        )
        cpu = s.get("process_of_ceiling_cpu")
        whole = _pct(s["process_of_ceiling"]) + (f" ({cpu:.0%})" if cpu else "")
        speed = f"{s['speedup_2w']:.2f}x" if s["speedup_2w"] else ""
        rss = " / ".join(f"{x:,.0f}" if x else "-" for x in (s["peak_rss_1w_mb"],
                                                              s["peak_rss_2w_mb"]))  # fmt: skip
        lines.append(
            f"| {s['model']} | {label(s['rows'])} | {_s(s['ceiling_s'])} | {_s(s['inloop_s'])} | "
            f"{_s(s['process_s'])} | {_pct(s['inloop_of_ceiling'])} | "
            f"{whole} | {speed} | {drift} | {chal} | {rss} |"
        )
    return [*lines, ""]


def _startup_table(doc: dict[str, Any]) -> list[str]:
    rows = startup_rows(doc)
    if not rows:
        return []
    n = doc["config"].get("startup_rows", 1_000)
    lines = [
        f"## Start-up: {n:,} rows, the `batchscore score` console script, 1 pinned core",
        "",
        "| model | gate | process s (median) | runs s | run's own wall s | of which plan s | "
        "outside the run s (imports, exit) | process CPU s | peak RSS MB |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        gate = "on" if r["variant"] == "startup" else "off"
        if not r["ok"]:
            lines.append(f"| {r['model']} | {gate} | FAILED: {r['reason']} |" + " |" * 6)
            continue
        runs = ", ".join(f"{x:.2f}" for x in r["runs_s"])
        lines.append(
            f"| {r['model']} | {gate} | {r['process_s']:.2f} | {runs} | {r['run_wall_s']:.2f} | "
            f"{_s(r['plan_s'])} | {r['outside_run_s']:.2f} | {_s(r['process_cpu_s'])} | "
            f"{r['peak_rss_mb']:,.0f} |"
        )
    return [*lines, ""]


def _bar_table(doc: dict[str, Any]) -> list[str]:
    lines = [
        "## The bar",
        "",
        "| criterion | model | rows | measured | holds |",
        "|---|---|---:|---|---|",
    ]
    for b in evaluate_bars(doc):
        holds = {True: "yes", False: "**no**", None: "not measured"}[b["holds"]]
        rows = label(b["rows"]) if b["rows"] else ""
        lines.append(f"| {b['bar']} | {b['model']} | {rows} | {b['shown']} | {holds} |")
    return [*lines, ""]


def _sort_key(r: dict[str, Any]) -> tuple:
    return (r["rows"], ORDER.get(r["variant"], 5), r["variant"])


def _cells_table(doc: dict[str, Any], model: str) -> list[str]:
    """Every cell of one model: both timings, CPU as the noise check, memory, each run."""
    lines = [
        f"## {model}: every cell",
        "",
        "| rows | variant | in-loop s | process s | before / after the work s | "
        "CPU s (in-loop / process) | peak RSS MB | validation | runs: process s @ load |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    rows = sorted((r for r in doc["results"] if r["model"] == model), key=_sort_key)
    for r in rows:
        if not r["ok"]:
            reason = (r.get("reason") or "").replace("|", "/")
            lines.append(f"| {label(r['rows'])} | {r['variant']} | FAILED: {reason} |" + " |" * 6)
            continue
        share = r.get("validate_share")
        val = "" if share is None else f"{share:.1%} ({r['validate_s']:.2f} s)"
        runs = r.get("runs") or [r]
        shown = ", ".join(
            f"{x['process_wall_s']:.2f} @ {x.get('loadavg_before', '?')}" if x["ok"] else "failed"
            for x in runs
        )
        lines.append(
            f"| {label(r['rows'])} | {r['variant']} | {r['work_s']:.2f} | "
            f"{r['process_wall_s']:.2f} | {_outside(r)} | "
            f"{_s(r.get('cpu_s'))} / {_s(r.get('process_cpu_s'))} | "
            f"{r['peak_rss_mb']:,.0f} | {val} | {shown} |"
        )
    return [*lines, "", *_stage_table(rows), *_naive_table(rows)]


def _outside(r: dict[str, Any]) -> str:
    """Process s outside the timed work: interpreter start + imports, and exit (teardown)."""
    if r.get("before_work_s") is None:
        return ""
    return f"{r['before_work_s']:.2f} / {r['after_work_s']:.2f}"


def _stage_table(rows: list[dict[str, Any]]) -> list[str]:
    keys = ("read", "prepare", "validate", "predict", "challenger", "monitor", "write", "upload")
    lines = [
        "Where batchscore's time goes (seconds; shard stages summed over shards):",
        "",
        "| rows | variant | shards | " + " | ".join(keys) + " | plan | finalize |",
        "|---:|---|---:|" + "---:|" * (len(keys) + 2),
    ]
    for r in rows:
        if r["ok"] and r["variant"].startswith("batchscore"):
            st, ph = r.get("stages", {}), r.get("phases", {})
            lines.append(
                f"| {label(r['rows'])} | {r['variant']} | {r.get('shards', '')} | "
                + " | ".join(f"{st.get(k, 0):.2f}" for k in keys)
                + f" | {ph.get('plan', 0):.2f} | {ph.get('finalize', 0):.2f} |"
            )
    return [*lines, ""]


def _naive_table(rows: list[dict[str, Any]]) -> list[str]:
    naive = [r for r in rows if r["ok"] and r["variant"] == "naive"]
    if not naive:
        return []
    lines = [
        "Naive script stages (seconds):",
        "",
        "| rows | read | validate (GX) | predict | write |",
    ]
    lines.append("|---:|---:|---:|---:|---:|")
    for r in naive:
        st = r["stages"]
        gx = f"{st['validate']:.2f}" if "validate" in st else "pending"
        lines.append(
            f"| {label(r['rows'])} | {st['read']:.2f} | {gx} | {st['predict']:.2f} | "
            f"{st['write']:.2f} |"
        )
    return [*lines, ""]


def render_markdown(doc: dict[str, Any]) -> str:
    lines = [*_header(doc), *_summary_table(doc), *_startup_table(doc), *_bar_table(doc)]
    lines += ["![% of ceiling (in-loop and whole process) and peak RSS](chart.png)", ""]
    for model in doc["config"]["models"]:
        lines += _cells_table(doc, model)
    return "\n".join(lines)


def write_outputs(doc: dict[str, Any], out: Path) -> None:
    from bench.chart import render_chart

    out.mkdir(parents=True, exist_ok=True)
    doc["bars"] = evaluate_bars(doc)
    doc["summary"] = summary_rows(doc)
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / "results.md").write_text(render_markdown(doc))
    render_chart(doc, out / "chart.png")


def merge(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs' results.json as one (their cells together; machine and config of the
    first, sizes and models of all): a full table from runs of different variant sets."""
    out = dict(docs[0])
    out["command"] = " ; ".join(d["command"] for d in docs)
    out["results"] = [r for d in docs for r in d["results"]]
    out["config"] = dict(docs[0]["config"])
    for key in ("sizes", "models", "variants"):
        out["config"][key] = sorted({v for d in docs for v in d["config"][key]}, key=str)
    out["config"]["sizes"] = sorted(out["config"]["sizes"])
    out["config"]["shard_rows"] = {k: v for d in docs for k, v in d["config"]["shard_rows"].items()}
    out["finished_at"] = max(d.get("finished_at", "") for d in docs)
    out["wall_s"] = round(sum(d.get("wall_s", 0.0) for d in docs), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.report [RESULTS.json ...] [--out DIR]`: re-render one run, or merge
    several into DIR (default: the first one's folder)."""
    args = list(argv if argv is not None else sys.argv[1:])
    out = None
    if "--out" in args:
        i = args.index("--out")
        out = Path(args[i + 1])
        del args[i : i + 2]
    paths = [Path(a) for a in args] or [ROOT / "bench/results/results.json"]
    docs = [json.loads(p.read_text()) for p in paths]
    out = out or paths[0].parent
    write_outputs(docs[0] if len(docs) == 1 else merge(docs), out)
    print(f"rendered {out / 'results.md'} and chart.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
