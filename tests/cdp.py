"""A minimal Chrome DevTools Protocol client: headless Chromium driven over its WebSocket with aiohttp."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

LISTENING = re.compile(r"DevTools listening on ws://[^\s/]+:(\d+)/")


def chromium_binary() -> str | None:
    """Debian's `chromium` (or what SPICE_CHROMIUM names)."""
    for name in (os.environ.get("SPICE_CHROMIUM", ""), "chromium", "chromium-browser"):
        if name and (path := shutil.which(name)):
            return path
    return None


class CDPError(RuntimeError):
    pass


class Page:
    """One page target: send commands, evaluate JavaScript, wait for conditions, type and click."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data:
                future = self.pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                for listener in list(self.listeners):
                    listener(data.get("method", ""), data.get("params", {}))
        for future in self.pending.values():
            if not future.done():
                future.set_exception(CDPError("DevTools connection closed"))

    async def send(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        answer = await asyncio.wait_for(future, timeout)
        if "error" in answer:
            raise CDPError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression (promises awaited); page exceptions raise."""
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"page exception in {expression!r}: {text}")
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout: float = 60.0, interval: float = 0.05) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {expression!r} (last value {value!r})")

    async def navigate(self, url: str, timeout: float = 60.0) -> None:
        loaded = asyncio.Event()

        def on_event(method: str, params: dict[str, Any]) -> None:
            if method == "Page.loadEventFired":
                loaded.set()

        self.listeners.append(on_event)
        try:
            await self.send("Page.navigate", url=url)
            await asyncio.wait_for(loaded.wait(), timeout)
        finally:
            self.listeners.remove(on_event)

    async def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element (scrolled into view first)."""
        box = await self.evaluate(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " if (!el) return null; el.scrollIntoView({block: 'center'});"
            " const r = el.getBoundingClientRect(); return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()")
        if not box:
            raise AssertionError(f"no element {selector!r} to click")
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left",
                            clickCount=1)

    async def fill(self, selector: str, text: str) -> None:
        """Replace an input's or textarea's content as typed text (focus, select all, insert)."""
        found = await self.evaluate(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " if (!el) return false; el.focus(); el.select(); return true; })()")
        if not found:
            raise AssertionError(f"no element {selector!r} to fill")
        await self.send("Input.insertText", text=text)

    async def screenshot(self, width: int = 1280, height: int = 900) -> bytes:
        """A PNG of the viewport at width x height."""
        await self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                        mobile=False)
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        return base64.b64decode(shot["data"])

    async def close(self) -> None:
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader
        await self.ws.close()


class Browser:
    """Headless Chromium with remote debugging on loopback (port 0 = any free port)."""

    def __init__(self, binary: str, port: int = 0, logs: Path | None = None) -> None:
        self.binary, self.port, self.logs = binary, port, logs
        self.profile = Path(tempfile.mkdtemp(prefix="spice-chromium-"))
        self.log_path = (logs or self.profile) / "chromium.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = aiohttp.ClientSession()
        self.pages: list[Page] = []

    def launch(self) -> None:
        argv = [self.binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-sync", "--mute-audio", "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1", f"--remote-debugging-port={self.port}",
                f"--user-data-dir={self.profile}", "--window-size=1280,900", "about:blank"]
        log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    async def start(self, timeout: float = 60.0) -> None:
        """Launch and wait until the DevTools port is open (Chromium writes it to DevToolsActivePort)."""
        self.launch()
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}: {self.log_tail()}")
            # Chromium prints "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/..." once it listens.
            found = LISTENING.search(self.log_path.read_text(errors="replace"))
            if found:
                self.port = int(found.group(1))
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"chromium did not open its DevTools port within {timeout}s: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def new_page(self) -> Page:
        base = f"http://127.0.0.1:{self.port}"
        async with self.http.put(f"{base}/json/new?about:blank") as resp:
            target = await resp.json(content_type=None)
        ws = await self.http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
        page = Page(ws)
        self.pages.append(page)
        for domain in ("Page.enable", "Runtime.enable"):
            await page.send(domain)
        return page

    async def stop(self) -> None:
        for page in self.pages:
            with contextlib.suppress(Exception):
                await page.close()
        await self.http.close()
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)
