"""The report page's look and its how-to-read note (kept apart from the markup)."""

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
.failures{border-left:4px solid #c62828;background:#fdecea;padding:4px 16px}
.warnings{border-left:4px solid #d9822b;background:#fff4e5;padding:4px 16px}
.howto{color:#555;font-size:13px;border-top:1px solid #ddd;margin-top:32px}
"""

HOWTO = """<section class="howto"><h2>How to read this report</h2>
<p><b>gx-per-batch</b> expectations (schema and row-level) are run by Great Expectations on
every batch; row-level failures are <i>quarantined</i> (the row is not scored, it is published
with its reasons) and only fail the run when the quarantined share passes the limit.
<b>exact-merged</b> expectations (row count, ID uniqueness, column statistics) are computed once
over the whole input; column statistics cover the rows that were scored. A run fails on any
schema or aggregate failure, on an empty input, and when fewer expectations were evaluated than
the suite holds. See <code>validation/README.md</code>.</p></section>"""
