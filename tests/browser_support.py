"""Headless Chromium for the browser tests: the Debian package (installed on first use,
or the test is skipped saying why), and a small DevTools-protocol client over
``--remote-debugging-pipe`` for pages that must be scripted like a user (click, wait,
read the DOM, screenshot) with nothing beyond the standard library."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import subprocess
import time
from pathlib import Path

from conftest import debian_tool_or_skip

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]


def chromium_or_skip() -> str:
    """Chromium from Debian (installed with apt when missing)."""
    return debian_tool_or_skip("chromium", "chromium")


class DevToolsError(RuntimeError):
    pass


def _above_4(fd: int) -> int:
    """``fd`` moved clear of 3 and 4, so redirecting the browser's 3 and 4 cannot clobber it
    (under pytest's capture a new pipe may well get 3 or 4)."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 5)
    os.close(fd)
    return moved


class Browser:
    """One headless Chromium driven over the DevTools protocol (JSON messages ending in NUL
    on file descriptors 3 and 4 of the browser). ``requests`` collects every URL a page
    asked for, so a test can check what was fetched."""

    def __init__(self, chromium: str, profile: Path, *flags: str, width: int = 1400, height: int = 1000):
        to_browser_r, self._to_browser = map(_above_4, os.pipe())
        self._from_browser, from_browser_w = map(_above_4, os.pipe())
        # the browser reads commands on fd 3 and writes answers on fd 4 (bash: dash takes no fd over 9)
        command = ["bash", "-c", f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}', chromium, *FLAGS,
                   "--remote-debugging-pipe", f"--user-data-dir={profile}", f"--window-size={width},{height}",
                   "--hide-scrollbars", *flags, "about:blank"]
        self.log = profile.with_name(profile.name + ".log")
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, pass_fds=(to_browser_r, from_browser_w), stdout=log, stderr=log,
                                            start_new_session=True)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.session: str | None = None
        self.requests: list[str] = []
        self.width, self.height = width, height

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send("Browser.close", session=False, timeout=10)
                self.process.wait(timeout=10)
            except (DevToolsError, OSError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, 9)
                self.process.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass

    # -- the protocol -----------------------------------------------------------------
    def send(self, method: str, params: dict | None = None, *, session: bool = True, timeout: float = 60) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise DevToolsError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if reply.get("method") == "Network.requestWillBeSent":
                self.requests.append(reply["params"]["request"]["url"])

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise DevToolsError(f"no answer from chromium in time; its log: {self.log}")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise DevToolsError(f"chromium exited ({self.process.poll()}); its log: {self.log}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    # -- what the tests do ------------------------------------------------------------
    def open(self, url: str) -> None:
        """Open ``url`` in a fresh tab of the set size, recording its requests."""
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        self.send("Network.enable")
        self.send("Page.enable")
        self.send("Page.navigate", {"url": url})

    def evaluate(self, expression: str, timeout: float = 60):
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True},
                           timeout=timeout)
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression[:80]}...: {result['exceptionDetails'].get('exception', {}).get('description')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60):
        """Poll ``expression`` until it is truthy; its value. An exception counts as not yet
        (``document.body`` is null while the page loads) and is named if time runs out."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except DevToolsError as err:
                value, last = None, err
            if value:
                return value
            time.sleep(0.25)
        raise DevToolsError(f"timed out after {timeout:.0f} s waiting for: {expression} (last error: {last})")

    def wheel(self, x: float, y: float, delta_y: float) -> None:
        """Turn the mouse wheel over a point of the page, as a user scrolls."""
        self.send("Input.dispatchMouseEvent", {"type": "mouseWheel", "x": x, "y": y, "deltaX": 0, "deltaY": delta_y})

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))
