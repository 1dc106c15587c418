"""`batchscore`: the command line over the pipelines library (used by dvc.yaml and people).

Every subcommand loads the same typed config (params.yaml, then BATCHSCORE__* env vars, then
`--set`/flags) and calls the same functions the Airflow DAG calls.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipelines import __version__
from pipelines.config import Settings, load_config
from pipelines.errors import BatchscoreError

log = logging.getLogger("batchscore")

EPILOG = """\
configuration:
  Every value comes from params.yaml (see --params). Override any key with
  --set section.key=value (repeatable) or an environment variable
  BATCHSCORE__SECTION__KEY=value. Flags such as --input are shortcuts for --set.

examples:
  batchscore generate && batchscore train && batchscore score
  batchscore score --input my.parquet --model my.skops --model-sha256 <sha> --run-key 2026-11-23
  batchscore score --output s3://bucket/scores --workers 0
  batchscore validate --input suspicious.csv
  batchscore runs list
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in (
        "great_expectations",
        "great_expectations.data_context.types.base",  # "ephemeral docs site" on every call
        "botocore",
        "urllib3",
        "s3transfer",
        "matplotlib",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from pipelines.termination import Terminated, install

    install()
    try:
        cfg = load_config(args.params, _overrides(args))
        return int(args.func(cfg, args) or 0)
    except BatchscoreError as exc:
        print(f"batchscore: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the machine, not the data: disk, permissions, a vanished folder
        print(
            f"batchscore: error: {exc.strerror or exc} ({exc.filename or 'no file named'}); "
            "nothing was published",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("batchscore: interrupted; nothing was published", file=sys.stderr)
        return 130
    except Terminated:
        print("batchscore: stopped by SIGTERM; nothing was published", file=sys.stderr)
        return 143


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchscore",
        description="Batch scoring for scikit-learn models: validate, score in chunks, publish.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"batchscore {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--params", type=Path, help="params file (default: ./params.yaml)")
    common.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a param, e.g. --set score.chunk_size=5000",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Any, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        return p

    gen = command("generate", cmd_generate, "write the seeded demo data (train and score sets)")
    gen.add_argument("--rows", type=int, help="rows in the score set (generate.score_rows)")
    gen.add_argument("--train-rows", type=int, help="rows in the train set")
    gen.add_argument("--seed", type=int, help="generator seed")
    gen.add_argument("--out", type=Path, help="write only the score set, to this path")

    command("train", cmd_train, "fit the demo model; write models/model.skops and its card")

    for name, func, text in (
        ("score", cmd_score, "validate, score and publish one run (the main job)"),
        ("validate", cmd_validate, "validate and score without publishing: a dry run"),
    ):
        _scoring_flags(command(name, func, text), dry_run=name == "score")

    runs = command("runs", cmd_runs, "list published runs, or show one")
    runs.add_argument("action", choices=["list", "show"])
    runs.add_argument("run_key", nargs="?", help="run key (for show)")
    runs.add_argument("--model-name", help="model folder (default: all models)")
    runs.add_argument("--output", help="output URI to read from")
    runs.add_argument("--json", action="store_true", help="print the full manifest as JSON")

    pull = command("pull", cmd_pull, "fetch the input at data.rev with DVC and verify its hash")
    pull.add_argument("--rev", help="git revision that pins the data (data.rev)")
    pull.add_argument("--repo", help="git URL/path of the DVC repo (data.repo)")
    return parser


def _scoring_flags(p: argparse.ArgumentParser, dry_run: bool) -> None:
    """The flags `score` and `validate` share (each one a params.yaml key, see _FLAG_KEYS)."""
    p.add_argument("--input", help="input Parquet/CSV file (data.path)")
    p.add_argument("--model", help="model .skops file (model.path)")
    p.add_argument("--model-sha256", help="pinned sha256 of the model file (model.sha256)")
    p.add_argument("--card", help="model card JSON (model.card)")
    p.add_argument("--output", help="output URI: file://folder or s3://bucket/prefix")
    p.add_argument("--run-key", help="partition key of the run (default: today, UTC)")
    p.add_argument("--chunk-size", type=int, help="rows per predict_proba call")
    p.add_argument("--workers", type=int, help="processes (0 = all cores)")
    p.add_argument("--input-suite", help="GX suite JSON for the input")
    p.add_argument("--no-validation", action="store_true", help="skip the GX gate")
    p.add_argument("--overwrite", action="store_true", help="replace a published run")
    p.add_argument("--summary", type=Path, help="also write the run manifest here (JSON)")
    if dry_run:
        p.add_argument("--dry-run", action="store_true", help="do everything but publish")


_FLAG_KEYS = {
    "input": "data.path",
    "model": "model.path",
    "model_sha256": "model.sha256",
    "card": "model.card",
    "output": "output.uri",
    "run_key": "run.key",
    "chunk_size": "score.chunk_size",
    "workers": "score.workers",
    "input_suite": "validation.input_suite",
    "rows": "generate.score_rows",
    "train_rows": "generate.train_rows",
    "seed": "generate.seed",
    "rev": "data.rev",
    "repo": "data.repo",
}


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in args.sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"batchscore: error: --set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    for attr, key in _FLAG_KEYS.items():
        value = getattr(args, attr, None)
        if value is not None:
            out[key] = value
    if getattr(args, "no_validation", False):
        out["validation.enabled"] = False
    if getattr(args, "overwrite", False):
        out["run.overwrite"] = True
    if getattr(args, "dry_run", False) or args.command == "validate":
        out["run.dry_run"] = True
    return out


def cmd_generate(cfg: Settings, args: argparse.Namespace) -> int:
    from pipelines.data.demo import write_dataset

    g = cfg.generate
    if args.out:
        write_dataset(args.out, g.score_rows, g.seed + 1, g.row_group_rows, with_label=False)
        log.info("wrote %s rows to %s", f"{g.score_rows:,}", args.out)
        return 0
    write_dataset(g.train_path, g.train_rows, g.seed, g.row_group_rows, with_label=True)
    # The score set is later, unlabelled data from the same population: new ids, another seed.
    write_dataset(
        g.score_path, g.score_rows, g.seed + 1, g.row_group_rows, False, first_id=10_000_001
    )
    log.info("wrote %s train rows to %s", f"{g.train_rows:,}", g.train_path)
    log.info("wrote %s score rows to %s", f"{g.score_rows:,}", g.score_path)
    return 0


def cmd_train(cfg: Settings, args: argparse.Namespace) -> int:
    from pipelines.model.train import train_model

    card = train_model(cfg)
    print(json.dumps({"model": card["name"], "sha256": card["sha256"], **card["metrics"]}))
    return 0


def cmd_score(cfg: Settings, args: argparse.Namespace) -> int:
    from pipelines.run.pipeline import run_pipeline

    if args.summary:
        _check_writable(args.summary)  # before the run: afterwards it must not fail
    manifest = run_pipeline(cfg)
    if args.summary:
        try:
            args.summary.write_text(manifest.model_dump_json(indent=2) + "\n")
        except OSError as exc:
            log.warning("run published, but the summary %s was not written: %s", args.summary, exc)
    c = manifest.counts
    where = "not published (dry run)" if manifest.dry_run else f"published to {cfg.output.uri}"
    print(
        f"run {manifest.run_key}: {c.rows_in:,} rows in, {c.rows_scored:,} scored, "
        f"{c.rows_quarantined:,} quarantined, {manifest.rows_per_s:,.0f} rows/s; {where}"
    )
    for part in manifest.parts:
        if part.kind == "report" and part.key.endswith(".html") and not manifest.dry_run:
            print(f"quality report: {cfg.output.uri}/{part.key}")
    return 0


cmd_validate = cmd_score


def _check_writable(path: Path) -> None:
    """Refuse an output path we could not write, before the run publishes anything."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        with open(path, "a"):
            pass
        if not existed:
            path.unlink()
    except OSError as exc:
        raise BatchscoreError(
            f"--summary {path} cannot be written ({exc.strerror or exc})",
            fix="give a path in a folder you can write to; nothing was run",
        ) from None


def cmd_runs(cfg: Settings, args: argparse.Namespace) -> int:
    from pipelines.publish.commit import list_runs
    from pipelines.storage.open import open_store

    if args.output:
        cfg = load_config(args.params, {**_overrides(args), "output.uri": args.output})
    store = open_store(cfg)
    runs = [m for m in list_runs(store) if not args.model_name or m.model.name == args.model_name]
    if args.action == "list":
        if not runs:
            print(f"no published runs under {cfg.output.uri}")
        for m in runs:
            c = m.counts
            print(
                f"{m.model.name}/{m.run_key}  {m.created_at}  in={c.rows_in:,} "
                f"scored={c.rows_scored:,} quarantined={c.rows_quarantined:,} "
                f"model={m.model.version}"
            )
        return 0
    if not args.run_key:
        raise BatchscoreError("`runs show` needs a RUN_KEY", fix="see `batchscore runs list`")
    matches = [m for m in runs if m.run_key == args.run_key]
    if not matches:
        raise BatchscoreError(
            f"run {args.run_key!r} is not published under {cfg.output.uri}",
            fix="see `batchscore runs list`",
        )
    for m in matches:
        if args.json:
            print(m.model_dump_json(indent=2))
            continue
        c = m.counts
        print(f"run {m.run_key} of model {m.model.name} ({m.model.version}, {m.model.sha256})")
        print(f"  created      {m.created_at} (attempt {m.attempt_id})")
        print(f"  input        {m.input.path} sha256={m.input.sha256[:16]}… rev={m.input.git_rev}")
        print(
            f"  rows         in={c.rows_in:,} scored={c.rows_scored:,} "
            f"quarantined={c.rows_quarantined:,}"
        )
        print(f"  throughput   {m.rows_per_s:,.0f} rows/s over {m.timings.get('wall', 0):.1f}s")
        for p in m.parts:
            print(
                f"  {p.kind:<11}  {store.url(p.key)}  ({p.bytes:,} bytes"
                + (f", {p.rows:,} rows)" if p.rows is not None else ")")
            )
    return 0


def cmd_pull(cfg: Settings, args: argparse.Namespace) -> int:
    from pipelines.data.pull import pull_input

    pulled = pull_input(cfg)
    print(json.dumps(pulled.as_dict(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
