"""Headless Chromium driven over the DevTools protocol (a websocket), for tests that click through pages.

Chromium runs with every host but 127.0.0.1 unresolvable and a dead proxy for anything else, as the dashboard's
other browser tests do. Every wait is on the page's own state (an expression turning true), with a generous bound:
Chromium on a loaded two-core machine is slow, not wrong.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import websocket

WAIT_SECONDS = 120.0  # generous: a loaded machine renders slowly
# Headless, and offline but for 127.0.0.1: every other host unresolvable, a dead proxy for anything else
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",
)


class Browser:
    """One Chromium page. `open(url)`, `click(selector)`, `wait_for(expression)`, `value(expression)`."""

    def __init__(self, chromium: str, width: int = 1280, height: int = 1000) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True)
        self._process = subprocess.Popen(
            [
                chromium,
                *CHROMIUM_FLAGS,
                "--remote-debugging-port=0",
                f"--user-data-dir={self._profile.name}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            port = self._debugging_port()
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(f"http://127.0.0.1:{port}/json/list", timeout=30) as answer:
                pages = [t for t in json.load(answer) if t["type"] == "page"]
            self._socket = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=WAIT_SECONDS)
            self._ids = itertools.count(1)
            self.send("Page.enable")
            self.send("Runtime.enable")
        except BaseException:
            self.close()  # no Chromium left running behind a failed start
            raise

    def _debugging_port(self) -> int:
        assert self._process.stderr is not None
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            line = self._process.stderr.readline()
            found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if found:
                return int(found.group(1))
            if not line and self._process.poll() is not None:
                break
        raise RuntimeError("Chromium did not open its DevTools port")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command and its result (events that arrive meanwhile are skipped)."""
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        address = json.dumps(url.split("#", maxsplit=1)[0])
        self.wait_for(f"location.href.startsWith({address}) && document.readyState === 'complete'")

    def value(self, expression: str) -> Any:
        answer = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, timeout: float = WAIT_SECONDS) -> Any:
        """Until `expression` is truthy in the page (a navigation in between is waited out)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = self.value(expression)
            except RuntimeError:
                found = None  # the page is between documents
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"never true: {expression}")
            time.sleep(0.1)

    def click(self, selector: str) -> None:
        """A click on the element, as a person's (it must be there and enabled)."""
        self.wait_for(
            f"(e => e && !e.disabled && e.offsetParent !== null)(document.querySelector({json.dumps(selector)}))"
        )
        self.value(f"document.querySelector({json.dumps(selector)}).click()")

    def resize(self, width: int, height: int) -> None:
        """The window's size. Not a mobile emulation: that widens the layout viewport to the page's content, so
        `innerWidth` would follow an overflowing page instead of showing it."""
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def screenshot(self, path: Path) -> None:
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            if hasattr(self, "_socket"):
                self._socket.close()
        finally:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._profile.cleanup()
