"""One typed config object, loaded from `params.yaml` (or built-in defaults when there is none).

Environment variables (`BATCHSCORE__SECTION__KEY=value`) and CLI `--set section.key=value`
override the file, in that order. Every value is validated here, once, so the rest of the code can
trust it; a bad one is reported with where it came from (flag, variable, or file and line).
Relative paths in the file are relative to its folder (so `dvc repro`, the CLI and Airflow agree);
paths typed on a command line or in an environment variable are relative to the current folder.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.alerts.settings import AlertsSettings
from pipelines.errors import ConfigError
from pipelines.monitoring.settings import MonitoringSettings
from pipelines.outcomes.settings import LabelsSettings
from pipelines.params_file import PARAMS_ENV, params_file, read_params
from pipelines.registry.settings import RegistrySettings

ENV_PREFIX = "BATCHSCORE__"
__all__ = ["PARAMS_ENV", "Settings", "load_config"]
# Shared with the DAG's trigger form (dags/batchscore_support.py), which imports them cheaply.
RUN_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._=-]{0,127}$"
DEFAULT_CRON = "0 2 * * *"
_RUN_KEY = re.compile(RUN_KEY_PATTERN)


def _as_text(value: object) -> object:
    """YAML reads 2026-11-23 as a date and 1234 as an int; keys and revisions are text."""
    if isinstance(value, dt.date | int) and not isinstance(value, bool):
        return value.isoformat() if isinstance(value, dt.date) else str(value)
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class GenerateParams(_Section):
    """The seeded demo data generator."""

    train_rows: int = Field(200_000, ge=100)
    score_rows: int = Field(300_000, ge=1)
    seed: int = 42
    row_group_rows: int = Field(65_536, ge=1_000)
    train_path: Path = Path("data/train.parquet")
    score_path: Path = Path("data/score.parquet")
    labels_path: Path | None = Field(
        Path("data/score_labels.parquet"),
        description="the score set's true labels, as if delivered later (null: not written)",
    )


class TrainParams(_Section):
    """The demo model: a preprocessing + classifier sklearn Pipeline."""

    model: Literal["hgb", "logreg"] = "hgb"
    max_iter: int = Field(100, ge=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 7
    label_column: str = "label"


class DataParams(_Section):
    """The input to score: a Parquet or CSV file, optionally pinned to a git revision via DVC."""

    path: Path = Path("data/score.parquet")
    format: Literal["auto", "parquet", "csv"] = "auto"
    id_column: str = "customer_id"
    rev: str | None = Field(None, description="git revision of the DVC repo that pins the input")
    repo: str | None = Field(None, description="git URL/path of the DVC repo (default: this repo)")
    md5: str | None = Field(None, description="expected DVC md5 of the input, checked after pull")
    csv_null_values: list[str] = Field(
        default_factory=lambda: [""], description='CSV text that means "missing" (default: "")'
    )

    _rev_text = field_validator("rev", "md5", mode="before")(lambda v: _as_text(v))

    @property
    def resolved_format(self) -> Literal["parquet", "csv"]:
        if self.format != "auto":
            return self.format
        return "csv" if self.path.suffix.lower() in {".csv", ".txt"} else "parquet"


class ModelParams(_Section):
    """The model artifact and its pin: nothing is deserialized before its sha256 matches."""

    path: Path = Path("models/model.skops")
    uri: str | None = Field(
        None, description="models:/NAME@ALIAS, models:/NAME/VERSION or a path; set: wins over path"
    )
    challenger: str | None = Field(
        None, description="shadow model (models:/ URI or path) scored in the same pass"
    )
    challenger_top_k: int = Field(
        1000, ge=1, description="k of the champion/challenger top-k overlap"
    )
    sha256: str | None = Field(None, description="pinned sha256; null = from the model card")
    card: Path | None = Field(None, description="model card JSON; default: <model>.card.json")
    trusted_types: list[str] = Field(default_factory=list)
    positive_class: str | None = Field(None, description="binary: the class `score` is P of")

    _positive_text = field_validator("positive_class", mode="before")(lambda v: _as_text(v))

    @field_validator("sha256")
    @classmethod
    def _hex64(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-f]{64}", v.lower()):
            raise ValueError("must be 64 hex characters (the output of `sha256sum model.skops`)")
        return v.lower() if v else v

    @property
    def card_path(self) -> Path:
        return self.card or card_path_for(self.path)


def card_path_for(model_path: Path) -> Path:
    """A model's default card: beside it, all suffixes gone (`m.tar.skops` → `m.card.json`)."""
    return model_path.with_name(model_path.name.split(".")[0] + ".card.json")


def usable_cpus() -> int:
    """CPUs this process may run on (a container's cpuset, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class ScoreParams(_Section):
    """Chunked, parallel scoring."""

    chunk_size: int = Field(65_536, ge=1, description="rows per predict_proba call")
    workers: int = Field(1, ge=0, description="processes; 0 = all cores")
    shard_rows: int = Field(1_000_000, ge=1, description="target rows per shard (unit of fan-out)")
    pin_workers: bool = Field(True, description="each worker process on its own CPU (Linux)")
    progress: Literal["auto", "bar", "log", "off"] = "auto"

    @field_validator("progress", mode="before")
    @classmethod
    def _yaml_off(cls, v: object) -> object:
        return {False: "off", True: "auto"}.get(v, v) if isinstance(v, bool) else v  # YAML: off

    @property
    def resolved_workers(self) -> int:
        return self.workers or usable_cpus()


class ValidationParams(_Section):
    """The Great Expectations quality gate.

    `input_suite: null` (the default) runs no GX gate on the input (the data contract still
    applies); `batchscore suite init --from DATA --out suite.json` writes one to start from.
    `output_suite: null` (the default) is the output suite shipped in the package
    (`pipelines/quality/output_suite.json`), which fits any model.
    """

    enabled: bool = True
    input_suite: Path | None = None
    output_suite: Path | None = None
    batch_rows: int = Field(1_000_000, ge=1, description="rows per GX validation call")
    max_quarantine_fraction: float = Field(0.05, ge=0, le=1)
    engine: Literal["fast", "gx"] = Field(
        "fast",
        description="fast: our vectorized engine on every row, GX on every shard's sample in "
        "one pass before the commit (any disagreement fails the run); gx: GX on every batch",
    )
    audit_rows: int = Field(
        10_000,
        ge=0,
        description="rows of each shard also validated by GX under engine fast (evenly "
        "spaced); 0 = no audit, giving up the GX cross-check (and never importing GX)",
    )


class OutputParams(_Section):
    """Where runs are published: file://folder (default: ./out) or s3://bucket/prefix."""

    uri: str = "file://out"
    model_name: str | None = Field(None, description="folder per model; default: from the card")
    sse: Literal["AES256", "aws:kms"] | None = None
    sse_kms_key_id: str | None = None

    @field_validator("uri")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not re.match(r"^(file|s3)://.+", v):
            raise ValueError("must start with file:// (a local folder) or s3:// (bucket/prefix)")
        return v.rstrip("/")


class S3Params(_Section):
    """boto3 client settings. Credentials never live here: they come from the environment."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    max_attempts: int = Field(5, ge=1, le=20, description="total attempts, first call included")
    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(60.0, gt=0)
    multipart_threshold_mb: int = Field(64, ge=5)
    require_tls: bool = Field(False, description="refuse a non-https:// endpoint (production)")

    @field_validator("require_tls")
    @classmethod
    def _tls_endpoint(cls, v: bool, info: Any) -> bool:
        url = info.data.get("endpoint_url")
        if v and url and not url.lower().startswith("https://"):
            raise ValueError(
                f"s3.endpoint_url {url!r} is not https:// but s3.require_tls is true: use an https"
                ":// endpoint (set require_tls: false only for a loopback test endpoint)"
            )
        return v


class RunParams(_Section):
    """What identifies a run and how a rerun of it behaves."""

    key: str | None = Field(None, description="partition key; default: today's UTC date")
    overwrite: bool = False
    dry_run: bool = False

    _key_text = field_validator("key", mode="before")(lambda v: _as_text(v))

    @field_validator("key")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        if v is not None and not _RUN_KEY.fullmatch(v):
            raise ValueError(
                "must be 1-128 characters of letters, digits, '.', '_', '=', '-' "
                "(e.g. 2026-11-23), starting with a letter or digit"
            )
        return v


class ScheduleParams(_Section):
    """When the nightly DAG runs (read by the DAG at parse time)."""

    cron: str = DEFAULT_CRON


class Settings(_Section):
    """Everything a run needs. Built by `load_config`; passed down unchanged."""

    generate: GenerateParams = GenerateParams()
    train: TrainParams = TrainParams()
    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
    score: ScoreParams = ScoreParams()
    validation: ValidationParams = ValidationParams()
    output: OutputParams = OutputParams()
    s3: S3Params = S3Params()
    run: RunParams = RunParams()
    schedule: ScheduleParams = ScheduleParams()
    monitoring: MonitoringSettings = MonitoringSettings()
    registry: RegistrySettings = RegistrySettings()
    labels: LabelsSettings = LabelsSettings()
    alerts: AlertsSettings = AlertsSettings()
    root: Path = Field(Path("."), exclude=True)

    @model_validator(mode="after")
    def _resolve_paths(self) -> Settings:
        for dotted in (*_PATH_KEYS, "output.uri"):
            *sections, name = dotted.split(".")
            obj: Any = self
            for section in sections:
                obj = getattr(obj, section)
            value = getattr(obj, name)
            if (fixed := _absolute(value, self.root)) != value:
                object.__setattr__(obj, name, fixed)
        return self

    @property
    def run_key(self) -> str:
        return self.run.key or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")


_PATH_KEYS = ("generate.train_path", "generate.score_path", "data.path", "model.path")
_PATH_KEYS += ("model.card", "validation.input_suite", "validation.output_suite")
_PATH_KEYS += ("generate.labels_path", "monitoring.baseline")
_SECTIONS = [name for name in Settings.model_fields if name != "root"]


def _absolute(value: Any, base: Path) -> Any:
    """A relative path or `file://` URI made absolute against `base`; other values unchanged."""
    if isinstance(value, Path):
        return value if value.is_absolute() else (base / value).resolve()
    if isinstance(value, str) and value.startswith("file://") and not Path(value[7:]).is_absolute():
        return f"file://{(base / value[7:]).resolve()}"
    return value


def load_config(
    params_path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    origins: Mapping[str, str] | None = None,
    relative_to: Path | None = None,
) -> Settings:
    """Read the params file, apply env then explicit overrides, validate, resolve paths.

    The file is `params_path`, else $BATCHSCORE_PARAMS (either must exist), else ./params.yaml if
    any, else none: built-in defaults, so a model and data given by flags work from any folder.
    `overrides` use dotted keys (`{"score.chunk_size": "5000"}`, strings read as YAML scalars);
    `origins` names where each came from (`"--set score.chunk_size=abc"`) for error messages.
    Relative paths: in the file, to its folder; in env values, to the current folder; in
    `overrides`, to `relative_to` (the CLI passes the current folder), else to the file's folder.
    """
    environ = os.environ if env is None else env
    path = params_file(params_path, environ)
    raw, where = read_params(path) if path else ({}, {})
    root = path.resolve().parent if path else Path.cwd()
    given = [  # (key, value, where it came from, what its relative paths are relative to)
        (k[len(ENV_PREFIX) :].lower().replace("__", "."), v, f"environment variable {k}", None)
        for k, v in environ.items()
        if k.startswith(ENV_PREFIX)
    ]
    given += [
        (k, v, (origins or {}).get(k), relative_to or root) for k, v in (overrides or {}).items()
    ]
    for dotted, value, origin, base in given:
        _set_dotted(raw, dotted, _anchored(dotted, value, base or Path.cwd()), origin or "override")
        where[dotted] = origin
    raw["root"] = root
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, where)) from None


def _anchored(dotted: str, value: Any, base: Path) -> Any:
    """An override's value as a YAML scalar (a path as typed, or null), relative paths anchored."""
    text = value.strip() if isinstance(value, str) else None
    try:
        parsed = value if text is None else yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        parsed = value
    if dotted in _PATH_KEYS and isinstance(value, str | Path) and parsed is not None:
        return _absolute(Path(value), base)
    return _absolute(parsed, base) if dotted == "output.uri" else parsed


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    """Set `section.key` (or `section.sub.key`) in the raw params, making the mappings needed."""
    keys = dotted.split(".")
    if len(keys) < 2 or not all(keys):
        raise ConfigError(
            f"key {dotted!r} (from {source}) must be section.key (e.g. score.chunk_size)",
            fix=f"use one of the sections: {', '.join(_SECTIONS)}",
        )
    node = raw
    for depth, key in enumerate(keys[:-1]):
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            name = ".".join(keys[: depth + 1])
            raise ConfigError(f"params section {name!r} must be a mapping, got {node!r}")
    node[keys[-1]] = value


def _explain(exc: ValidationError, where: Mapping[str, str | None]) -> str:
    """One line per bad value: the key, the value, where it came from and what is allowed."""
    lines = [f"{len(exc.errors())} invalid param{'s' if len(exc.errors()) > 1 else ''}:"]
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc)
        prefixes = [".".join(loc[:n]) for n in range(len(loc), 0, -1)]  # a.b.0, a.b, a
        origin = next((where[k] for k in prefixes if k in where), None)
        if origin is None and len(loc) == 1:  # an unknown section: any of its keys names it
            origin = next((o for k, o in where.items() if k.startswith(f"{key}.") and o), None)
        src = f" (from {origin})" if origin else ""
        if err["type"] != "extra_forbidden":
            lines.append(f"  {key} = {err.get('input')!r}{src}: {err['msg']}")
            continue
        section = _section_model(loc[:-1])
        parent = ".".join(loc[:-1])
        known = [f"{parent}.{k}" for k in section.model_fields] if section else _SECTIONS
        what = "key" if section else "section"
        if close := difflib.get_close_matches(key, known, n=1, cutoff=0.6):
            lines.append(f"  unknown {what} {key}; did you mean {close[0]}?{src}")
        else:
            lines.append(f"  unknown {what} {key}{src}; allowed: {', '.join(known)}")
    return "\n".join(lines)


def _section_model(loc: list[str]) -> Any:
    """The pydantic model of the section at `loc` (["monitoring", "drift"]); None at the top."""
    model: Any = Settings
    for name in loc:
        model = model.model_fields[name].annotation
    return model if loc else None
