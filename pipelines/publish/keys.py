"""Every object key a run reads or writes, relative to `output.uri`: the one place they are built.

    <model>/<run key>/manifest.json                              the commit marker
    <model>/<run key>/attempts/<attempt>/scores/part-00000.parquet  parts, immutable per attempt
                                    .../quarantine/part-00000.parquet
                                    .../badlines/part-00000.parquet
                                    .../ids/<gate>-00000.npy     sorted ID hashes (until commit)
                                    .../shards/shard-00000.json  a finished shard's record (resume)
                                    .../reports/quality.html, quality.json
    <model>/<run key>/failed/<attempt>/quality.html, ...         a failed attempt's report
    <model>/<run key>/labels/deliveries/<sha256>.parquet         one label delivery, joined
                                       .../<sha256>.json        its counts (its commit marker)
    <model>/<run key>/labels/evaluation.json, evaluation.html    realized metrics, all deliveries

Readers, clean-up and the commit all derive their keys from here, so the layout changes in one
place (SECURITY.md's bucket policy documents it).
"""

from __future__ import annotations

MANIFEST_NAME = "manifest.json"


def run_prefix(model_name: str, run_key: str) -> str:
    return f"{model_name}/{run_key}/"


def manifest_key(model_name: str, run_key: str) -> str:
    return run_prefix(model_name, run_key) + MANIFEST_NAME


def manifest_run(key: str) -> tuple[str, str] | None:
    """(model, run key) if `key` is a run's manifest, else None: how published runs are listed."""
    parts = key.split("/")
    if len(parts) == 3 and parts[2] == MANIFEST_NAME:
        return parts[0], parts[1]
    return None


def attempts_prefix(model_name: str, run_key: str) -> str:
    """Where every attempt of a run stages its parts."""
    return f"{run_prefix(model_name, run_key)}attempts/"


def staging_prefix(model_name: str, run_key: str, attempt_id: str) -> str:
    return f"{attempts_prefix(model_name, run_key)}{attempt_id}/"


def part_key(staging: str, kind: str, shard: int) -> str:
    """One shard's Parquet part of `kind` (scores | quarantine | badlines)."""
    return f"{staging}{kind}/part-{shard:05d}.parquet"


def ids_key(staging: str, gate_name: str, shard: int) -> str:
    """One shard's sorted ID hashes for a gate, read by the run-level uniqueness check."""
    return f"{staging}ids/{gate_name}-{shard:05d}.npy"


def audit_key(staging: str, gate_name: str, shard: int) -> str:
    """One shard's audit sample for a gate, read by the run's one GX audit pass."""
    return f"{staging}audit/{gate_name}-{shard:05d}.parquet"


def shard_record_key(staging: str, shard: int) -> str:
    """A finished shard's record (its result and parts' hashes): what a resumed run reuses."""
    return f"{staging}shards/shard-{shard:05d}.json"


def attempt_of(key: str) -> str | None:
    """The attempt id in a key under `attempts/`, else None."""
    parts = key.split("/")
    return parts[3] if len(parts) > 4 and parts[2] == "attempts" else None


def report_key(staging: str, name: str) -> str:
    """A report file staged with the run's parts, published with them."""
    return f"{staging}reports/{name}"


def failed_report_key(model_name: str, run_key: str, attempt_id: str, name: str) -> str:
    """Where a failed attempt's quality report goes: beside the run, never read as output."""
    return f"{run_prefix(model_name, run_key)}failed/{attempt_id}/{name}"


def labels_prefix(model_name: str, run_key: str) -> str:
    """Everything labels add to a published run (the run's own objects are never modified)."""
    return f"{run_prefix(model_name, run_key)}labels/"


def deliveries_prefix(model_name: str, run_key: str) -> str:
    return f"{labels_prefix(model_name, run_key)}deliveries/"


def delivery_key(model_name: str, run_key: str, digest: str, suffix: str) -> str:
    """A delivery's joined rows (`parquet`) or its counts (`json`), named by its content hash."""
    return f"{deliveries_prefix(model_name, run_key)}{digest}.{suffix}"


def delivery_of(key: str) -> str | None:
    """The content hash in a delivery's counts key (`.../deliveries/<sha256>.json`), else None."""
    parts = key.split("/")
    if len(parts) == 5 and parts[2:4] == ["labels", "deliveries"] and parts[4].endswith(".json"):
        return parts[4].removesuffix(".json")
    return None


def evaluation_key(model_name: str, run_key: str, name: str) -> str:
    """The run's evaluation from all its deliveries: `evaluation.json` or `evaluation.html`."""
    return f"{labels_prefix(model_name, run_key)}{name}"
