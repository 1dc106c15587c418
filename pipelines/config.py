"""One typed config object, loaded from `params.yaml`.

`params.yaml` is the single source of configuration; environment variables
(`BATCHSCORE__SECTION__KEY=value`) and CLI `--set section.key=value` override it, in that order.
Every value is validated here, once, so the rest of the code can trust it. Relative paths are
resolved against the folder that holds the params file, so `dvc repro`, the CLI and Airflow agree.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.errors import ConfigError

ENV_PREFIX = "BATCHSCORE__"
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
        default_factory=lambda: [""],
        description='CSV text that means "missing" in a feature or the ID (default: empty only)',
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
    sha256: str | None = Field(None, description="pinned sha256; null = from the model card")
    card: Path | None = Field(None, description="model card JSON; default: <model>.card.json")
    trusted_types: list[str] = Field(default_factory=list)
    positive_class: str | None = Field(
        None, description="binary models: the class `score` is the probability of"
    )

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
    pin_workers: bool = Field(
        True,
        description="pin each worker process to its own CPU (Linux): no migrations, warm caches",
    )
    progress: Literal["auto", "bar", "log", "off"] = "auto"

    @field_validator("progress", mode="before")
    @classmethod
    def _yaml_off(cls, v: object) -> object:
        return {False: "off", True: "auto"}.get(v, v) if isinstance(v, bool) else v  # YAML: off

    @property
    def resolved_workers(self) -> int:
        return self.workers or usable_cpus()


class ValidationParams(_Section):
    """The Great Expectations quality gate."""

    enabled: bool = True
    input_suite: Path | None = Path("validation/input_suite.json")
    output_suite: Path | None = Path("validation/output_suite.json")
    batch_rows: int = Field(1_000_000, ge=1, description="rows per GX validation call")
    max_quarantine_fraction: float = Field(0.05, ge=0, le=1)


class OutputParams(_Section):
    """Where runs are published: file://folder (embedded default) or s3://bucket/prefix."""

    uri: str = "file://out/bucket"
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
    require_tls: bool = Field(
        False, description="refuse any endpoint that is not https://; set true in production"
    )

    @field_validator("require_tls")
    @classmethod
    def _tls_endpoint(cls, v: bool, info: Any) -> bool:
        url = info.data.get("endpoint_url")
        if v and url and not url.lower().startswith("https://"):
            raise ValueError(
                f"s3.endpoint_url {url!r} is not https:// but s3.require_tls is true: use an "
                "https:// endpoint (set require_tls: false only for a loopback test endpoint)"
            )
        return v


class RunParams(_Section):
    """What identifies a run and how a rerun of it behaves."""

    key: str | None = Field(None, description="partition key; default: today's UTC date")
    overwrite: bool = False
    dry_run: bool = False

    @field_validator("key", mode="before")
    @classmethod
    def _key_text(cls, v: object) -> object:
        return _as_text(v)

    @field_validator("key")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        if v is not None and not _RUN_KEY.match(v):
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
    root: Path = Field(Path("."), exclude=True)

    @model_validator(mode="after")
    def _resolve_paths(self) -> Settings:
        def fix(p: Path | None) -> Path | None:
            return p if p is None or p.is_absolute() else (self.root / p).resolve()

        for section, names in _PATH_FIELDS.items():
            obj = getattr(self, section)
            for name in names:
                fixed = fix(getattr(obj, name))
                if fixed != getattr(obj, name):
                    object.__setattr__(obj, name, fixed)
        if self.output.uri.startswith("file://"):
            local = Path(self.output.uri.removeprefix("file://"))
            if not local.is_absolute():
                object.__setattr__(self.output, "uri", f"file://{(self.root / local).resolve()}")
        return self

    @property
    def run_key(self) -> str:
        return self.run.key or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")


_PATH_FIELDS = {
    "generate": ("train_path", "score_path"),
    "data": ("path",),
    "model": ("path", "card"),
    "validation": ("input_suite", "output_suite"),
}


def load_config(
    params_path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Load params.yaml, apply env then explicit overrides, validate, resolve paths.

    `overrides` use dotted keys (`{"score.chunk_size": 5000}`); string values are parsed as YAML
    scalars so `"5000"`, `"true"` and `"null"` mean what they say.
    """
    path = Path(params_path or os.environ.get("BATCHSCORE_PARAMS") or "params.yaml")
    if not path.is_file():
        raise ConfigError(
            f"params file {path.resolve()} not found",
            fix="run from the project folder, or pass --params / set BATCHSCORE_PARAMS",
        )
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"params file is not valid YAML: {exc}", where=str(path)) from None
    if not isinstance(raw, dict):
        raise ConfigError("params file must be a mapping of sections", where=str(path))
    env_over = {
        k.removeprefix(ENV_PREFIX).lower().replace("__", "."): v
        for k, v in (os.environ if env is None else env).items()
        if k.startswith(ENV_PREFIX)
    }
    for source, items in (("environment", env_over), ("override", dict(overrides or {}))):
        for dotted, value in items.items():
            _set_dotted(raw, dotted, _parse_scalar(value), source)
    raw["root"] = path.resolve().parent
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (YAML keeps the last one
    silently, so a duplicated `score:` section would drop the first without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice in one mapping, on lines {seen[key]} and {line}; "
                    "YAML would silently keep only the last. Merge them into one",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _parse_scalar(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        return value


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    keys = dotted.split(".")
    if len(keys) != 2 or not all(keys):
        raise ConfigError(
            f"{source} key {dotted!r} must be section.key (e.g. score.chunk_size)",
            fix=f"use one of the sections: {', '.join(Settings.model_fields)}",
        )
    section = raw.setdefault(keys[0], {})
    if not isinstance(section, dict):
        raise ConfigError(f"params section {keys[0]!r} must be a mapping, got {section!r}")
    section[keys[1]] = value


def _explain(exc: ValidationError, path: Path) -> str:
    lines = [f"{len(exc.errors())} invalid param(s) in {path} (after env/CLI overrides):"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            section = err["loc"][0] if len(err["loc"]) > 1 else None
            allowed = (
                Settings.model_fields[section].annotation.model_fields  # type: ignore[union-attr]
                if section in Settings.model_fields
                else Settings.model_fields
            )
            lines.append(f"  {key}: unknown key; allowed here: {', '.join(allowed)}")
            continue
        lines.append(f"  {key} = {err.get('input')!r}: {err['msg']}")
    return "\n".join(lines)
