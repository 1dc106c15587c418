"""`batchscore runs list|show|diff`: published runs (and failed attempts) read back from --output.

What a verdict is and what a diff holds is `pipelines.run.compare`; this module formats it, as
aligned text for people or, with --json, as JSON for machines.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from pipelines.cli.options import SuggestingGroup, common_options, load_settings
from pipelines.errors import BatchscoreError
from pipelines.publish.manifest import RunManifest
from pipelines.storage.base import ObjectStore

F = TypeVar("F", bound=Callable[..., Any])


@click.group(cls=SuggestingGroup)
def runs() -> None:
    """Read published runs back (local folder or S3): list, show one, compare two.

    \b
    Examples:
      batchscore runs list
      batchscore runs list --failed
      batchscore runs show 2026-11-23 --output s3://scores/churn
      batchscore runs diff 2026-11-22 2026-11-23
    """


def _reader_options(func: F) -> F:
    func = click.option("--json", "as_json", is_flag=True, help="print JSON, for machines")(func)
    func = click.option("--model-name", help="only this model's runs (default: all)")(func)
    func = click.option("--output", metavar="URI", help="where runs are published (output.uri)")(
        func
    )
    return common_options(func)


def _store(options: dict[str, Any]) -> tuple[ObjectStore, str]:
    from pipelines.storage.open import open_store

    cfg = load_settings(options)
    return open_store(cfg), cfg.output.uri


@runs.command("list")
@_reader_options
@click.option("--failed", is_flag=True, help="list failed attempts (their reports) instead")
def list_(**options: Any) -> None:
    """List published runs, newest first, with their gate verdict.

    With --failed, the attempts that failed (a failed gate publishes nothing but its report,
    under <run>/failed/<attempt>/) and where their report is.

    \b
    Examples:
      batchscore runs list
      batchscore runs list --failed --output s3://scores/churn
    """
    from pipelines.publish.commit import list_runs
    from pipelines.run.compare import failed_attempts, gate_verdict

    store, uri = _store(options)
    if options["failed"]:
        failed = failed_attempts(store, options["model_name"])
        header = ["RUN", "ATTEMPT", "FAILED AT", "PUBLISHED SINCE", "REPORT", "WHY"]
        rows = [
            [f["run"], f["attempt_id"], f["generated_at"] or "?"]
            + ["yes" if f["published_since"] else "no", f["report"], _short(f["why"], 100)]
            for f in failed
        ]
        _listing(options, failed, f"no failed attempts under {uri}", _table(header, rows))
        return
    found = [m for m in list_runs(store) if options["model_name"] in (None, m.model.name)]
    listed = [_summary(m, gate_verdict(m.quality)) for m in found]
    header = ["RUN", "CREATED", "ROWS IN", "SCORED", "QUARANTINED", "GATE", "MODEL VERSION"]
    keys = ["run", "created_at", "rows_in", "rows_scored", "rows_quarantined", "gate"]
    rows = [[_cell(r[k]) for k in keys] + [r["model_version"]] for r in listed]
    table = _table(header, rows, numeric={2, 3, 4})
    _listing(options, listed, f"no published runs under {uri}", table)


def _listing(options: dict[str, Any], items: list[Any], empty: str, table: str) -> None:
    """Print a listing: JSON for machines, a note when there is nothing, else the table."""
    click.echo(json.dumps(items, indent=2) if options["as_json"] else table if items else empty)


@runs.command()
@_reader_options
@click.argument("run")
def show(run: str, **options: Any) -> None:
    """Show one published run: provenance, rows, gate verdict per suite, its files.

    RUN is a run key, or MODEL/KEY when several models publish that key.

    \b
    Examples:
      batchscore runs show 2026-11-23
      batchscore runs show churn/2026-11-23 --json
    """
    from pipelines.outcomes.evaluate import estimated_for_run, realized_for_run
    from pipelines.publish import keys
    from pipelines.run.compare import gate_verdict, suite_verdicts

    store, uri = _store(options)
    m = _find(store, uri, run, options["model_name"])
    suites = suite_verdicts(m.quality)
    realized = realized_for_run(store, keys, m.model.name, m.run_key)
    estimated = estimated_for_run(store, keys, m.model.name, m.run_key)
    if options["as_json"]:
        doc = {"run": f"{m.model.name}/{m.run_key}", "gate": gate_verdict(m.quality)}
        doc |= {"suites": suites, "manifest": m.model_dump()}
        doc |= {"realized": realized, "estimated": estimated}
        click.echo(json.dumps(doc, indent=2))
        return
    c = m.counts
    click.echo(f"run {m.run_key} of model {m.model.name} ({m.model.version}, {m.model.sha256})")
    click.echo(f"  created      {m.created_at} (attempt {m.attempt_id})")
    click.echo(f"  input        {m.input.path} sha256={m.input.sha256[:16]}… rev={m.input.git_rev}")
    click.echo(
        f"  rows         in={c.rows_in:,} scored={c.rows_scored:,} "
        f"quarantined={c.rows_quarantined:,}"
    )
    click.echo(f"  throughput   {m.rows_per_s:,.0f} rows/s over {m.timings.get('wall', 0):.1f}s")
    click.echo(f"  gate         {gate_verdict(m.quality)}")
    for name, v in suites.items():
        share = _pct(v["quarantine_fraction"])
        limit = f" (max {_pct(v['max_quarantine_fraction'])})" if name == "input" else ""
        click.echo(
            f"    {name:<10} {v['verdict']}: suite {v['suite']} ({v['source']}), "
            f"quarantined {share}{limit}"
        )
        for failure in v["failures"]:
            click.echo(f"      failure: {failure}")
    for p in m.parts:
        rows = f", {p.rows:,} rows)" if p.rows is not None else ")"
        click.echo(f"  {p.kind:<11}  {store.url(p.key)}  ({p.bytes:,} bytes{rows}")
    for line in _performance_lines(realized, estimated):
        click.echo(line)


PERFORMANCE = ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "precision", "recall", "ece")


def _performance_lines(
    realized: dict[str, Any] | None, estimated: dict[str, Any] | None
) -> list[str]:
    """Realized metrics (once labels exist) beside the estimate made at scoring time."""
    lines = []
    if estimated and estimated.get("auc") is not None:
        lines.append(
            f"  estimated    roc_auc={estimated['auc']:.4f} accuracy={estimated['accuracy']:.4f} "
            f"({estimated.get('method')})"
        )
    if realized is None:
        return (
            lines + ["  realized     no labels yet (batchscore labels add)"] if estimated else lines
        )
    m = realized["metrics"]
    values = " ".join(f"{k}={m[k]:.4f}" for k in PERFORMANCE if m.get(k) is not None)
    cov = realized["coverage"]
    lines.append(
        f"  realized     {values} (labelled {realized['labelled']:,} of "
        f"{realized['rows_scored']:,}, {_pct(cov)}; {len(realized['deliveries'])} delivery(ies), "
        f"{realized['conflicting_ids']:,} conflicting)"
    )
    if (ch := realized.get("challenger")) is not None:
        lines.append(_challenger_line(ch, m))
    return lines


def _challenger_line(ch: dict[str, Any], champion: dict[str, Any]) -> str:
    """The challenger's realized metrics on the same labels, with the difference to the run's."""
    m, model = ch["metrics"], ch.get("model") or {}
    values = " ".join(
        f"{k}={m[k]:.4f}" + (f" ({m[k] - champion[k]:+.4f})" if champion.get(k) is not None else "")
        for k in PERFORMANCE
        if m.get(k) is not None
    )
    return (
        f"  challenger   realized {values or 'no metrics'} (model {model.get('name')} "
        f"{model.get('version')}; {ch['rows']:,} labelled rows, {ch['unscored']:,} unscored; "
        "in brackets: challenger - champion)"
    )


@runs.command()
@_reader_options
@click.argument("a")
@click.argument("b")
def diff(a: str, b: str, **options: Any) -> None:
    """Compare two published runs: counts, quarantine reasons, score distribution, provenance.

    The score distributions are compared by PSI over the reports' histograms (< 0.1 stable,
    0.1-0.25 moderate shift, > 0.25 major shift); "changed" lists what differs in the input
    (sha256, path, git rev), the model (name, version, sha256), the suites and the code.
    A and B are run keys, or MODEL/KEY; deltas are B - A.

    \b
    Examples:
      batchscore runs diff 2026-11-22 2026-11-23
      batchscore runs diff churn/2026-11-22 churn-v2/2026-11-22 --json
    """
    from pipelines.run.compare import diff_runs, published_report

    store, uri = _store(options)
    ma, mb = (_find(store, uri, ref, options["model_name"]) for ref in (a, b))
    d = diff_runs(ma, mb, published_report(store, ma), published_report(store, mb))
    if options["as_json"]:
        click.echo(json.dumps(d, indent=2))
        return
    click.echo("\n".join(_diff_lines(d)))


def _diff_lines(d: dict[str, Any]) -> list[str]:
    """The diff as text: one block per question."""
    counts = [
        [label, _cell(d["counts"][key]["a"]), _cell(d["counts"][key]["b"])]
        + [f"{d['counts'][key]['delta']:+,}"]
        for label, key in (("rows in", "rows_in"), ("scored", "rows_scored"))
        + (("quarantined", "rows_quarantined"),)
    ]
    share = d["counts"]["quarantine_share"]
    counts.append(["quarantined share", _pct(share["a"]), _pct(share["b"])])
    counts[-1].append(f"{share['delta'] * 100:+.2f} pp")
    lines = [f"A = {d['a']}   B = {d['b']}", ""]
    lines += _table(["", "A", "B", "B - A"], counts, numeric={1, 2, 3}).splitlines()
    lines.append(f"gate: {d['gate']['a']} -> {d['gate']['b']}")
    reasons = d["quarantine_reasons"]
    if reasons:
        lines += ["", "quarantine reasons (top):"]
        rows = [[_short(r["reason"], 70), _cell(r["a"]), _cell(r["b"]), f"{r['delta']:+,}"]
                for r in reasons]  # fmt: skip
        lines += _table(["REASON", "A", "B", "B - A"], rows, numeric={1, 2, 3}).splitlines()
    s = d["scores"]
    lines.append("")
    if s["psi"] is None:
        lines.append(s["note"])
    else:
        lines.append(
            f"score distribution: PSI {s['psi']:.4f} ({s['band']}; < 0.1 stable, 0.1-0.25 "
            f"moderate, > 0.25 major); mean score {s['mean_a']:.3f} -> {s['mean_b']:.3f}"
        )
    lines += ["", "changed:" if d["changed"] else "changed: nothing in input, model or suites"]
    lines += [f"  {c['what']}: {c['a']} -> {c['b']}" for c in d["changed"]]
    lines.append(f"unchanged: {', '.join(d['unchanged']) or '-'}")
    return lines


def _find(store: ObjectStore, uri: str, ref: str, model_name: str | None) -> RunManifest:
    """The one published run that `ref` (KEY or MODEL/KEY) names."""
    from pipelines.publish.commit import list_runs

    model, _, key = ref.rpartition("/")
    model = model or model_name or ""
    found = [m for m in list_runs(store) if m.run_key == key and model in ("", m.model.name)]
    if not found:
        raise BatchscoreError(
            f"run {ref!r} is not published under {uri}", fix="see `batchscore runs list`"
        )
    if len(found) > 1:
        names = ", ".join(sorted(m.model.name for m in found))
        raise BatchscoreError(
            f"run key {key!r} is published for several models ({names})",
            fix=f"name one: MODEL/{key} or --model-name MODEL",
        )
    return found[0]


def _summary(m: RunManifest, gate: str) -> dict[str, Any]:
    return {
        "run": f"{m.model.name}/{m.run_key}",
        "model": m.model.name,
        "run_key": m.run_key,
        "created_at": m.created_at,
        "rows_in": m.counts.rows_in,
        "rows_scored": m.counts.rows_scored,
        "rows_quarantined": m.counts.rows_quarantined,
        "gate": gate,
        "model_version": m.model.version,
    }


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    numeric: frozenset[int] | set[int] = frozenset(),
) -> str:
    """Aligned columns: text left, numbers right, two spaces apart."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        out = [str(c).rjust(w) if i in numeric else str(c).ljust(w) for i, (c, w) in
               enumerate(zip(cells, widths, strict=True))]  # fmt: skip
        return "  ".join(out).rstrip()

    return "\n".join(line(r) for r in [header, *rows])


def _cell(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{value:.2%}"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
