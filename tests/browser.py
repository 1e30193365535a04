"""Headless Chromium driven over the DevTools protocol: open a page, collect console errors,
uncaught exceptions and failed loads, and evaluate JavaScript in it. Chromium is started with a
fresh profile and no background networking, and stopped by its pid."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from typing import Any

import websocket

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "--window-size=1400,1000",
]


class Browser:
    def __init__(self, timeout: float = 60) -> None:
        assert CHROMIUM, "chromium is not installed (Debian package chromium; ./setup.sh)"
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="lh-chromium-")
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.port = self._port()
        self.ws: websocket.WebSocket | None = None
        self.seq = 0
        self.events: list[dict[str, Any]] = []

    def _port(self) -> int:
        """Chromium writes the port it chose to DevToolsActivePort in the profile."""
        f = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            try:
                with open(f) as fh:
                    first = fh.readline().strip()
                if first.isdigit():
                    return int(first)
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("chromium did not open its DevTools port")

    def _page_ws(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10) as r:
            targets = json.load(r)
        return next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        if self.ws is None:
            self.ws = websocket.create_connection(self._page_ws(), timeout=self.timeout)
        self.seq += 1
        me = self.seq
        self.ws.send(json.dumps({"id": me, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == me:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def open(self, url: str) -> None:
        """Navigate and wait for the load event."""
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.events.clear()
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + self.timeout
        while not any(e["method"] == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not load")
            assert self.ws is not None
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)
        self.eval("1")  # let console messages of the load arrive

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads seen since the last open."""
        out = []
        for e in self.events:
            m, p = e["method"], e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(
                    "console: " + " ".join(str(a.get("value", a)) for a in p.get("args", []))
                )
            elif m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append("exception: " + str(d.get("exception", {}).get("description") or d))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append("log: " + str(p["entry"].get("text")))
        return out

    def eval(self, expr: str) -> Any:
        got = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        if "exceptionDetails" in got:
            raise RuntimeError(f"{expr[:60]}: {got['exceptionDetails']}")
        return got.get("result", {}).get("value")

    def visible_text(self, selector: str) -> str | None:
        """The element's text if it is rendered with a box on the first screen, else None."""
        sel = json.dumps(selector)
        return self.eval(
            f"(() => {{ const e = document.querySelector({sel}); if (!e) return null;"
            " const r = e.getBoundingClientRect(); const s = getComputedStyle(e);"
            " if (r.width <= 0 || r.height <= 0 || s.visibility !== 'visible'"
            " || s.display === 'none' || e.offsetParent === null) return null;"
            " return e.innerText; })()"
        )

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def top(b: Browser, selector: str) -> float | None:
    """Where the element starts, in px from the top of the page (None: absent)."""
    sel = json.dumps(selector)
    return b.eval(
        f"(() => {{ const e = document.querySelector({sel});"
        " return e ? e.getBoundingClientRect().top + window.scrollY : null; })()"
    )
