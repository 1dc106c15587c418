"""What the results mean: ratios to the ceiling, the derived costs, and the issue's bar.

Pure functions of a results document (results.json), so `bench.report` can re-render any saved
run and the tests can check the arithmetic on a hand-made one.

The ceiling is the `ceiling` variant's in-loop seconds: bare `predict_proba` over in-memory chunks
on one pinned core. *In-loop* ratio = ceiling s / batchscore's timed work; *whole-process* ratio
= ceiling s / batchscore's process wall (start to exit, imports included), which the bar judges.
"""

from __future__ import annotations

from typing import Any

ONE_W, NO_DRIFT, CHALLENGER, TWO_W = (
    "batchscore-1w",
    "batchscore-1w-nodrift",
    "batchscore-1w-challenger",
    "batchscore-2w",
)
M = 1_000_000
# whole process, gate on, 1 pinned core: the share of the ceiling each (model, rows) must reach
OF_CEILING = {("hgb", 5 * M): 0.85, ("hgb", 2 * M): 0.75, ("logreg", 5 * M): 0.70}
STARTUP_MAX_S = 1.5
SCALING, SCALING_ROWS = 1.8, 5 * M
DRIFT_MAX = 0.05
CHALLENGER_MAX = 1.25  # "about one more predict": extra wall <= 1.25x the challenger's own predict
RSS_GROWTH_MAX = 1.25


def label(rows: int) -> str:
    if rows % M == 0:
        return f"{rows // M}M"
    return f"{rows // 1_000}k" if rows % 1_000 == 0 else str(rows)


def cell(results: list[dict[str, Any]], model: str, rows: int, variant: str) -> dict | None:
    """The successful aggregated cell, or None (not run, or failed)."""
    for r in results:
        if r["model"] == model and r["rows"] == rows and r["variant"] == variant and r["ok"]:
            return r
    return None


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def challenger_own_s(r: dict[str, Any]) -> float | None:
    """The challenger's own predict seconds in that run (manifest `timings.challenger`)."""
    own = (r.get("manifest") or {}).get("challenger_s")
    return own if own is not None else (r.get("stages") or {}).get("challenger")


def sized(doc: dict[str, Any]) -> list[int]:
    """The input sizes of the per-size cells (the start-up size is not one of them)."""
    return sorted(doc["config"]["sizes"])


def summary_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Per model and size: the ceiling, batchscore in-loop and whole-process, both ratios, the
    2-worker speed-up, what drift and a challenger add (whole process), and peak RSS."""
    res, out = doc["results"], []
    for model in doc["config"]["models"]:
        for rows in sized(doc):
            ceil, one = cell(res, model, rows, "ceiling"), cell(res, model, rows, ONE_W)
            two, off = cell(res, model, rows, TWO_W), cell(res, model, rows, NO_DRIFT)
            chal = cell(res, model, rows, CHALLENGER)
            c = ceil["work_s"] if ceil else None
            row: dict[str, Any] = {
                "model": model,
                "rows": rows,
                "ceiling_s": c,
                "inloop_s": one and one["work_s"],
                "process_s": one and one["process_wall_s"],
                "inloop_of_ceiling": _div(c, one and one["work_s"]),
                "process_of_ceiling": _div(c, one and one["process_wall_s"]),
                "speedup_2w": _div(one and one["process_wall_s"], two and two["process_wall_s"]),
                "drift_added": None,
                "challenger_extra_s": None,
                "challenger_own_s": chal and challenger_own_s(chal),
                "peak_rss_1w_mb": one and one["peak_rss_mb"],
                "peak_rss_2w_mb": two and two["peak_rss_mb"],
            }
            if one and off:
                row["drift_added"] = one["process_wall_s"] / off["process_wall_s"] - 1
            if one and chal:
                row["challenger_extra_s"] = chal["process_wall_s"] - one["process_wall_s"]
            out.append(row | _cpu_check(ceil, one, off, chal))
    return out


def _cpu_check(*cells: dict | None) -> dict[str, float | None]:
    """The same comparisons in CPU seconds (whole process, workers included): they do not grow
    when other programs share the cores, so a wall figure far from its CPU twin is noise."""
    ceil, one, off, chal = (c and c.get("process_cpu_s") for c in cells)
    ceil = cells[0] and cells[0].get("cpu_s")  # the ceiling's in-loop CPU, as its wall
    return {
        "process_of_ceiling_cpu": _div(ceil, one),
        "drift_added_cpu": None if _div(one, off) is None else one / off - 1,
        "challenger_extra_cpu_s": None if not (one and chal) else chal - one,
    }


def startup_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Per model, the 1,000-row cells: median whole process, the runs, and where it goes."""
    rows = doc["config"].get("startup_rows", 1_000)
    out = []
    for model in doc["config"]["models"]:
        for variant in ("startup", "startup-nogate"):
            r = next((x for x in doc["results"] if x["model"] == model
                      and x["variant"] == variant and x["rows"] == rows), None)  # fmt: skip
            if r is None:
                continue
            entry = {"model": model, "variant": variant, "ok": r["ok"], "reason": r.get("reason")}
            if r["ok"]:
                stages = r.get("stages") or {}
                entry |= {
                    "process_s": r["process_wall_s"],
                    "runs_s": r.get("process_wall_s_all") or [r["process_wall_s"]],
                    "run_wall_s": r["work_s"],
                    "plan_s": stages.get("plan"),
                    "outside_run_s": r["process_wall_s"] - r["work_s"],
                    "process_cpu_s": r.get("process_cpu_s"),
                    "peak_rss_mb": r["peak_rss_mb"],
                }
            out.append(entry)
    return out


def _bar(name: str, model: str, rows: int | None, value: float | None, holds: bool | None,
         shown: str) -> dict[str, Any]:  # fmt: skip
    return {
        "bar": name,
        "model": model,
        "rows": rows,
        "value": None if value is None else round(value, 4),
        "holds": holds,
        "shown": shown if value is not None else "not measured",
    }


def _check(value: float | None, ok: bool) -> bool | None:
    return None if value is None else ok


def evaluate_bars(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each criterion of the issue, with the measured value and whether it holds (None: the
    run did not measure it, e.g. --quick has no 5M rows)."""
    models, summary = doc["config"]["models"], summary_rows(doc)
    by = {(s["model"], s["rows"]): s for s in summary}
    bars = []
    for (model, rows), need in OF_CEILING.items():
        if model in models:
            v = (by.get((model, rows)) or {}).get("process_of_ceiling")
            name = f"whole process >= {need:.0%} of the ceiling (1 worker, gate on)"
            bars.append(_bar(name, model, rows, v, _check(v, v is not None and v >= need),
                             f"{v:.0%}" if v else ""))  # fmt: skip
    for s in startup_rows(doc):
        if s["variant"] == "startup":
            v = s.get("process_s")
            name = f"1,000-row run < {STARTUP_MAX_S} s (gate on, whole process)"
            ok = _check(v, v is not None and v < STARTUP_MAX_S)
            bars.append(_bar(name, s["model"], None, v, ok, f"{v:.2f} s" if v else ""))
    for model in models:
        v = (by.get((model, SCALING_ROWS)) or {}).get("speedup_2w")
        name = f"2 workers >= {SCALING}x 1 worker (whole process)"
        ok = _check(v, v is not None and v >= SCALING)
        bars.append(_bar(name, model, SCALING_ROWS, v, ok, f"{v:.2f}x" if v else ""))
    for s in summary:
        v = s["drift_added"]
        name = f"drift monitoring adds <= {DRIFT_MAX:.0%} (whole process)"
        ok = _check(v, v is not None and v <= DRIFT_MAX)
        bars.append(_bar(name, s["model"], s["rows"], v, ok, f"{v:+.1%}" if v is not None else ""))
    for s in summary:
        extra, own = s["challenger_extra_s"], s["challenger_own_s"]
        v = _div(extra, own)
        name = f"challenger extra <= {CHALLENGER_MAX}x its own predict (whole process)"
        ok = _check(v, v is not None and v <= CHALLENGER_MAX)
        shown = f"{extra:+.2f} s vs {own:.2f} s ({v:.2f}x)" if v is not None else ""
        bars.append(_bar(name, s["model"], s["rows"], v, ok, shown))
    bars += _rss_bars(doc, models)
    return bars


def _rss_bars(doc: dict[str, Any], models: list[str]) -> list[dict[str, Any]]:
    """Peak RSS flat from the smallest to the largest size that share a shard size (peak memory
    is set by the shard, so only those compare: 1M and up with the default layout)."""
    sizes, shard_rows = sized(doc), doc["config"].get("shard_rows", {})
    same = [r for r in sizes if shard_rows.get(label(r)) == shard_rows.get(label(sizes[-1]))]
    bars = []
    for model in models:
        for variant in (ONE_W, TWO_W):
            if variant not in doc["config"]["variants"]:
                continue
            name = f"peak RSS flat, {variant} (largest / smallest size) <= {RSS_GROWTH_MAX}x"
            a = cell(doc["results"], model, same[0], variant) if len(same) > 1 else None
            b = cell(doc["results"], model, same[-1], variant) if len(same) > 1 else None
            g = _div(b and b["peak_rss_mb"], a and a["peak_rss_mb"])
            shown = f"{g:.2f}x ({label(same[-1])} vs {label(same[0])})" if g else ""
            bars.append(_bar(name, model, None, g, _check(g, g is not None and g <= RSS_GROWTH_MAX),
                             shown))  # fmt: skip
    return bars
