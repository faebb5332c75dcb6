"""Test harness: the project's processes (relay, Faust worker, web view) as real child processes."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from shared.config import Settings
from shared.tokens import INTERNAL_HEADER, internal_token, issue

ROOT = Path(__file__).resolve().parent.parent
FINAL = {"COMPLETED", "FAILED"}


def free_ports(n: int) -> list[str]:
    """Loopback ports free right now (a service left over from an earlier run cannot collide)."""
    probes = [socket.socket() for _ in range(n)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [str(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def test_env(namespace: str) -> dict[str, str]:
    return {
        "SPICE_NAMESPACE": namespace,
        "SPICE_PG_DATABASE": f"test_{namespace}",
        "SPICE_WEB_PORT": os.environ.get("SPICE_TEST_WEB_PORT", "58102"),
        "SPICE_WORKER_WEB_PORT": os.environ.get("SPICE_TEST_WORKER_PORT", "58166"),
        "SPICE_PARTITIONS": "4",
        "SPICE_DEPENDENCY_WAIT": "3",
        "SPICE_REDELIVER_AFTER": "8",
        "SPICE_SECRET": f"test-secret-{namespace}-for-hs256-at-least-32-bytes",
    }


class Process:
    """One child process with its log file; stop() with a signal, start() again."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.argv, self.env, self.logs = name, argv, env, logs
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.logs / f"{self.name}.{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(self.argv, env={**os.environ, **self.env}, stdout=log,
                                     stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        path = self.logs / f"{self.name}.{self.starts}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


class Stack:
    """The running system under test, with an HTTP client bound to its web view."""

    def __init__(self, settings: Settings, env: dict[str, str], logs: Path) -> None:
        self.settings = settings
        py = sys.executable
        self.relay = Process("relay", [py, "-m", "shared.cli", "relay"], env, logs)
        level = os.environ.get("SPICE_TEST_LOG", "info")
        self.worker = Process("worker", [py, "-m", "faust", "-A", "agents.worker", "worker", "-l", level],
                              env, logs)
        self.web = Process("web", [py, "-m", "shared.cli", "web"], env, logs)
        self.base = f"http://127.0.0.1:{settings.web_port}"
        self.http: aiohttp.ClientSession | None = None

    @property
    def client(self) -> aiohttp.ClientSession:
        assert self.http is not None
        return self.http

    async def start(self) -> None:
        for port in (self.settings.web_port, self.settings.worker_web_port):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    raise RuntimeError(f"port {port} is taken: stop what listens there (or set "
                                       "SPICE_TEST_WEB_PORT / SPICE_TEST_WORKER_PORT)")
        self.http = aiohttp.ClientSession()
        for p in (self.relay, self.worker, self.web):
            p.start()
        await self.wait_healthy()

    async def stop(self) -> None:
        for p in (self.web, self.worker, self.relay):
            p.stop()
        if self.http:
            await self.http.close()

    async def wait_healthy(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                async with self.client.get(f"{self.base}/health") as resp:
                    last = await resp.json()
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, ValueError) as exc:
                last = exc
            await asyncio.sleep(0.25)
        raise AssertionError(f"stack not healthy: {last}\n{self.worker.log_tail()}")

    async def wait_worker_ready(self, timeout: float = 120.0) -> None:
        url = f"{self.settings.worker_url}/ready"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                async with self.client.get(url) as resp:
                    if resp.status == 200 and (await resp.json()).get("partitions", 0) > 0:
                        return
            except (aiohttp.ClientError, ValueError):
                pass
            await asyncio.sleep(0.25)
        raise AssertionError(f"worker not ready\n{self.worker.log_tail()}")

    def token(self, user: str) -> str:
        return issue(self.settings, user)

    def internal(self) -> dict[str, str]:
        """The header the project's processes present to the worker's internal pages."""
        return {INTERNAL_HEADER: internal_token(self.settings)}

    def auth(self, user: str | None = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"} if user else {}

    async def request(self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None,
                      data: Any = None, user: str | None = "alice") -> tuple[int, Any]:
        """As `user` (a bearer token of theirs), or unauthenticated when user is None."""
        async with self.client.request(method, f"{self.base}{path}", json=json, data=data,
                                       headers={**self.auth(user), **(headers or {})}) as resp:
            body = await resp.json(content_type=None)
            return resp.status, body

    async def status(self, command_id: str, user: str = "alice") -> dict[str, Any]:
        code, body = await self.request("GET", f"/api/v1/commands/{command_id}", user=user)
        assert code == 200, body
        return body  # type: ignore[no-any-return]

    async def wait(self, command_id: str, timeout: float = 60.0, user: str = "alice") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        settled: float | None = None
        while time.monotonic() < deadline:
            body = await self.status(command_id, user)
            if body["status"] in FINAL:
                # Final from the event store may come a moment before the status table (fed through
                # Kafka) has the whole history; give the table a few seconds to catch up.
                settled = settled or time.monotonic() + 5
                statuses = [h["status"] for h in body["result"]["history"]]
                if "PROCESSING" in statuses or time.monotonic() > settled:
                    return body
            await asyncio.sleep(0.05)
        raise AssertionError(f"command {command_id} not final after {timeout}s: {body}\n"
                             f"{self.worker.log_tail()}")

    async def submit(self, method: str, path: str, json: Any = None, **kw: Any) -> str:
        code, body = await self.request(method, path, json=json, **kw)
        assert code == 202, (code, body)
        assert body["status"] == "PENDING"
        return str(body["command_id"])

    async def run(self, method: str, path: str, json: Any = None, **kw: Any) -> dict[str, Any]:
        return await self.wait(await self.submit(method, path, json, **kw), user=kw.get("user") or "alice")

    async def new_database(self, user: str = "alice") -> str:
        name = f"db-{uuid.uuid4().hex[:10]}"
        done = await self.run("POST", "/api/v1/database/create", {"name": name, "description": "test"},
                              user=user)
        assert done["status"] == "COMPLETED", done
        return name


async def record_only(pool: Any, command: Any) -> None:
    """Write a command to the command log without queueing it: a command whose message was lost."""
    await pool.execute(
        "INSERT INTO commands (command_id, command_type, aggregate_type, aggregate_id, db_name, actor,"
        " payload, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        command.command_id, command.command_type.value, command.aggregate_type.value, command.aggregate_id,
        command.db_name, command.actor, command.payload, command.created_at)


async def drop_search_indices(settings: Settings) -> None:
    """The session's Elasticsearch indices (the worker projects every test database): leave none behind
    on the shared node, which refuses new indices at about 1,000 shards."""
    from shared.adapters.search import indices
    from shared.stack import elasticsearch

    if not elasticsearch.is_running(settings):
        return
    client = indices.client(settings)
    try:
        await indices.drop_namespace(client, settings.namespace)
    finally:
        await client.close()
