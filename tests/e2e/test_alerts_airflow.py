"""Alerts through Airflow's own notifiers, with the DAG running in the real Airflow.

One `airflow standalone` for the module; the channels are real servers on loopback: an `aiosmtpd`
SMTP server (SmtpNotifier) and an HTTP server standing in for the Slack webhook
(SlackWebhookNotifier). The connections are `AIRFLOW_CONN_*` variables, as a deployment's secrets
backend would give them; params.yaml holds only the connection ids and the recipients.

- the scheduled run created on unpause has a logical date, so `alerts.deadline` (02:01 UTC, one
  minute after the 02:00 cron) is already past: Airflow's Deadline Alert sends one message per
  channel from the triggerer;
- a clean manual run sends nothing (manual runs have no logical date, hence no deadline);
- a run over the quarantine warning level (2% of rows, warning at 1%, failing at 5%) publishes and
  sends one warning per channel, from the `report` task;
- a run whose quarantined share passes the failing threshold fails in `publish`, and the DAG's
  failure callback (in the dag-processor) sends one critical message per channel naming the run,
  the task, the error and the report.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.storage.hashing import sha256_file
from tests.airflow_harness import AirflowStandalone, build_project, free_port
from tests.paths import DAGS

pytestmark = [pytest.mark.airflow_e2e, pytest.mark.timeout(420)]

DAG_ID = "batchscore"
PRELOAD = (
    "airflow,pipelines.run.pipeline,pipelines.quality.gate,pipelines.quality.verdict,"
    "skops.io,great_expectations"
)
TO, FROM = "oncall@example.com", "batchscore@example.com"
WEBHOOK_TOKEN = "T0000/B0000/alerts-e2e-webhook-token"  # the secret: in the connection only
ROWS, BAD_EVERY = 3_000, 50  # 2% of rows quarantined (age below the suite's minimum)


@dataclass
class Inbox:
    """What the SMTP server and the webhook received, in arrival order."""

    mails: list[dict[str, Any]] = field(default_factory=list)
    posts: list[dict[str, Any]] = field(default_factory=list)

    def mails_for(self, run_id: str) -> list[dict[str, Any]]:
        return [m for m in list(self.mails) if f"DAG run: {run_id}" in m["text"]]

    def posts_for(self, run_id: str) -> list[dict[str, Any]]:
        return [p for p in list(self.posts) if f"DAG run: {run_id}" in p["text"]]


class _Mailbox:
    """aiosmtpd handler: keep every message, parsed."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        html = next(p for p in msg.walk() if p.get_content_type() == "text/html").get_content()
        self.inbox.mails.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "subject": str(msg["Subject"]),
                "html": html,
                # the HTML as a reader sees it, close enough to search for "DAG run: <id>"
                "text": _visible(html),
            }
        )
        return "250 OK"


def _visible(html: str) -> str:
    """The HTML as a reader sees it, roughly: blocks on their own lines, table cells as
    "name: value", so it can be searched like the text body."""
    import html as html_lib
    import re

    text = re.sub(r"</th>\s*<td>", ": ", html)
    text = re.sub(r"</?(h\d|li|p|tr|ul|table|pre|br)\b[^>]*>", "\n", text)
    return html_lib.unescape(re.sub(r"<[^>]+>", "", text))


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, int, int]]:
    """A real SMTP server and a webhook receiver on loopback: (inbox, smtp port, webhook port)."""
    from aiosmtpd.controller import Controller

    box = Inbox()
    smtp = Controller(_Mailbox(box), hostname="127.0.0.1", port=free_port())
    smtp.start()

    class Webhook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            payload = json.loads(body or b"{}")
            box.posts.append({"path": self.path, "text": payload.get("text", ""), **payload})
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    webhook = ThreadingHTTPServer(("127.0.0.1", free_port()), Webhook)
    thread = threading.Thread(target=webhook.serve_forever, daemon=True)
    thread.start()
    try:
        yield box, smtp.port, webhook.server_address[1]
    finally:
        webhook.shutdown()
        smtp.stop()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One shard: the fan-out is covered elsewhere, and a run is then ~20 s on 2 cores.
    path = build_project(tmp_path_factory.mktemp("alerts-project"), rows=ROWS, shard_rows=ROWS)
    params = yaml.safe_load(path.read_text())
    params["model"]["sha256"] = sha256_file(Path(params["model"]["path"]))  # pinned, as in prod
    params["validation"]["max_quarantine_fraction"] = 0.05
    params["schedule"]["cron"] = "0 2 * * *"
    params["alerts"] = {
        "enabled": True,
        "smtp": {"to": [TO], "from": FROM},  # conn id: smtp_default
        "slack": {},  # conn id: slack_webhook_default
        "quarantine_warn_fraction": 0.01,
        "deadline": "02:01",  # one minute after the cron's 02:00
    }
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _connections(smtp_port: int, webhook_port: int) -> dict[str, str]:
    smtp = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": smtp_port,
        "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 10, "retry_limit": 0},
    }
    slack = {
        "conn_type": "slackwebhook",
        "host": f"http://127.0.0.1:{webhook_port}/services",
        "password": WEBHOOK_TOKEN,
    }
    return {
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(smtp),
        "AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT": json.dumps(slack),
    }


@pytest.fixture(scope="module")
def airflow(
    project: Path, inbox: tuple[Inbox, int, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowStandalone]:
    box, smtp_port, webhook_port = inbox
    af = AirflowStandalone(
        DAGS,
        tmp_path_factory.mktemp("airflow-home"),
        env={
            "BATCHSCORE_PARAMS": str(project),
            **_connections(smtp_port, webhook_port),
            "AIRFLOW__CORE__MP_START_METHOD": "forkserver",
            "AIRFLOW__CORE__MP_FORKSERVER_PRELOAD": PRELOAD,
        },
    )
    try:
        af.start()
        af.wait_for_dag(DAG_ID)
        af.unpause(DAG_ID)  # catchup=False: one scheduled run, for the latest 02:00
        yield af
    finally:
        af.stop(grace=5)


def _write_input(project: Path, bad_every: int | None) -> None:
    """The input file, clean or with every `bad_every`-th row's age out of the suite's range."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.data.demo import write_dataset

    path = Path(yaml.safe_load(project.read_text())["data"]["path"])
    write_dataset(path, ROWS, seed=2, row_group_rows=1_000, with_label=False)
    if bad_every:
        table = pq.read_table(path)
        age = table.column("age").to_pylist()
        age = [10.0 if i % bad_every == 0 else a for i, a in enumerate(age)]
        table = table.set_column(table.schema.get_field_index("age"), "age", pa.array(age))
        pq.write_table(table, path, row_group_size=1_000, compression="zstd")


def _wait_for(what: str, found: Callable[[], Any], timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := found()):
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(0.5)
    return value


def _run(af: AirflowStandalone, **conf: Any) -> tuple[str, dict[str, Any]]:
    run = af.trigger(DAG_ID, conf=conf)
    final = af.wait_for_run(DAG_ID, run["dag_run_id"], timeout=180)
    return run["dag_run_id"], final


def test_scheduled_run_past_its_deadline_alerts_from_the_triggerer(
    airflow: AirflowStandalone, inbox: tuple[Inbox, int, int]
) -> None:
    box = inbox[0]
    now = dt.datetime.now(dt.UTC)
    if dt.time(2, 0) <= now.time() < dt.time(2, 3):
        pytest.skip("within the deadline minute: the scheduled run may beat it")
    path = f"dags/{DAG_ID}/dagRuns"
    runs = _wait_for(
        "the scheduled run", lambda: airflow.api("GET", path, run_type="scheduled")["dag_runs"], 60
    )
    run_id = runs[0]["dag_run_id"]
    final = airflow.wait_for_run(DAG_ID, run_id, timeout=180)
    assert final["state"] == "success", airflow.task_states(DAG_ID, run_id)
    (mail,) = _wait_for("the deadline e-mail", lambda: box.mails_for(run_id))
    (post,) = _wait_for("the deadline webhook post", lambda: box.posts_for(run_id))
    assert mail["subject"] == (
        f"[batchscore] WARNING: {DAG_ID} run {run_id}: not finished by its deadline (02:01 UTC)"
    )
    assert (mail["from"], mail["to"]) == (FROM, [TO])
    for text in (mail["text"], post["text"]):
        assert "not finished by its deadline (02:01 UTC)" in text
        assert f"Logical date: {final['logical_date'][:10]}" in text
        assert "What to do: open the run in Airflow" in text
    assert post["path"] == f"/services/{WEBHOOK_TOKEN}"


def test_clean_run_sends_nothing(airflow: AirflowStandalone, project: Path, inbox: Any) -> None:
    box = inbox[0]
    _write_input(project, bad_every=None)
    run_id, final = _run(airflow, run_key="alerts-clean")
    assert final["state"] == "success", airflow.task_states(DAG_ID, run_id)
    time.sleep(3)  # a stray failure callback would be well on its way by now
    assert box.mails_for(run_id) == [] and box.posts_for(run_id) == []
    assert "batchscore alert" not in airflow.task_log(DAG_ID, run_id, "report")


def test_run_over_the_quarantine_warning_level_publishes_and_sends_one_warning(
    airflow: AirflowStandalone, project: Path, inbox: Any
) -> None:
    box = inbox[0]
    _write_input(project, bad_every=BAD_EVERY)
    run_id, final = _run(airflow, run_key="alerts-warn")
    assert final["state"] == "success", airflow.task_states(DAG_ID, run_id)
    manifests = list((project.parent / "out").glob("*/alerts-warn/manifest.json"))
    (manifest,) = [json.loads(p.read_text()) for p in manifests]
    assert manifest["counts"]["rows_quarantined"] == ROWS // BAD_EVERY  # 2%
    # Sent by the report task before it ended: already there, exactly once per channel.
    (mail,) = box.mails_for(run_id)
    (post,) = box.posts_for(run_id)
    assert mail["subject"] == (
        f"[batchscore] WARNING: {DAG_ID} run alerts-warn: 2.00% of rows quarantined"
    )
    report = next(p["key"] for p in manifest["parts"] if p["key"].endswith("quality.html"))
    for text in (mail["text"], post["text"]):
        assert "60 of 3,000 rows quarantined (2.00%)" in text
        assert "validation.max_quarantine_fraction=0.05" in text
        assert "Run key: alerts-warn" in text and "What to do" in text
        assert f"Report: file://{project.parent / 'out'}/{report}" in text
        assert f"/dags/{DAG_ID}/runs/" in text  # the run in the Airflow UI
    log = airflow.task_log(DAG_ID, run_id, "report")
    assert "batchscore alert (warning) sent via smtp, slack" in log
    assert WEBHOOK_TOKEN not in log


def test_failing_run_sends_one_critical_message_naming_the_run_reason_and_report(
    airflow: AirflowStandalone, project: Path, inbox: Any
) -> None:
    box = inbox[0]
    _write_input(project, bad_every=BAD_EVERY)  # 2% quarantined, over a 1.5% threshold
    run_id, final = _run(airflow, run_key="alerts-fail", max_quarantine_fraction=0.015)
    states = airflow.task_states(DAG_ID, run_id)
    assert final["state"] == "failed" and states["publish"] == "failed", states
    # The DAG's failure callback runs in the dag-processor, after the run is marked failed.
    (mail,) = _wait_for("the failure e-mail", lambda: box.mails_for(run_id))
    (post,) = _wait_for("the failure webhook post", lambda: box.posts_for(run_id))
    time.sleep(3)  # one message per run, not one per task or per try
    print(f"\n--- the failure alert (webhook text) ---\n{post['text']}")
    assert len(box.mails_for(run_id)) == 1 and len(box.posts_for(run_id)) == 1
    assert mail["subject"] == (
        f"[batchscore] CRITICAL: {DAG_ID} run alerts-fail: failed in publish (QualityGateError)"
    )
    for text in (mail["text"], post["text"]):
        assert "the run failed in task publish: QualityGateError:" in text
        assert "quarantined" in text and "Task: publish" in text
        assert "Run key: alerts-fail" in text and "Model: " in text
        (report,) = [line for line in text.splitlines() if line.startswith("Report: ")]
        uri = report.removeprefix("Report: ").strip()
        assert uri.startswith("file://") and uri.endswith("quality.html"), report
        assert Path(uri.removeprefix("file://")).read_bytes().startswith(b"<!")
    assert list((project.parent / "out").glob("*/alerts-fail/manifest.json")) == []
