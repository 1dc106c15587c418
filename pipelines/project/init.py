"""Writing a starter suite (`batchscore suite init`) and a project folder (`batchscore init`).

The I/O edge around `starter_suite`: read a sample, refuse what cannot work before writing
anything (a missing file, an unknown or ambiguous ID column, files that already exist), and check
what is written with the same loaders a run uses, so a scaffolded project runs as written.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipelines.config import OutputParams
from pipelines.errors import ConfigError
from pipelines.model.artifact import LoadedModel
from pipelines.project.sample import (
    DEFAULT_SAMPLE_ROWS,
    data_format,
    guess_id_column,
    load_project_model,
    read_sample,
)
from pipelines.project.starter_suite import starter_suite

SUITE_FILE = Path("validation") / "input_suite.json"
DEFAULT_OUTPUT = "file://out"
CSV_NOTE = (
    " CSV: numeric-looking columns are typed as numbers, as the data contract types a model's "
    "numeric features; a column the model does not use stays text at the gate, so turn its "
    "expectations into text ones (or use `batchscore init`, which knows the model)."
)


@dataclass(frozen=True)
class Project:
    """What `init_project` wrote, and the command that runs it."""

    params: Path
    suite: Path
    id_column: str
    id_guessed: bool
    expectations: int
    next_command: str


def write_starter_suite(
    data: Path,
    out: Path,
    id_column: str | None = None,
    *,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    force: bool = False,
    model: LoadedModel | None = None,
) -> dict[str, Any]:
    """Derive a starter suite from the first `sample_rows` rows of `data`, write it to `out`."""
    if not force:
        _refuse_existing([out], "--out")
    frame = read_sample(data, sample_rows, id_column, model, "--data" if model else "--from")
    raw = starter_suite(frame, id_column, suite_name(data))
    raw["meta"]["data_set"] = data.name
    if model is not None:
        raw["meta"].update(generated_by="batchscore init", model=f"{model.name} ({model.version})")
    elif data_format(data) == "csv":
        raw["notes"] += CSV_NOTE
    from pipelines.quality.suite import parse_suite

    parse_suite(raw, str(out))  # loads as a run will load it, or it is our bug: nothing written
    _write(out, json.dumps(raw, indent=2) + "\n")
    return raw


def suite_name(data: Path) -> str:
    """`customers_2026.parquet` → `customers_2026_input`: names the suite and seeds its ids."""
    stem = re.sub(r"[^A-Za-z0-9_]+", "_", data.name.split(".")[0]).strip("_") or "data"
    return f"{stem}_input"


def init_project(
    directory: Path,
    model_path: Path,
    data: Path,
    id_column: str | None = None,
    *,
    output: str | None = None,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    trusted_types: list[str] | None = None,
    force: bool = False,
) -> Project:
    """Write DIR/params.yaml (model pinned, paths relative to DIR) and its starter input suite.

    The ID column, when not given, is guessed: the one column the model does not use that is
    named like an ID and unique in the sample; otherwise ConfigError asks for --id-column.
    """
    params, suite = directory / "params.yaml", directory / SUITE_FILE
    if not force:
        _refuse_existing([params, suite], "DIR")
    if output is not None:
        _check_output(output)
    model = load_project_model(model_path, trusted_types)
    guessed = id_column is None
    if id_column is None:
        features = {f.name for f in model.features}
        raw_sample = read_sample(data, sample_rows, None, None, "--data", typed=False)
        id_column = guess_id_column(raw_sample, features)
    raw = write_starter_suite(
        data, suite, id_column, sample_rows=sample_rows, force=True, model=model
    )
    if output and output.startswith("file://") and not Path(output[7:]).is_absolute():
        output = "file://" + relative_to(Path(output[7:]), directory)  # typed: from the cwd
    text = render_params(
        directory, model, model_path, data, id_column, output or DEFAULT_OUTPUT, trusted_types
    )
    _write(params, text)
    return Project(
        params=params,
        suite=suite,
        id_column=id_column,
        id_guessed=guessed,
        expectations=len(raw["expectations"]),
        next_command=f"batchscore score --params {shlex.quote(str(params))}",
    )


def render_params(
    directory: Path,
    model: LoadedModel,
    model_path: Path,
    data: Path,
    id_column: str,
    output: str,
    trusted_types: list[str] | None,
) -> str:
    """params.yaml for this model and data, commented for the person who edits it next."""
    q = json.dumps  # a JSON string is a YAML string: quotes and escapes any name safely
    return f"""\
# batchscore project, written by `batchscore init` for model {model.name} ({model.version}).
# Relative paths are relative to this file. Override any key with --set section.key=value or
# BATCHSCORE__SECTION__KEY=value.

data:
  path: {q(relative_to(data, directory))}
  format: {data_format(data, "--data")}
  id_column: {q(id_column)}  # identifies a row: checked, never scored
  csv_null_values: [""]  # CSV fields read as missing

model:
  path: {q(relative_to(model_path, directory))}
  # pinned: any other file is refused; update it after retraining
  sha256: {q(model.sha256)}
  trusted_types: {q(list(trusted_types or []))}  # types skops may load beyond the defaults

score:
  chunk_size: 65536  # rows per predict_proba call
  workers: 1  # processes; 0 = all cores

validation:
  enabled: true
  input_suite: {q(SUITE_FILE.as_posix())}  # derived from the data sample: review its bounds
  output_suite: null  # null = the built-in output suite, which fits any model
  max_quarantine_fraction: 0.05  # more rows quarantined than this fails the run

output:
  uri: {q(output)}  # file://folder (relative to this file) or s3://bucket/prefix

run:
  key: null  # partition key; null = today's UTC date
  overwrite: false
  dry_run: false
"""


def relative_to(target: Path, directory: Path) -> str:
    """`target` relative to `directory` when they share more than the filesystem root."""
    target, directory = target.resolve(), directory.resolve()
    if os.path.commonpath([target, directory]) == target.anchor:
        return target.as_posix()
    return Path(os.path.relpath(target, directory)).as_posix()


def _check_output(uri: str) -> None:
    """Refuse an output URI that params.yaml would refuse, before anything is written."""
    try:
        OutputParams(uri=uri)
    except ValidationError as exc:
        raise ConfigError(
            f"--output {uri!r}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}",
            where="--output",
            fix="give file://folder (a local folder) or s3://bucket/prefix",
        ) from None


def _refuse_existing(paths: list[Path], option: str) -> None:
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        raise ConfigError(
            f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}",
            where=option,
            fix="pass --force to overwrite, or choose another "
            + ("--out" if option == "--out" else "folder"),
        )


def _write(path: Path, text: str) -> None:
    """Whole or not at all: a half-written file would be read as a broken suite or params."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
