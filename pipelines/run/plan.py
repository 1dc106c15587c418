"""A run's plan: everything fixed before any row is read, and what each shard hands back.

Plans and results are pydantic models that round-trip through JSON, so the Airflow DAG can pass
them between tasks over XCom. A run's rate is defined here, once (`rows_per_s`), for the manifest,
the report, the CLI and the logs alike.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.config import Settings
from pipelines.data.contract import Contract, check_contract
from pipelines.data.proof import InputProof, prove_input
from pipelines.data.pull import input_commit
from pipelines.data.source import InputInfo, Shard, inspect_input, plan_shards
from pipelines.errors import InputDataError, PublishConflictError
from pipelines.model.artifact import LoadedModel
from pipelines.publish.commit import OTHER_KEY_OR_OVERWRITE, read_manifest
from pipelines.publish.keys import staging_prefix
from pipelines.publish.manifest import InputRef, ModelRef
from pipelines.publish.manifest import fingerprint as make_fingerprint
from pipelines.run.challenger import Challenger, challenger_target
from pipelines.run.monitors import plan_monitoring
from pipelines.run.pinned import ModelSpec, challenger_spec, champion_spec, load_spec, pinned
from pipelines.run.records import RunPlan, ShardResult
from pipelines.run.resume import resumable_attempt
from pipelines.run.scoring import ScoreTarget, check_id_column, score_target
from pipelines.storage.hashing import sha256_file
from pipelines.storage.open import open_store

if TYPE_CHECKING:
    from pipelines.quality.suite import Suite

__all__ = [
    "RunPlan",
    "ShardResult",
    "plan_run",
    "rows_per_s",
    "run_suites",
    "shard_inputs",
    "uses_gx",
]
log = logging.getLogger(__name__)
NO_INPUT_SUITE = (
    "validation.input_suite is not set: no GX gate checks the input (the data contract still "
    "quarantines rows the model cannot take). Make a suite from your data with `batchscore suite "
    "init --from DATA --out suite.json` and set validation.input_suite: suite.json"
)


def plan_run(
    cfg: Settings,
    git_rev: str | None = None,
    dvc_md5: str | None = None,
    *,
    gx_check: bool | None = None,
) -> RunPlan:
    """Check everything that can be checked without reading rows, then fix the shards.

    Fails here (nothing written) on bad input files, a model that is not the pinned one, an input
    whose columns do not fit the model, unreadable suites, or a run key already published with
    other inputs (unless overwrite). `gx_check=False` leaves GX's own kwargs check of the suites
    to the caller (`run_suites`), who runs it while the shards score (run/pipeline.py).
    It is long because it is the plan's table of contents: one line per check, in their order.
    """
    started = time.time()
    spec = champion_spec(cfg)
    model = load_spec(cfg, spec)
    info = inspect_input(cfg.data.path, cfg.data.resolved_format)
    contract = check_contract(info, model, cfg.data.id_column, tuple(cfg.data.csv_null_values))
    target = score_target(model.classes, cfg.model.positive_class)
    check_id_column(cfg.data.id_column, target)
    suites = _suite_hashes(cfg, gx_check)
    shards = plan_shards(info, cfg.score.shard_rows)
    proof = prove_input(info, shards)
    input_ref = _input_ref(cfg, info, proof, git_rev, dvc_md5)
    model_ref = _model_ref(cfg, model, spec)
    challenger = _challenger(cfg, info, target)
    monitoring = plan_monitoring(cfg, spec, model, info.columns)
    fp = make_fingerprint(
        input=input_ref.sha256,
        model=model.sha256,
        suites=suites,
        contract=asdict(contract),
        score=asdict(target),
        shard_rows=cfg.score.shard_rows,
        run_key=cfg.run_key,
        validation=cfg.validation.enabled,
        challenger=challenger["ref"]["sha256"] if challenger else None,
    )
    # a shard's result also holds drift counts against the baseline: reuse only the same
    identity = make_fingerprint(output=fp, monitoring=monitoring)
    attempt, resumed = _attempt(cfg, model_ref.name, identity)
    plan = RunPlan(
        run_key=cfg.run_key,
        attempt_id=attempt,
        model=model_ref,
        model_spec=pinned(spec, model).model_dump(),
        challenger=challenger,
        monitoring=monitoring,
        input=input_ref,
        input_columns=info.columns,
        row_group_rows=list(info.row_group_rows),
        row_group_spans=[list(span) for span in info.row_group_spans],
        input_proof=asdict(proof),
        shards=[asdict(s) for s in shards],
        contract=asdict(contract),
        score_target=asdict(target),
        fingerprint=fp,
        resume_identity=identity,
        resumed_from=resumed,
        staging_prefix=staging_prefix(model_ref.name, cfg.run_key, attempt),
        started_at=started,
    )
    plan.already_published = _already_published(cfg, model_ref.name, fp)
    plan.plan_seconds = round(time.time() - started, 3)
    _log_plan(plan, info, len(shards))
    return plan


def shard_inputs(
    plan: RunPlan, index: int
) -> tuple[Contract, ScoreTarget, InputInfo, Shard, InputProof]:
    """Rebuild, from the plan's JSON, what one shard needs (the plan may come over XCom)."""
    contract = _contract(plan.contract)
    target = _target(plan.score_target)
    info = InputInfo(
        Path(plan.input.path),
        plan.input.format,
        plan.input_columns,
        plan.input.rows if plan.input.format == "parquet" else None,
        tuple(plan.row_group_rows),
        tuple((a, b) for a, b in plan.row_group_spans),
    )
    raw = plan.shards[index]
    shard = Shard(
        index=raw["index"],
        row_groups=None if raw["row_groups"] is None else tuple(raw["row_groups"]),
        rows=raw["rows"],
        span=None if raw.get("span") is None else tuple(raw["span"]),
    )
    p = plan.input_proof
    proof = InputProof(**{**p, "shard_sha256": tuple(p.get("shard_sha256", ()))})
    return contract, target, info, shard, proof


def _attempt(cfg: Settings, model_name: str, identity: str) -> tuple[str, str | None]:
    """A new attempt id (every plan stages under its own), and the interrupted attempt of the same
    identity whose verified shards it copies instead of scoring them again (run/resume)."""
    resumed = None
    if not cfg.run.dry_run:  # a dry run discards what it stages: copying would be wasted
        resumed = resumable_attempt(open_store(cfg), model_name, cfg.run_key, identity)
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}", resumed


def shard_challenger(cfg: Settings, plan: RunPlan) -> Challenger | None:
    """The plan's shadow model, loaded exactly as pinned (None without one)."""
    if not plan.challenger:
        return None
    model = load_spec(cfg, ModelSpec(**plan.challenger["spec"]))
    return Challenger(
        model, _contract(plan.challenger["contract"]), _target(plan.challenger["target"])
    )


def _contract(raw: dict[str, Any]) -> Contract:
    return Contract(
        **{
            **raw,
            "features": tuple(raw["features"]),
            "numeric": tuple(raw["numeric"]),
            "null_values": tuple(raw.get("null_values", ("",))),
        }
    )


def _target(raw: dict[str, Any]) -> ScoreTarget:
    return ScoreTarget(**{**raw, "classes": tuple(raw["classes"])})


def rows_per_s(rows: int, seconds: float) -> float:
    """The one rate batchscore reports: rows over wall seconds (0 when no time passed).

    A run's is its rows in over its wall time, plan start to the manifest (`timings["wall"]`):
    the manifest, the report and the CLI summary all show that one number.
    """
    return round(rows / seconds, 1) if seconds > 0 else 0.0


def _input_ref(
    cfg: Settings,
    info: InputInfo,
    proof: InputProof,
    git_rev: str | None,
    dvc_md5: str | None,
) -> InputRef:
    """Which data this run reads, as the manifest records it.

    The git revision is the pull's (`data.pull`); without a pull (the CLI's `score`), the commit
    of the git work tree holding the input, only when that commit holds this very file
    (`data.pull.input_commit`): never the project folder's HEAD for a file outside it.
    """
    if git_rev is None and dvc_md5 is None:  # no pull ran
        git_rev = input_commit(cfg.data.path, cfg.root)
    return InputRef(
        path=str(cfg.data.path),
        format=info.format,
        sha256=proof.sha256,
        bytes=proof.size,
        rows=info.num_rows if info.num_rows is not None else proof.csv_records,
        git_rev=git_rev,
        dvc_md5=dvc_md5,
    )


def _model_ref(cfg: Settings, model: LoadedModel, spec: ModelSpec) -> ModelRef:
    return ModelRef(
        name=cfg.output.model_name or (spec.pin or {}).get("name") or model.name,
        version=str(spec.pin["version"]) if spec.pin else model.version,
        sha256=model.sha256,
        path=spec.source,
        sklearn_version=model.card.get("sklearn_version"),
        registry=spec.registry,
    )


def _challenger(cfg: Settings, info: InputInfo, champion: ScoreTarget) -> dict[str, Any] | None:
    """The shadow model pinned like the champion, with its own contract against the input."""
    spec = challenger_spec(cfg)
    if spec is None:
        return None
    model = load_spec(cfg, spec)
    contract = check_contract(info, model, cfg.data.id_column, tuple(cfg.data.csv_null_values))
    target = challenger_target(model, champion)
    ref = ModelRef(
        name=(spec.pin or {}).get("name") or model.name,
        version=str(spec.pin["version"]) if spec.pin else model.version,
        sha256=model.sha256,
        path=spec.source,
        sklearn_version=model.card.get("sklearn_version"),
        registry=spec.registry,
    )
    log.info("challenger: %s (%s), scored in the same pass", ref.name, ref.version)
    return {
        "spec": pinned(spec, model).model_dump(),
        "ref": ref.model_dump(),
        "contract": asdict(contract),
        "target": asdict(target),
    }


def _already_published(cfg: Settings, model_name: str, fingerprint: str) -> bool:
    """True if this very run (same fingerprint) is published; refuse other published inputs."""
    existing = read_manifest(open_store(cfg), model_name, cfg.run_key)
    if existing is None or cfg.run.dry_run:
        return False
    if existing.fingerprint == fingerprint:
        return True
    if not cfg.run.overwrite:
        raise PublishConflictError(
            f"run {cfg.run_key} of model {model_name} is already published from other "
            f"inputs (input {existing.input.sha256[:12]}, model {existing.model.version})",
            fix=OTHER_KEY_OR_OVERWRITE,
        )
    return False


def run_suites(cfg: Settings, gx_check: bool | None = None) -> dict[str, Suite]:
    """The run's GX suites by gate ("input", "output"); none when validation is off.

    `validation.output_suite: null` is the built-in output suite; `validation.input_suite: null`
    is no input gate. A missing or malformed suite file fails here. `gx_check`: also run GX's
    own kwargs check (default: when this run imports GX anyway); a shard passes False, since its
    plan checked them and the fast engine's shards never import GX.
    """
    if not cfg.validation.enabled:
        return {}
    from pipelines.quality.gx import quiet_gx_logs
    from pipelines.quality.suite import BUILTIN_OUTPUT_SUITE, load_suite

    # GX checks the suites' kwargs here only when this run imports GX anyway (engine gx, or the
    # fast engine's audit): with `audit_rows: 0` nothing imports it (2.3 s), our checks suffice.
    if gx_check is None:
        gx_check = uses_gx(cfg)
    if gx_check:
        quiet_gx_logs()  # before GX is imported: its import logs
    paths = {
        "input": cfg.validation.input_suite,
        "output": cfg.validation.output_suite or BUILTIN_OUTPUT_SUITE,
    }
    suites = {}
    for name, path in paths.items():
        if path is None:
            continue
        if not path.is_file():
            raise InputDataError(
                f"validation.{name}_suite {path} not found",
                fix="point it at a GX suite JSON file, set it to null (input: no GX gate, "
                "output: the built-in suite), or set validation.enabled: false",
            )
        suites[name] = load_suite(path, gx_check=gx_check)
    return suites


def uses_gx(cfg: Settings) -> bool:
    """Whether this run's gates import GX: engine gx, or the fast engine with its GX audit."""
    v = cfg.validation
    return v.enabled and (v.engine == "gx" or v.audit_rows > 0)


def _suite_hashes(cfg: Settings, gx_check: bool | None) -> dict[str, str | None]:
    """The suites' sha256, for the fingerprint; a missing or malformed suite fails the plan."""
    if not cfg.validation.enabled:
        return {}
    suites = run_suites(cfg, gx_check)
    if "input" not in suites:
        log.warning(NO_INPUT_SUITE)
    return {
        f"{name}_suite": sha256_file(Path(suites[name].source)) if name in suites else None
        for name in ("input", "output")
    }


def _log_plan(plan: RunPlan, info: InputInfo, shards: int) -> None:
    log.info(
        "plan: run %s, model %s (%s), input %s: %s rows in %d shard(s)%s",
        plan.run_key,
        plan.model.name,
        plan.model.version,
        Path(plan.input.path).name,
        f"{info.num_rows:,}" if info.num_rows is not None else "?",
        shards,
        ", already published: nothing to do" if plan.already_published else "",
    )
