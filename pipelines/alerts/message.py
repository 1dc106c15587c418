"""One alert message per run: what happened, where, what to do, and the link to the report.

Pure: the reasons (`decide`) and the run's coordinates in, an `Alert` out, as text (Slack,
Apprise) and as HTML (e-mail). When several reasons hold, one message lists them all under the
highest severity, so a person gets one message per run, not one per symptom.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pipelines.alerts.decide import Reason, Severity, highest

# A failed gate's error names its report in its fix: "... Report: s3://b/k/quality.html (local
# copy: /tmp/...)" or "... Report: /tmp/.../quality.html".
_REPORT = re.compile(r"Report: (\S+)")


@dataclass(frozen=True)
class RunPlace:
    """Where the run is: enough for a person to find it in Airflow and in the object store."""

    dag_id: str
    dag_run_id: str
    run_key: str | None = None
    task: str | None = None  # the failed task, e.g. "publish" or "score[2]"
    model: str | None = None  # "churn v3 (sha256 1a2b3c4d5e6f)"
    report_url: str | None = None  # the run's quality report (HTML)
    run_url: str | None = None  # the run (or its failed task) in the Airflow UI


@dataclass(frozen=True)
class Alert:
    """The message, ready for any channel. `as_dict` is its JSON form (logs, tests)."""

    severity: Severity
    title: str
    body_text: str
    body_html: str
    report_url: str | None
    run_key: str | None
    dag_run_id: str
    events: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "events": list(self.events)}


def build_alert(reasons: Sequence[Reason], place: RunPlace) -> Alert | None:
    """The run's one message, or None when no reason holds."""
    if not reasons:
        return None
    ordered = sorted(reasons, key=lambda r: r.severity != "critical")  # stable: critical first
    severity = highest(ordered)
    run = place.run_key or place.dag_run_id
    title = (
        f"[batchscore] {severity.upper()}: {place.dag_id} run {run}: "
        f"{'; '.join(r.short for r in ordered)}"
    )
    return Alert(
        severity=severity,
        title=title,
        body_text=_text(severity, ordered, place),
        body_html=_html(title, ordered, place),
        report_url=place.report_url,
        run_key=place.run_key,
        dag_run_id=place.dag_run_id,
        events=tuple(r.event for r in ordered),
    )


def report_in(error_text: str | None) -> str | None:
    """The report a failed gate's error names ("Report: <uri>"), if it names one."""
    match = _REPORT.search(error_text or "")
    return match[1].rstrip(".,;") if match else None


def model_label(model: Mapping[str, Any] | None) -> str | None:
    """A model reference ({name, version, sha256}) as people say it: "churn v3 (sha256 1a2b…)"
    for a registry version, "model fe5a87244f90" for a file whose version is its sha's prefix."""
    if not model or not model.get("name"):
        return None
    label, sha = str(model["name"]), str(model.get("sha256") or "")
    version = str(model.get("version") or "")
    if version:
        label += f" v{version}" if version.isdigit() else f" {version}"
    if sha and not (version and sha.startswith(version)):  # a demo version is the sha's prefix
        label += f" (sha256 {sha[:12]})"
    return label


def _where(place: RunPlace) -> list[tuple[str, str]]:
    rows = [
        ("DAG", place.dag_id),
        ("DAG run", place.dag_run_id),
        ("Task", place.task),
        ("Run key", place.run_key),
        ("Model", place.model),
    ]
    return [(name, value) for name, value in rows if value]


def _links(place: RunPlace) -> list[tuple[str, str]]:
    rows = [("Report", place.report_url), ("Airflow", place.run_url)]
    return [(name, value) for name, value in rows if value]


def _text(severity: Severity, reasons: Sequence[Reason], place: RunPlace) -> str:
    run = place.run_key or place.dag_run_id
    lines = [f"{severity.upper()}: batchscore run {run} needs attention.", "", "What happened:"]
    lines += [f"  [{r.severity}] {r.what}" for r in reasons]
    lines += ["", "Where:"] + [f"  {name}: {value}" for name, value in _where(place)]
    lines += ["", "What to do:"] + [f"  - {r.fix}" for r in reasons]
    links = _links(place)
    if not place.report_url:
        links.insert(0, ("Report", "none was written (the run stopped before its report)"))
    lines += [""] + [f"{name}: {value}" for name, value in links]
    return "\n".join(lines) + "\n"


def _html(title: str, reasons: Sequence[Reason], place: RunPlace) -> str:
    e = html.escape
    happened = "".join(f"<li><b>{e(r.severity)}</b>: {e(r.what)}</li>" for r in reasons)
    where = "".join(f"<tr><th>{e(n)}</th><td>{e(v)}</td></tr>" for n, v in _where(place))
    todo = "".join(f"<li>{e(r.fix)}</li>" for r in reasons)
    links = "".join(f'<p>{e(n)}: <a href="{e(v)}">{e(v)}</a></p>' for n, v in _links(place))
    if not place.report_url:
        links = "<p>Report: none was written (the run stopped before its report)</p>" + links
    return (
        f"<html><body><h2>{e(title)}</h2>"
        f"<h3>What happened</h3><ul>{happened}</ul>"
        f"<h3>Where</h3><table>{where}</table>"
        f"<h3>What to do</h3><ul>{todo}</ul>{links}</body></html>"
    )
