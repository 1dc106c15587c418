"""Register a skops file (with its card and baseline) as a model version, and list versions.

A version's artifacts are the model file plus `<stem>.card.json` and `<stem>.baseline.json`
under their canonical names, so a fetched version is laid out as `batchscore train` writes one;
its tags carry what a pin needs without downloading anything (sha256, file name).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipelines.registry.client import Registry, error_code, open_registry, translated
from pipelines.registry.errors import RegistryError, UnsafeArtifactError
from pipelines.registry.safety import check_skops_file, sha256_of, sklearn_version_in
from pipelines.registry.settings import RegistrySettings

TAG = "batchscore."
SHA_TAG, FILE_TAG, SKLEARN_TAG = f"{TAG}sha256", f"{TAG}file", f"{TAG}sklearn_version"
TRAINING_TAG = f"{TAG}training_data_sha256"
SIDECARS = {"card": ".card.json", "baseline": ".baseline.json"}  # kind -> suffix beside the model
LOCK_SUFFIX = ".batchscore-lock"  # see aliases.py: registered models used as a mutex


@dataclass(frozen=True)
class VersionInfo:
    """One registered version as `model list --json` prints it."""

    name: str
    version: int
    aliases: tuple[str, ...]
    sha256: str | None
    file: str | None
    sklearn_version: str | None
    training_data_sha256: str | None
    card: str | None
    baseline: str | None
    created_at: str
    description: str | None
    run_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "aliases": list(self.aliases)}


def sidecar_name(model_file: str, kind: str) -> str:
    """`model.skops` -> `model.card.json` / `model.baseline.json` (all suffixes gone)."""
    return model_file.split(".")[0] + SIDECARS[kind]


def register(
    path: Path,
    name: str,
    settings: RegistrySettings,
    root: Path,
    *,
    card: Path | None = None,
    baseline: Path | None = None,
    description: str | None = None,
    trusted_types: Sequence[str] = (),
) -> VersionInfo:
    """Upload a checked skops file and its sidecars as a new version of `name`.

    The same bytes registered again return the existing version (a rerun is a no-op).
    `card`/`baseline` default to the files beside the model, if present.
    """
    check_skops_file(path, trusted_types)
    _check_model_name(name)
    sidecars = _sidecars(path, {"card": card, "baseline": baseline})
    card_doc = _read_card(sidecars.get("card"))
    digest = sha256_of(path)
    if card_doc.get("sha256") not in (None, digest):
        raise UnsafeArtifactError(
            f"the card {sidecars['card'].name} describes a file with sha256 "
            f"{card_doc['sha256']}, not {path.name} ({digest})",
            fix="register the model together with its own card (as saved by `batchscore train`)",
        )
    tags = {SHA_TAG: digest, FILE_TAG: path.name, SKLEARN_TAG: sklearn_version_in(path, card_doc)}
    if training := (card_doc.get("training_data") or {}).get("sha256"):
        tags[TRAINING_TAG] = str(training)
    for kind, file in sidecars.items():
        tags[f"{TAG}{kind}"] = sidecar_name(path.name, kind)
        tags[f"{TAG}{kind}_sha256"] = sha256_of(file)
    registry = open_registry(settings, root)
    with translated(registry.endpoint, f"registering {path.name} as {name}"):
        _ensure_model(registry, name)
        same = [v for v in list_versions(name, settings, root, registry) if v.sha256 == digest]
        if same:
            return same[0]
        run_id, source = _upload(registry, name, path, sidecars)
        created = registry.client.create_model_version(
            name, source=source, run_id=run_id, tags=tags, description=description
        )
    return _info(created, ())


def _check_model_name(name: str) -> None:
    if not name.strip() or name.endswith(LOCK_SUFFIX) or "@" in name:
        raise RegistryError(
            f"{name!r} cannot be a model name",
            fix=f"use letters, digits, '-', '_' or '.'; no '@' and not ending in {LOCK_SUFFIX}",
        )


def _sidecars(path: Path, given: dict[str, Path | None]) -> dict[str, Path]:
    """The card and baseline to upload: the given ones (which must exist), else those beside."""
    found = {}
    for kind, explicit in given.items():
        candidate = explicit or path.with_name(sidecar_name(path.name, kind))
        if explicit is not None and not explicit.is_file():
            raise RegistryError(f"{kind} file {explicit} not found", fix=f"give an existing {kind}")
        if candidate.is_file():
            found[kind] = candidate
    return found


def _read_card(card: Path | None) -> dict[str, Any]:
    if card is None:
        return {}
    try:
        doc = json.loads(card.read_text())
    except (OSError, ValueError) as exc:
        raise RegistryError(
            f"model card {card} is not readable JSON ({exc})",
            fix="pass the card written by `batchscore train`, or --card with a valid one",
        ) from None
    if not isinstance(doc, dict):
        raise RegistryError(f"model card {card} is not a JSON object", fix="pass a valid card")
    return doc


def _ensure_model(registry: Registry, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        registry.client.create_registered_model(name)
    except MlflowException as exc:
        if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
            raise


def _upload(
    registry: Registry, name: str, path: Path, sidecars: dict[str, Path]
) -> tuple[str, str]:
    """One MLflow run holding the files under `model/` with canonical names: (run id, source)."""
    client = registry.client
    experiment = client.get_experiment_by_name(registry.settings.experiment)
    if experiment is not None:
        experiment_id = experiment.experiment_id
    else:
        root = registry.endpoint.artifact_root
        location = root.as_uri() if root is not None else None
        experiment_id = client.create_experiment(
            registry.settings.experiment, artifact_location=location
        )
    run = client.create_run(experiment_id, tags={"mlflow.runName": f"register {name}"})
    with tempfile.TemporaryDirectory(prefix="batchscore-register-") as tmp:
        staged = Path(tmp) / "model"
        staged.mkdir()
        shutil.copyfile(path, staged / path.name)
        for kind, file in sidecars.items():
            shutil.copyfile(file, staged / sidecar_name(path.name, kind))
        client.log_artifacts(run.info.run_id, str(staged), artifact_path="model")
    client.set_terminated(run.info.run_id)
    return run.info.run_id, f"{run.info.artifact_uri}/model"


def list_versions(
    name: str, settings: RegistrySettings, root: Path, registry: Registry | None = None
) -> list[VersionInfo]:
    """Every version of `name`, oldest first, with the aliases each holds."""
    registry = registry or open_registry(settings, root)
    model = get_model(registry, name)
    held: dict[int, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        held.setdefault(int(version), []).append(alias)
    escaped = name.replace("'", "\\'")
    with translated(registry.endpoint, f"listing versions of {name}"):
        found = registry.client.search_model_versions(f"name = '{escaped}'")
    infos = [_info(v, tuple(sorted(held.get(int(v.version), [])))) for v in found]
    return sorted(infos, key=lambda v: v.version)


def get_model(registry: Registry, name: str) -> Any:
    """The registered model, or an error that lists the models the registry knows."""
    from mlflow.exceptions import MlflowException

    with translated(registry.endpoint, f"reading model {name}"):
        try:
            return registry.client.get_registered_model(name)
        except MlflowException as exc:
            if error_code(exc) != "RESOURCE_DOES_NOT_EXIST":
                raise
            known = sorted(
                m.name
                for m in registry.client.search_registered_models(max_results=200)
                if not m.name.endswith(LOCK_SUFFIX)
            )
    listed = ", ".join(known[:30]) if known else "none yet"
    raise RegistryError(
        f"no model named {name!r} in the registry at {registry.endpoint.shown} (known: {listed})",
        fix="check the name, or register it: batchscore model register PATH --name NAME",
    )


def get_version(registry: Registry, name: str, version: int) -> Any:
    """One version (never via an alias), or an error listing the versions there are."""
    from mlflow.exceptions import MlflowException

    with translated(registry.endpoint, f"reading version {version} of {name}"):
        try:
            return registry.client.get_model_version(name, str(version))
        except MlflowException as exc:
            if error_code(exc) not in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
                raise
    there = [str(v.version) for v in list_versions(name, registry.settings, Path("."), registry)]
    raise RegistryError(
        f"model {name!r} has no version {version} (versions: {', '.join(there) or 'none'})",
        where=registry.endpoint.shown,
        fix=f"pick one of them; `batchscore model list {name}` shows what each is",
    )


def _info(version: Any, aliases: tuple[str, ...]) -> VersionInfo:
    tags = version.tags or {}
    created = dt.datetime.fromtimestamp(version.creation_timestamp / 1000, dt.UTC)
    return VersionInfo(
        name=version.name,
        version=int(version.version),
        aliases=aliases or tuple(sorted(version.aliases or ())),
        sha256=tags.get(SHA_TAG),
        file=tags.get(FILE_TAG),
        sklearn_version=tags.get(SKLEARN_TAG),
        training_data_sha256=tags.get(TRAINING_TAG),
        card=tags.get(f"{TAG}card"),
        baseline=tags.get(f"{TAG}baseline"),
        created_at=created.isoformat(timespec="seconds").replace("+00:00", "Z"),
        description=version.description or None,
        run_id=version.run_id or None,
    )
