#!/usr/bin/env python
"""Screenshot the batchscore trigger form, as a user sees it, into docs/img/trigger-form.png.

Starts a throwaway `airflow standalone` serving dags/ (or uses a running one with --url and
--token), opens the DAG in headless Chromium over the DevTools protocol, clicks "Trigger" and
captures the dialog. Everything it starts is stopped on exit, on success or failure.

    .venv/bin/python scripts/screenshot_trigger_form.py [--out docs/img/trigger-form.png]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.airflow_harness import AirflowStandalone, free_port  # noqa: E402

DAG_ID = "batchscore"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--mute-audio",
]


class DevTools:
    """The few Chrome DevTools Protocol calls this script needs, over one page's websocket."""

    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self._conn = connect(ws_url, max_size=64 * 1024 * 1024, open_timeout=30)
        self.ws = self._conn.__enter__()
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"JS error: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.5)
        raise TimeoutError(f"timed out waiting for {what}")

    def close(self) -> None:
        self._conn.__exit__(None, None, None)


@contextlib.contextmanager
def chromium(width: int, height: int) -> Iterator[DevTools]:
    """Headless Chromium with a fresh profile; yields a DevTools session on its first page."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if not binary:
        raise SystemExit("chromium not found: apt-get install -y chromium")
    profile = tempfile.mkdtemp(prefix="batchscore-chromium-")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--remote-debugging-port={port}",
            "--remote-allow-origins=*",
            f"--window-size={width},{height}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    devtools = None
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                    pages = [t for t in json.load(r) if t.get("type") == "page"]
                if pages:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.3)
        devtools = DevTools(pages[0]["webSocketDebuggerUrl"])
        devtools.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        yield devtools
    finally:
        if devtools is not None:
            with contextlib.suppress(Exception):
                devtools.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


FIND_TRIGGER = """
(() => {
  const buttons = [...document.querySelectorAll('button')];
  const b = buttons.find(b => b.textContent.trim() === 'Trigger');
  if (!b) return false;
  b.click();
  return true;
})()
"""

DIALOG = """document.querySelector('[data-scope="dialog"][data-part="content"]')"""

FORM_READY = f"""
(() => {{
  const dialog = {DIALOG};
  return !!dialog && dialog.innerText.includes(%s);
}})()
"""

# Open the form's param sections (not "Advanced Options", the raw JSON editor), so the
# screenshot shows every field with its description.
EXPAND_SECTIONS = f"""
(() => {{
  const wanted = %s;
  let opened = 0;
  for (const b of {DIALOG}.querySelectorAll('button[aria-expanded="false"]')) {{
    if (wanted.includes(b.innerText.trim())) {{ b.click(); opened++; }}
  }}
  return opened;
}})()
"""

DIALOG_BOX = f"""
(() => {{
  const d = {DIALOG};
  const r = d.getBoundingClientRect();
  return {{x: r.x, y: r.y, width: r.width, height: Math.max(d.scrollHeight, r.height)}};
}})()
"""


def capture(base_url: str, token: str, out: Path, width: int = 1280, height: int = 2400) -> None:
    sections = ["Run Parameters"]  # the form's default section: our params have no section
    with chromium(width, height) as page:
        page.call("Network.enable")
        page.call("Network.setCookie", name="_token", value=token, url=base_url, path="/")
        page.call("Page.enable")
        page.call("Page.navigate", url=f"{base_url}/dags/{DAG_ID}")
        page.wait_for(FIND_TRIGGER, "the Trigger button")
        page.wait_for(FORM_READY % json.dumps(sections[-1]), "the trigger form")
        page.js(EXPAND_SECTIONS % json.dumps(sections))
        page.wait_for(FORM_READY % json.dumps("Quarantine threshold"), "the expanded sections")
        time.sleep(1.5)  # let the dialog's animations settle
        box = page.js(DIALOG_BOX)
        shot = page.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={**box, "scale": 1},
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(shot["data"]))
    print(f"wrote {out} ({out.stat().st_size:,} bytes, {box['width']:.0f}x{box['height']:.0f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "trigger-form.png")
    parser.add_argument("--url", help="a running Airflow (default: start a throwaway one)")
    parser.add_argument("--token", help="JWT for --url (POST /auth/token)")
    args = parser.parse_args(argv)
    if args.url:
        if not args.token:
            parser.error("--url needs --token")
        capture(args.url.rstrip("/"), args.token, args.out)
        return 0
    with tempfile.TemporaryDirectory(prefix="batchscore-screenshot-") as home:
        airflow = AirflowStandalone(REPO / "dags", Path(home))
        try:
            airflow.start()
            airflow.wait_for_dag(DAG_ID)
            capture(airflow.base_url, airflow.token(), args.out)
        finally:
            airflow.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
