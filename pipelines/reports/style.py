"""The report page's look and the words that explain it (kept apart from the markup)."""

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1200px;color:#222;padding:0 16px}
header{display:flex;align-items:center;gap:16px}h1{font-size:22px;margin:0}
h2{font-size:17px;margin:28px 0 8px}code{font:12px ui-monospace,Menlo,Consolas,monospace}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;font-size:12px;font-weight:600;
text-transform:uppercase;color:#fff;background:#777}
.badge.ok{background:#2e7d32}.badge.bad{background:#c62828}.badge.warn{background:#d9822b}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-top:16px}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 16px;min-width:150px}
.card .label{color:#666;font-size:12px}.card .value{font-size:22px;font-weight:600}
.card .sub{color:#666;font-size:12px;min-height:1em}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #eee;padding:4px 8px;
text-align:left;vertical-align:top}thead th{background:#f6f6f6}
table.kv{width:auto}table.kv th{font-weight:500;color:#555}
table.exp{font-size:13px}td.ex{max-width:320px;word-break:break-word}
td:nth-child(4){white-space:nowrap}details{margin-top:8px}summary{cursor:pointer;color:#3572b0}
tr.bad td{background:#fdecea}tr.warn td{background:#fff4e5}
.msg{color:#8a1c1c;font-size:12px;margin-top:2px}
.failures{border-left:4px solid #c62828;background:#fdecea;padding:4px 16px;margin-top:20px}
.warnings{border-left:4px solid #d9822b;background:#fff4e5;padding:4px 16px;margin-top:20px}
.howto{color:#555;font-size:13px;border-top:1px solid #ddd;margin-top:32px}
.note{color:#555;font-size:12px;margin:6px 0}div.chart svg{max-width:100%;height:auto}
table.timings{width:100%}table.timings td:nth-child(3){color:#555;font-size:13px}
td.num{text-align:right;white-space:nowrap}
h3{font-size:15px;margin:20px 0 6px}h2 .badge{vertical-align:middle;margin-left:8px}
.badge{white-space:nowrap}.scroll{overflow-x:auto}
.drift-charts{display:flex;flex-wrap:wrap;gap:12px}.drift-charts figure{margin:0}
svg.drift-chart,svg.history-chart{display:block;width:570px;max-width:100%;height:auto;
border:1px solid #eee;border-radius:6px;background:#fff}
"""

# What each timing measures (run/shard.py, run/plan.py, run/finalize.py), in the run's order.
TIMINGS = {
    "plan": "Planning the run, once, before any row is read: model pin and load, input layout, "
    "input/model contract, suites, byte proof of the input, shard plan, already-published check.",
    "read": "Reading the input's batches from disk.",
    "prepare": "Typing the columns for the model and the contract's quarantine (numbers that "
    "do not parse, inf or -inf, missing IDs).",
    "validate": "The Great Expectations gates, batch by batch: input rows before scoring, "
    "scored rows after.",
    "predict": "The model's predict_proba on the rows that are scored.",
    "write": "Writing scores and quarantined rows to the shard's part files (and the histogram).",
    "upload": "Closing the part files and staging them, with the ID hashes, in the output store.",
    "total": "Each shard from its start to its end (model load and byte checks included), "
    "summed over all shards and workers: worker-seconds, not elapsed time.",
    "verdict": "Finalizing, once: merging the shards' quality states and the run-level gates "
    "(exact aggregates, ID uniqueness, quarantined share).",
    "wall": "The run's elapsed time, from the start of planning to the end of the run-level "
    "gates, just before the report is written and the run committed.",
}

TIMINGS_NOTE = """<p class="note">read, prepare, validate, predict, write and upload are summed
over all shards, like total, of which they are parts. When shards run in parallel, total is
larger than wall; under Airflow, wall also counts the waits between tasks. Rate is rows in
divided by wall.</p>"""

# Tooltips of the run table's labels.
RUN_HELP = {
    "Input file": "the input as the run read it",
    "Input sha256": "sha256 of the input's bytes, proven unchanged while the run read them",
    "Git revision": "the git commit the input was pulled at (without a pull: the commit that "
    "holds the input file)",
    "DVC md5": "the input's md5 as DVC records it",
    "Score means": "what the score column of the output is",
    "Rate": "rows in per second of wall time",
    "Attempt": "this attempt of the run key: failed reports are kept under it",
    "Generated": "when this report was written (UTC)",
}

HOWTO = """<section class="howto"><h2>How to read this report</h2>
<p><b>fast-per-batch</b> expectations (schema and row-level) are run on every batch by
batchscore's vectorized engine, and Great Expectations runs the same expectations on a sample of
every shard as an audit: any disagreement fails the run (the engine line under each suite says
what the audit compared). <b>gx-per-batch</b> ones (<code>validation.engine: gx</code>) are run
by Great Expectations on every batch. Row-level failures are <i>quarantined</i> (the row is not
scored, it is published with its reasons) and only fail the run when the quarantined share
passes the limit.
<b>exact-merged</b> expectations (row count, ID uniqueness, column statistics) are computed once
over the whole input; column statistics cover the rows that were scored. A run fails on any
schema or aggregate failure, on an empty input, and when fewer expectations were evaluated than
the suite holds. See <code>validation/README.md</code>.</p></section>"""
