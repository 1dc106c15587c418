"""The benchmark's arithmetic: ratios to the ceiling, derived costs and the bar, on a made-up run.

The benchmark itself takes minutes (`python -m bench.run --quick`); what it concludes from its
numbers is pure and checked here, so a wrong ratio or an inverted criterion fails in a second.
"""

from __future__ import annotations

from typing import Any

from bench.bar import evaluate_bars, summary_rows
from bench.cells import DEFAULT_VARIANTS, aggregate, failure_reason, plan_cells
from bench.cells import VARIANTS as CELL_VARIANTS
from bench.floors import Floors, render
from bench.report import render_markdown

M = 1_000_000


def _cell(variant: str, rows: int, work: float, process: float, rss: float = 600.0,
          **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {"model": "hgb", "variant": variant, "rows": rows, "ok": True, "workers": 1,
            "work_s": work, "process_wall_s": process, "peak_rss_mb": rss,
            "peak_rss_single_mb": rss, "rows_per_s": rows / work, "stages": {},
            **extra}  # fmt: skip


def _doc() -> dict[str, Any]:
    results = [
        _cell("startup", 1_000, 0.9, 1.2),
        _cell("startup-nogate", 1_000, 0.5, 0.8),
        _cell("ceiling", 5 * M, 25.0, 30.0, rss=2_000),
        _cell("batchscore-1w", 5 * M, 27.0, 28.0),
        _cell("batchscore-1w-nodrift", 5 * M, 26.0, 27.0),
        _cell("batchscore-1w-challenger", 5 * M, 40.0, 41.0, manifest={"challenger_s": 10.0}),
        _cell("batchscore-2w", 5 * M, 15.0, 16.0, rss=1_400),
        _cell("ceiling", M, 5.0, 8.0),
        _cell("batchscore-1w", M, 6.0, 10.0, rss=580),
        _cell("batchscore-2w", M, 4.0, 8.0, rss=1_300),
        {
            "model": "hgb",
            "variant": "batchscore-1w-nodrift",
            "rows": M,
            "ok": False,
            "process_wall_s": 3.0,
            "peak_rss_mb": 300.0,
            "reason": "unknown key",
        },  # fmt: skip
    ]
    return {
        "command": "python -m bench.run",
        "started_at": "2026-12-02T00:00:00+00:00",
        "machine": {
            "cpu": "test",
            "logical_cores": 2,
            "ram_gib": 1,
            "os": "linux",
            "python": "3.11",
            "libraries": {},
            "loadavg_start": [0.5],
        },  # fmt: skip
        "config": {
            "sizes": [M, 5 * M],
            "models": ["hgb"],
            "variants": list(DEFAULT_VARIANTS),
            "repeat": 1,
            "startup_rows": 1_000,
            "chunk_size": 65_536,
            "row_group_rows": 65_536,
            "train_rows": 200_000,
            "pinned_single_core": True,
            "shard_rows": {"1M": 524_288, "5M": 524_288},
        },
        "results": results,
    }


def _bars() -> dict[tuple[str, int | None], dict[str, Any]]:
    return {(b["bar"].split(" (")[0], b["rows"]): b for b in evaluate_bars(_doc())}


def test_ratios_are_the_ceiling_over_batchscore_in_loop_and_whole_process() -> None:
    five = next(s for s in summary_rows(_doc()) if s["rows"] == 5 * M)
    assert five["inloop_of_ceiling"] == 25.0 / 27.0
    assert five["process_of_ceiling"] == 25.0 / 28.0  # the ceiling's own process s is not used
    assert five["speedup_2w"] == 28.0 / 16.0
    assert abs(five["drift_added"] - (28.0 / 27.0 - 1)) < 1e-12
    assert five["challenger_extra_s"] == 13.0 and five["challenger_own_s"] == 10.0


def test_the_bar_judges_each_criterion_and_says_what_was_not_measured() -> None:
    bars = _bars()
    assert bars[("whole process >= 85% of the ceiling", 5 * M)]["holds"] is True  # 89%
    assert bars[("whole process >= 75% of the ceiling", 2 * M)]["holds"] is None  # no 2M cell
    assert bars[("1,000-row run < 1.5 s", None)]["holds"] is True
    assert bars[("2 workers >= 1.8x 1 worker", 5 * M)]["value"] == round(28 / 16, 4)
    assert bars[("drift monitoring adds <= 5%", 5 * M)]["holds"] is True  # +3.7%
    assert bars[("drift monitoring adds <= 5%", M)]["holds"] is None  # its cell failed
    assert bars[("challenger extra <= 1.25x its own predict", 5 * M)]["holds"] is False  # 1.3x
    rss = [b for b in evaluate_bars(_doc()) if b["bar"].startswith("peak RSS")]
    assert [b["holds"] for b in rss] == [True, True]  # 600/580 and 1400/1300 are flat


def test_a_slow_start_up_fails_its_bar() -> None:
    doc = _doc()
    doc["results"][0]["process_wall_s"] = 4.0
    bar = next(b for b in evaluate_bars(doc) if b["bar"].startswith("1,000-row"))
    assert bar["holds"] is False and bar["shown"] == "4.00 s"


def test_the_report_names_a_failed_cell_and_its_reason() -> None:
    text = render_markdown(_doc())
    assert "| 1M | batchscore-1w-nodrift | FAILED: unknown key |" in text
    assert "## The bar" in text and "not measured" in text


def test_aggregate_keeps_medians_and_every_run() -> None:
    runs = [
        _cell("batchscore-1w", M, w, p, rss=r, loadavg_before=1.0)
        for w, p, r in ((6.0, 9.0, 600), (5.0, 11.0, 650), (7.0, 10.0, 610))
    ]
    agg = aggregate(runs)
    assert agg["work_s"] == 6.0 and agg["process_wall_s"] == 10.0 and agg["peak_rss_mb"] == 650
    assert [r["process_wall_s"] for r in agg["runs"]] == [9.0, 11.0, 10.0]


def test_start_up_cells_run_first_and_at_least_five_times() -> None:
    variants = [CELL_VARIANTS[n] for n in ("ceiling", "startup", "batchscore-1w")]
    groups = plan_cells(variants, [M], repeat=1)
    assert [(rows, [(v.name, n) for v, n in cells]) for rows, cells in groups] == [
        (1_000, [("startup", 5)]),
        (M, [("ceiling", 1), ("batchscore-1w", 1)]),
    ]
    assert "batchscore-1w-gx" not in DEFAULT_VARIANTS


def test_failure_reason_is_the_last_lines_on_one_line() -> None:
    err = "Traceback\nbatchscore: error: 1 invalid param:\n  unknown key validation.engine\n"
    assert failure_reason(err) == (
        "Traceback / batchscore: error: 1 invalid param: / unknown key validation.engine"
    )


def test_merged_runs_judge_the_bar_on_all_their_cells() -> None:
    """Two runs (e.g. 5M with every variant, 10M with a few) merged: one table, one bar."""
    from bench.report import merge

    whole = _doc()
    first, second = dict(whole), dict(whole)
    first["results"] = [r for r in whole["results"] if r["rows"] != max(whole["config"]["sizes"])]
    second["results"] = [r for r in whole["results"] if r["rows"] == max(whole["config"]["sizes"])]
    first["command"], second["command"] = "python -m bench.run A", "python -m bench.run B"
    merged = merge([first, second])
    assert merged["command"] == "python -m bench.run A ; python -m bench.run B"
    assert len(merged["results"]) == len(whole["results"])
    assert evaluate_bars(merged) == evaluate_bars(whole)


def _floors(**kw: float) -> Floors:
    base = dict(interpreter_s=0.03, model_process_s=1.0, gx_import_s=1.5, read_s=1.4,
                ceiling_s=20.0, concurrent_slowdown=1.1)  # fmt: skip
    return Floors(**(base | kw))


def test_the_best_share_adds_the_floors_to_the_ceiling() -> None:
    f = _floors()
    assert f.fixed_s == 2.5
    assert round(f.best_share, 4) == round(20.0 / 23.9, 4)  # 83.7%: under an 85% bar
    assert _floors(gx_import_s=0.0, read_s=0.0, model_process_s=0.0).best_share == 1.0


def test_the_best_speedup_keeps_the_floors_serial_and_pays_for_busy_cores() -> None:
    ideal = _floors(model_process_s=0.0, gx_import_s=0.0, concurrent_slowdown=1.0)
    assert ideal.best_speedup() == 2.0
    f = _floors()
    # fastest 1-worker run 23.9 s: 2.5 serial + 21.4 * 1.1 / 2 in parallel
    assert round(f.best_speedup(), 4) == round(23.9 / (2.5 + 1.1 * 21.4 / 2), 4)
    assert f.best_speedup(28.6) > f.best_speedup()  # more per-row work, more to share
    assert f.best_speedup(28.6) < 2 / 1.1


def test_the_floors_report_says_the_bounds_beside_the_bar() -> None:
    text = render(_floors(), "5M", "hgb", t1=28.6)
    assert "**2.50 s**" in text and "the bar is 1.5 s" in text
    assert "**84%**" in text
    assert "for a 1-worker run of 28.60 s" in text
