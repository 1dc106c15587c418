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
    counts. Logs the report's URI: the line to look for in the run's log."""
    summary = {
        "status": done.status,
        "newly_published": done.newly_published,
        "manifest_uri": done.manifest_uri,
        "report_uri": done.report_uri,  # None for a dry run: its report stays on local disk
        **done.manifest.model_dump(mode="json", include={"run_key", "content_sha256", "counts"}),
    }
    if summary["report_uri"]:
        log.info("quality report: %s", summary["report_uri"])
    return summary


def log_run_summary(summary: Mapping[str, Any]) -> None:
    """The run's one summary line, then where its quality report is."""
    counts = summary.get("counts") or {}
    log.info(
        "batchscore run_key=%s status=%s rows_in=%s scored=%s quarantined=%s manifest=%s",
        summary.get("run_key"),
        summary.get("status"),
        counts.get("rows_in"),
        counts.get("rows_scored"),
        counts.get("rows_quarantined"),
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
