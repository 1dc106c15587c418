"""bench/results/monitoring.md (+ .json) from what `bench.monitoring` measured, and the targets.

.venv/bin/python -m bench.monitoring_report bench/results/monitoring.json  # re-render the md
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {
    "drift_overhead": 0.05,  # drift monitoring adds at most 5% of wall at 5M rows
    "rss_growth": 1.25,  # "flat": largest / smallest size, the bar bench.run uses
    "challenger_vs_predict": 1.5,  # the extra wall is at most 1.5x the challenger's predict
    "resume_half": (0.3, 0.7),  # "about half" of the shards reused
}


def _f(value: float | None, fmt: str = ".2f") -> str:
    return "" if value is None else format(value, fmt)


def _runs(cell: dict[str, Any]) -> str:
    """'median of 3 (8.1, 8.3, 8.6)', or '1 run': how many runs a number stands on."""
    n = cell.get("repeats", 1)
    spread = cell.get("work_s_all")
    return f"{n} ({', '.join(f'{x:.2f}' for x in spread)})" if spread else str(n)


def _stage(cell: dict[str, Any], key: str) -> float | None:
    return (cell.get("manifest") or {}).get(key) or (cell.get("stages") or {}).get(key)


# --- the targets -----------------------------------------------------------------------------


def drift_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Per size: drift on vs off (median walls), the monitor's own seconds, peak RSS."""
    rows = []
    for size, cells in (doc.get("drift_challenger") or {}).items():
        on, off = cells.get("drift_on"), cells.get("drift_off")
        if not on or not on.get("ok"):
            continue
        both = bool(off and off.get("ok"))
        added = (on["work_s"] - off["work_s"]) / off["work_s"] if both else None
        added_cpu = (on["cpu_s"] - off["cpu_s"]) / off["cpu_s"] if both else None
        rows.append({"size": size, "on": on, "off": off, "added": added, "added_cpu": added_cpu})
    return rows


def challenger_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Per size: the extra wall of a challenger against its own predict time and a second run."""
    rows = []
    for size, cells in (doc.get("drift_challenger") or {}).items():
        base, ch = cells.get("drift_on"), cells.get("challenger")
        if not (base and ch and base.get("ok") and ch.get("ok")):
            continue
        extra = ch["work_s"] - base["work_s"]
        predict = (ch.get("manifest") or {}).get("challenger_s")
        rows.append({"size": size, "off": base, "on": ch, "extra": extra, "predict": predict,
                     "of_second_run": extra / base["work_s"]})  # fmt: skip
    return rows


def evaluate_targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the brief with the measured value and whether it held."""
    out = []
    drift = {r["size"]: r for r in drift_rows(doc)}
    if (at5 := drift.get("5M") or drift.get("1M")) and at5["added"] is not None:
        ok = at5["added"] <= TARGETS["drift_overhead"]
        shown = f"{at5['added']:+.1%} wall ({at5['added_cpu']:+.1%} CPU)"
        out.append(_t(f"drift adds <= 5% of wall ({at5['size']}, 1 worker)", shown, ok))
    if len(drift) > 1:
        lo, hi = list(drift.values())[0], list(drift.values())[-1]
        g = hi["on"]["peak_rss_mb"] / lo["on"]["peak_rss_mb"]
        name = f"peak RSS with drift on flat ({lo['size']} -> {hi['size']}, <= 1.25x)"
        out.append(_t(name, f"{g:.2f}x", g <= TARGETS["rss_growth"]))
    for r in challenger_rows(doc):
        if r["predict"]:
            k = r["extra"] / r["predict"]
            shown = (
                f"+{r['extra']:.2f} s = {k:.2f}x its predict, {r['of_second_run']:.0%} of a 2nd run"
            )
            out.append(_t(f"challenger ~ one more predict ({r['size']})", shown,
                          k <= TARGETS["challenger_vs_predict"]))  # fmt: skip
    if ch := challenger_rows(doc):
        g = ch[-1]["on"]["peak_rss_mb"] / ch[-1]["off"]["peak_rss_mb"]
        name = f"challenger adds no memory that grows with rows (RSS on / off, {ch[-1]['size']})"
        out.append(_t(name, f"{g:.2f}x", g <= TARGETS["rss_growth"]))
    labels = [(s, v["labels_add"]) for s, v in (doc.get("labels") or {}).items()
              if v.get("labels_add", {}).get("ok")]  # fmt: skip
    if len(labels) > 1:
        (s0, a), (s1, z) = labels[0], labels[-1]
        g = z["peak_rss_mb"] / a["peak_rss_mb"]
        out.append(_t(f"labels add peak RSS flat ({s0} -> {s1}, <= 1.25x)", f"{g:.2f}x",
                      g <= TARGETS["rss_growth"]))  # fmt: skip
    out += _resume_targets(doc.get("resume"))
    return out


def _resume_targets(res: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not res or not res.get("rounds"):
        return []
    lo, hi = TARGETS["resume_half"]
    reused = [r["shards_reused"] or 0 for r in res["rounds"]]
    half = all(lo <= n / res["shards"] <= hi for n in reused)
    same = all(r["content_identical"] for r in res["rounds"])
    shown = ", ".join(f"{n}/{res['shards']}" for n in reused)
    return [
        _t("resume reuses about half of the shards", shown, half),
        _t("resumed content_sha256 = uninterrupted run's", "equal" if same else "differs", same),
    ]


def _t(name: str, shown: str, ok: bool) -> dict[str, Any]:
    return {"target": name, "shown": shown, "holds": ok}


# --- markdown --------------------------------------------------------------------------------


def _header(doc: dict[str, Any]) -> list[str]:
    m = doc["machine"]
    loads = [c["loadavg_before"] for c in doc.get("cells", [])]
    return [
        "# batchscore: monitoring, challenger, labels and resume",
        "",
        f"`{doc['command']}` - started {doc['started_at']}, took {doc.get('wall_s', '?')} s"
        + (" (--quick: 1M rows, 1 run per cell)." if doc.get("quick") else "."),
        "",
        f"**Machine**: {m['cpu']}, {m['logical_cores']} logical cores, {m['ram_gib']} GiB RAM, "
        f"{m['os']}, Python {m['python']}. **Load average** (1 min): {m['loadavg_start'][0]} at "
        f"start, {(m.get('loadavg_end') or ['?'])[0]} at end; before the cells "
        f"{min(loads, default=0):.2f}-{max(loads, default=0):.2f} (median "
        f"{statistics.median(loads) if loads else 0:.2f}); the benchmark itself adds 1-2.",
        "",
        "**Libraries**: "
        + ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v)
        + f"; batchscore at git {m.get('git_rev')}.",
        "",
        "Every cell is its own process (`bench.measure`): *wall s* is the in-process time of "
        "the whole `batchscore score` / `labels add` call (imports excluded), peak RSS the "
        "process tree sampled every 50 ms. 1-worker cells and `labels add` are pinned to one "
        "CPU; 2-worker cells are not (the pipeline pins its workers). OMP/BLAS = 1 everywhere. "
        "hgb model (HistGradientBoosting), data `pipelines.data.demo` (bench/data/), shards of "
        "524,288 rows unless said. Runs per cell: the number in *runs*, median wall kept "
        "(the walls of every run in brackets), peak RSS the max seen.",
        "",
    ]


def _drift_md(doc: dict[str, Any]) -> list[str]:
    lines = [
        "## Drift monitoring on vs off (1 worker)",
        "",
        "*added*: (median wall on - median wall off) / off; *added CPU* the same on CPU "
        "seconds, which other programs on the machine do not move. *monitor s*: the manifest's "
        "`timings.monitor`, seconds the shards spent counting drift and estimate state.",
        "",
        "| rows | runs on | runs off | wall on s | wall off s | added | added CPU | "
        "monitor s (manifest) | CPU on s | CPU off s | peak RSS on MB | peak RSS off MB | "
        "drift status |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in drift_rows(doc):
        on, off = r["on"], r["off"] or {}
        added = "" if r["added"] is None else f"{r['added']:+.1%}"
        added_cpu = "" if r["added_cpu"] is None else f"{r['added_cpu']:+.1%}"
        lines.append(
            f"| {r['size']} | {_runs(on)} | {_runs(off) if off else '-'} | {on['work_s']:.2f} | "
            f"{_f(off.get('work_s'))} | {added} | {added_cpu} | "
            f"{_f(_stage(on, 'monitor_s'), '.3f')} | "
            f"{on['cpu_s']:.2f} | {_f(off.get('cpu_s'))} | {on['peak_rss_mb']:.0f} | "
            f"{_f(off.get('peak_rss_mb'), '.0f')} | "
            f"{(on.get('manifest') or {}).get('drift_status') or ''} |"
        )
    return [*lines, ""]


def _challenger_md(doc: dict[str, Any]) -> list[str]:
    lines = [
        "## Challenger on vs off (1 worker; hgb champion, logreg challenger)",
        "",
        "*off* is the drift-on cell above (the same command without `model.challenger`). A "
        "second full run would add the whole *wall off*; one more predict adds about "
        "`timings.challenger`.",
        "",
        "*finalize*: the parent's publish phase (the row-by-row comparison of champion and "
        "challenger runs there); *CPU extra*: CPU seconds on minus off.",
        "",
        "| rows | runs | wall off s | wall on s | extra s | CPU extra s | "
        "challenger predict s (manifest) | champion predict s | finalize off / on s | "
        "extra / 2nd run | peak RSS off MB | peak RSS on MB | agreement |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in challenger_rows(doc):
        on, off = r["on"], r["off"]
        cmp_ = (on.get("manifest") or {}).get("challenger_comparison") or {}
        lines.append(
            f"| {r['size']} | {_runs(on)} | {off['work_s']:.2f} | {on['work_s']:.2f} | "
            f"{r['extra']:+.2f} | {on['cpu_s'] - off['cpu_s']:+.2f} | {_f(r['predict'])} | "
            f"{_f(on['stages'].get('predict'))} | {_f(off.get('phases', {}).get('finalize'))} / "
            f"{_f(on.get('phases', {}).get('finalize'))} | {r['of_second_run']:.0%} | "
            f"{off['peak_rss_mb']:.0f} | {on['peak_rss_mb']:.0f} | "
            f"{_f(cmp_.get('agreement'), '.3f')} |"
        )
    return [*lines, ""]


def _labels_md(doc: dict[str, Any]) -> list[str]:
    lines = [
        "## labels add: a full delivery joined to a published run",
        "",
        "The run is published first with 2 workers (*publish*), then `batchscore labels add "
        "--labels FILE --run-key K --output URI` joins one label per scored row (1 process, "
        "pinned). Each repeat starts without deliveries.",
        "",
        "| scored rows | runs | wall s | CPU s | rows/s | peak RSS MB | rows joined | AUC | "
        "publish wall s | publish peak RSS MB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, v in (doc.get("labels") or {}).items():
        a, pub = v.get("labels_add") or {}, v["publish"]
        if not a.get("ok"):
            lines.append(f"| {size} | FAILED |" + " |" * 8)
            continue
        lab = a.get("labels") or {}
        lines.append(
            f"| {size} | {_runs(a)} | {a['work_s']:.2f} | {a['cpu_s']:.2f} | "
            f"{a['rows'] / a['work_s']:,.0f} | {a['peak_rss_mb']:.0f} | "
            f"{lab.get('rows_joined') or 0:,} | {_f(lab.get('roc_auc'), '.4f')} | "
            f"{_f(pub.get('work_s'))} | {pub['peak_rss_mb']:.0f} |"
        )
    return [*lines, ""]


def _resume_md(doc: dict[str, Any]) -> list[str]:
    res = doc.get("resume")
    if not res:
        return []
    lines = [
        f"## Resume ({res['rows']:,} rows, 2 workers, {res['shards']} shards of "
        f"{res['shard_rows']:,}, `BATCHSCORE_FAULT_AT=after_shard_{res['kill_after_shard']}`)",
        "",
        "| round | uninterrupted wall s | killed run: exit, process s | records staged at kill | "
        "rerun wall s | rerun / uninterrupted | shards_reused | content_sha256 |",
        "|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for i, r in enumerate(res["rounds"], 1):
        ratio = (
            f"{r['rerun_work_s'] / r['uninterrupted_work_s']:.0%}"
            if r["rerun_work_s"] and r["uninterrupted_work_s"] else ""
        )  # fmt: skip
        hung = " (hung: killed by the bench)" if r["killed_hung"] else ""
        sha = (r["content_sha256_rerun"] or "")[:12]
        lines.append(
            f"| {i} | {_f(r['uninterrupted_work_s'])} | {r['killed_exit_code']}, "
            f"{r['killed_process_s']:.1f}{hung} | {r['records_staged_at_kill']} | "
            f"{_f(r['rerun_work_s'])} | {ratio} | {r['shards_reused']} | "
            f"{'identical' if r['content_identical'] else 'DIFFERS'} ({sha}) |"
        )
    return [*lines, ""]


def render(doc: dict[str, Any]) -> str:
    lines = _header(doc) + _drift_md(doc) + _challenger_md(doc) + _labels_md(doc)
    lines += _resume_md(doc)
    lines += ["## Targets", "", "| target | measured | holds |", "|---|---|---|"]
    for t in doc.get("targets") or evaluate_targets(doc):
        lines.append(f"| {t['target']} | {t['shown']} | {'yes' if t['holds'] else '**no**'} |")
    return "\n".join([*lines, ""])


def write_monitoring(doc: dict[str, Any], out: Path) -> None:
    doc["targets"] = evaluate_targets(doc)
    (out / "monitoring.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    (out / "monitoring.md").write_text(render(doc))


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    path = Path(args[0]) if args else ROOT / "bench/results/monitoring.json"
    write_monitoring(json.loads(path.read_text()), path.parent)
    print(f"rendered {path.parent / 'monitoring.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
