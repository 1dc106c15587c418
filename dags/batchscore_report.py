"""What a finished batchscore run tells its users: the summary `publish` returns (also the `extra`
of the Asset events `report` emits), the log lines that name the manifest and the quality report,
and the "Quality report" link the UI shows on those two tasks.

Imported by name from the dags folder like `batchscore_support.py`, and listed in `.airflowignore`
with it. Nothing heavy at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.definitions.xcom_arg import PlainXComArg
    from airflow.sdk.types import TaskInstanceKey

    from pipelines.run.finalize import PublishResult

log = logging.getLogger("batchscore.dag")


def publish_summary(done: PublishResult) -> dict[str, Any]:
    """What `publish` did, as JSON: status, where the manifest and the quality report are, the
    counts, the model. Logs the report's URI: the line to look for in the run's log.

    `batchscore_alerts.alert_published_run` reads `drift_status` and `performance_status` here
    too when monitoring adds them (absent: not flagged)."""
    summary = {
        "status": done.status,
        "newly_published": done.newly_published,
        "manifest_uri": done.manifest_uri,
        "report_uri": done.report_uri,  # None for a dry run: its report stays on local disk
        **done.manifest.model_dump(mode="json", include={"run_key", "content_sha256", "counts"}),
        # name and version: the alert (and a downstream DAG) says which model scored the run
        "model": done.manifest.model.model_dump(
            mode="json", include={"name", "version", "sha256", "registry"}
        ),
        "shards_reused": done.manifest.shards_reused,
        **_monitoring(done),
    }
    if summary["report_uri"]:
        log.info("quality report: %s", summary["report_uri"])
    return summary


def _monitoring(done: PublishResult) -> dict[str, Any]:
    """The drift status (ok | warn | fail | no_baseline), the flagged features, and the
    performance status (ok | fail: the estimated AUC fell past monitoring.performance.max_drop)."""
    drift = done.manifest.monitoring or {}
    estimated = done.manifest.estimated_performance or {}
    return {
        "drift_status": drift.get("status", "off"),
        "drift_flagged": (drift.get("decision") or {}).get("flagged", []),
        "performance_status": estimated.get("status", "off"),
        "estimated_auc": estimated.get("auc"),
    }


def log_run_summary(summary: Mapping[str, Any]) -> None:
    """The run's one summary line, then where its quality report is."""
    counts = summary.get("counts") or {}
    model = summary.get("model") or {}
    log.info(
        "batchscore run_key=%s status=%s rows_in=%s scored=%s quarantined=%s model=%s@%s "
        "drift=%s performance=%s shards_reused=%s manifest=%s",
        summary.get("run_key"),
        summary.get("status"),
        counts.get("rows_in"),
        counts.get("rows_scored"),
        counts.get("rows_quarantined"),
        model.get("name"),
        model.get("version"),
        summary.get("drift_status"),
        summary.get("performance_status"),
        summary.get("shards_reused", 0),
        summary.get("manifest_uri"),
    )
    if summary.get("report_uri"):
        log.info("quality report: %s", summary["report_uri"])


class QualityReportLink(BaseOperatorLink):
    """The run's quality report as a link on its task in the UI (task instance > "Quality report").

    When the task ends, Airflow stores what `get_link` returns in an XCom that the API server
    reads: here the `report_uri` of the task's own return value (none if it returned nothing).
    A browser opens s3:// or file:// links only through a handler; the link's address is the URI.
    """

    name = "Quality report"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key="return_value")
        return (value.get("report_uri") or "") if isinstance(value, dict) else ""


def link_quality_report(*steps: PlainXComArg) -> None:
    """Show the "Quality report" link on the tasks behind these TaskFlow results."""
    for step in steps:
        step.operator.operator_extra_links = (QualityReportLink(),)
