#!/usr/bin/env python
"""Screenshot the batchscore trigger form, as a user sees it, into docs/img/trigger-form.png.

Starts a throwaway `airflow standalone` serving dags/ (or uses a running one with --url and
--token), opens the DAG in headless Chromium over the DevTools protocol, clicks "Trigger" and
captures the dialog with each section of the form open (the form opens one at a time: the picture
stacks them). Everything it starts is stopped on exit, on success or failure. `form_facts` reads
the same form for tests/e2e/test_airflow_e2e.py: its sections, fields and required marks.

    .venv/bin/python scripts/screenshot_trigger_form.py [--out docs/img/trigger-form.png]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
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

# The form's accordion items: each section of params, then "Advanced Options" (the raw JSON).
ITEMS = f"""
[...{DIALOG}.querySelectorAll('[data-scope="accordion"][data-part="item"]')].map(item => {{
  const trigger = item.querySelector('[data-part="item-trigger"]');
  const r = item.getBoundingClientRect(), t = trigger.getBoundingClientRect();
  return {{
    name: trigger.innerText.trim(),
    open: trigger.getAttribute('aria-expanded') === 'true',
    box: {{x: r.x, y: r.y, width: r.width, height: r.height}},
    click: {{x: t.x + t.width / 2, y: t.y + t.height / 2}},
    fields: [...item.querySelectorAll('[data-scope="field"][data-part="root"]')].map(f => ({{
      label: f.querySelector('[data-part="label"]')?.innerText.trim(),
      required: !!f.querySelector('[data-part="required-indicator"]'),
      input: f.querySelector('input, textarea')?.type || null,
    }})),
  }};
}})
"""

DIALOG_BOX = f"""
(() => {{
  const d = {DIALOG};
  const r = d.getBoundingClientRect();
  return {{x: r.x, y: r.y, width: r.width, height: Math.max(d.scrollHeight, r.height)}};
}})()
"""


def open_form(page: DevTools, base_url: str, token: str) -> list[dict[str, Any]]:
    """Log in with `token`, open the DAG's Trigger dialog; its accordion items as ITEMS has them."""
    page.call("Network.enable")
    page.call("Network.setCookie", name="_token", value=token, url=base_url, path="/")
    page.call("Page.enable")
    page.call("Page.navigate", url=f"{base_url}/dags/{DAG_ID}")
    page.wait_for(FIND_TRIGGER, "the Trigger button")
    page.wait_for(FORM_READY % json.dumps("Advanced Options"), "the trigger form")
    time.sleep(1.0)  # the dialog's opening animation
    return page.js(ITEMS)


def open_section(page: DevTools, name: str) -> list[dict[str, Any]]:
    """Click a section's header as a user does (a real mouse click: the accordion ignores a
    scripted `click()`); the form opens one section at a time. Returns ITEMS afterwards."""
    (item,) = [i for i in page.js(ITEMS) if i["name"] == name]
    if not item["open"]:
        for kind in ("mousePressed", "mouseReleased"):
            page.call(
                "Input.dispatchMouseEvent", type=kind, button="left", clickCount=1, **item["click"]
            )
        page.wait_for(
            f"({ITEMS}).some(i => i.name === {json.dumps(name)} && i.open)", f"section {name}"
        )
        time.sleep(0.8)  # the opening animation: its height grows to the content's
    return page.js(ITEMS)


def form_facts(base_url: str, token: str) -> dict[str, Any]:
    """What the trigger form shows, section by section, opening each in turn: for a test.

    `sections` maps each section (not "Advanced Options") to its fields' labels; `required` is
    the labels the form marks required (the red asterisk); `switches` the checkbox-like fields.
    """
    with chromium(1280, 2400) as page:
        names = [i["name"] for i in open_form(page, base_url, token)]
        sections: dict[str, list[str]] = {}
        required, switches = [], []
        for name in names[:-1]:  # the last is Advanced Options
            (item,) = [i for i in open_section(page, name) if i["name"] == name]
            sections[name] = [f["label"] for f in item["fields"]]
            required += [f["label"] for f in item["fields"] if f["required"]]
            switches += [f["label"] for f in item["fields"] if f["input"] == "checkbox"]
    return {"items": names, "sections": sections, "required": required, "switches": switches}


def capture(base_url: str, token: str, out: Path, width: int = 1280, height: int = 2400) -> None:
    """The dialog with every section open, as one picture: the form opens one section at a time,
    so each is shot open in turn and the pieces are stacked (top, each open section, the rest)."""
    from PIL import Image

    pieces = []
    with chromium(width, height) as page:
        items = open_form(page, base_url, token)
        sections = [i["name"] for i in items[:-1]]
        for n, name in enumerate(sections):
            items = open_section(page, name)
            box = page.js(DIALOG_BOX)
            shot = Image.open(io.BytesIO(_shot(page, box)))
            top = int(items[n]["box"]["y"] - box["y"])
            end = int(items[n]["box"]["y"] + items[n]["box"]["height"] - box["y"])
            if n == 0:
                pieces.append(shot.crop((0, 0, shot.width, top)))  # title, run type, dates
            pieces.append(shot.crop((0, top, shot.width, end)))
            if n == len(sections) - 1:
                pieces.append(shot.crop((0, end, shot.width, shot.height)))  # the rest, Trigger
    image = Image.new("RGB", (pieces[0].width, sum(p.height for p in pieces)), "white")
    y = 0
    for piece in pieces:
        image.paste(piece, (0, y))
        y += piece.height
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size:,} bytes, {image.width}x{image.height}): {sections}")


def _shot(page: DevTools, box: dict[str, float]) -> bytes:
    shot = page.call(
        "Page.captureScreenshot", format="png", captureBeyondViewport=True, clip={**box, "scale": 1}
    )
    return base64.b64decode(shot["data"])


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
