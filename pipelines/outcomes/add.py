"""`labels add` as one function: join a label file to published runs, store it, re-evaluate.

Per run: the delivery is stored (or found already there), then the run's evaluation is
recomputed from all its deliveries and written beside it. A file whose IDs match no chosen run
is an error that says so, with examples of both sides' IDs: nothing is stored.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipelines.errors import InputDataError
from pipelines.outcomes.deliveries import store_delivery
from pipelines.outcomes.evaluate import evaluate_run, write_evaluation
from pipelines.outcomes.join import Joined, join_delivery
from pipelines.outcomes.published import run_scores, select_runs
from pipelines.outcomes.read import LabelFile, open_labels
from pipelines.outcomes.settings import LabelsSettings
from pipelines.outcomes.store import Keys, Store

HEADLINE = ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "precision", "recall", "ece")


def add_labels(
    store: Store,
    keys: Keys,
    labels_path: Path,
    settings: LabelsSettings,
    *,
    model: str | None = None,
    run_key: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    segments: Sequence[str] = (),
) -> dict[str, Any]:
    """Add one label delivery; return what the file held and, per run, what it changed.

    `store` is an `ObjectStore`, `keys` the module `pipelines.publish.keys` (`outcomes.store`).
    """
    manifests = select_runs(store, keys, model, run_key, date_from, date_to)
    runs = [run_scores(m) for m in manifests]
    id_column = settings.id_column or _published_id_column(runs)
    labels = open_labels(labels_path, id_column, settings.label_column, segments)
    with tempfile.TemporaryDirectory(prefix="batchscore-labels-") as tmp:
        joined = join_delivery(store, runs, labels, settings, Path(tmp))
        _check_matched(joined, labels, runs)
        stored = [store_delivery(store, keys, j, joined, labels) for j in joined.runs]
    results = []
    for run, marker in zip(runs, stored, strict=True):
        evaluation = evaluate_run(store, keys, run, settings, tuple(segments))
        where = write_evaluation(store, keys, evaluation) if evaluation["deliveries"] else {}
        results.append(_run_summary(run.ref, marker, evaluation, where))
    return {
        "file": str(labels_path),
        "counts": dict(sorted(joined.counts.items())),
        "runs": results,
    }


def _published_id_column(runs: Sequence[Any]) -> str:
    names = {r.id_column for r in runs if r.id_column}
    if len(names) == 1:
        return names.pop()
    raise InputDataError(
        "cannot tell which column of the label file holds the IDs"
        + (f": the chosen runs publish them as {sorted(names)}" if names else ""),
        fix="name it with --id-column (or labels.id_column)",
    )


def _check_matched(joined: Joined, labels: LabelFile, runs: Sequence[Any]) -> None:
    """Refuse a delivery none of whose IDs the chosen runs scored: a wrong column or file."""
    if any(j.counts["matched_pairs"] for j in joined.runs):
        return
    read = joined.counts["rows_read"]
    refs = ", ".join(r.ref for r in runs)
    if not read:
        raise InputDataError(f"label file {labels.path} holds no rows", fix="deliver labels")
    raise InputDataError(
        f"none of the {read:,} label rows' IDs (column {labels.id_column!r}, e.g. "
        f"{joined.sample_label_ids}) is an ID scored in {refs} (e.g. "
        f"{joined.sample_published_ids}); IDs are compared exactly as published",
        where=str(labels.path),
        fix="name the label file's ID column with --id-column, or choose the runs these labels "
        "are for with --run-key or --from/--to",
    )


def _run_summary(
    ref: str, marker: dict[str, Any], ev: dict[str, Any], where: dict[str, str]
) -> dict[str, Any]:
    metrics = ev["metrics"]
    return {
        "run": ref,
        "delivery": marker["sha256"],
        "status": marker["status"],
        "rows_joined": marker["rows"],
        "counts": marker["run_counts"],
        "evaluation": {
            "deliveries": len(ev["deliveries"]),
            "labelled": ev["labelled"],
            "rows_scored": ev["rows_scored"],
            "coverage": ev["coverage"],
            "conflicting_ids": ev["conflicting_ids"],
            **{k: metrics.get(k) for k in HEADLINE if k in metrics},
            "estimated": ev.get("estimated"),
            **({"challenger": _challenger_summary(ev["challenger"])} if "challenger" in ev else {}),
            **({"json": where["json"], "html": where["html"]} if where else {}),
        },
    }


def _challenger_summary(block: dict[str, Any]) -> dict[str, Any]:
    """The challenger's headline metrics, as the champion's are given, with its row counts."""
    metrics, model = block["metrics"], block.get("model") or {}
    return {
        "model": {k: model.get(k) for k in ("name", "version", "sha256")},
        "rows": block["rows"],
        "unscored": block["unscored"],
        **{k: metrics.get(k) for k in HEADLINE if k in metrics},
    }
