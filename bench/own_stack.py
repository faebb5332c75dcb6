"""The project's relay, worker and web view in a namespace of the benchmark's own, on running services."""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import aiohttp

from shared.adapters.postgres.pool import migrate
from shared.config import TOPICS, Settings
from shared.processes import COMMANDS
from shared.stack import kafka, postgres

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = COMMANDS  # the same processes `./spice.sh up` starts


@dataclass
class Running:
    """A bench stack's settings, its processes' environment and the processes themselves."""

    settings: Settings
    env: dict[str, str]
    home: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def restart(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Stop one process with `sig` and start it again (its log continues in the same file)."""
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(30)
        self.procs[name] = _spawn_one(name, self.env, self.home)


@contextlib.asynccontextmanager
async def own_stack(extra_env: dict[str, str] | None = None) -> AsyncIterator[Settings]:
    """The settings of a bench stack of its own (see own_processes)."""
    async with own_processes(extra_env) as running:
        yield running.settings


@contextlib.asynccontextmanager
async def own_processes(extra_env: dict[str, str] | None = None) -> AsyncIterator[Running]:
    """Own PostgreSQL database, topics, consumer group and Redis channels (namespace `bench<hex>`),
    web and worker on SPICE_BENCH_WEB_PORT / SPICE_BENCH_WORKER_PORT (58602 / 58666). Nothing of
    anyone else's is touched; the database is dropped afterwards."""
    namespace = f"bench{uuid.uuid4().hex[:6]}"
    env = {
        "SPICE_NAMESPACE": namespace, "SPICE_PG_DATABASE": f"bench_{namespace}",
        "SPICE_WEB_PORT": os.environ.get("SPICE_BENCH_WEB_PORT", "58602"),
        "SPICE_WORKER_WEB_PORT": os.environ.get("SPICE_BENCH_WORKER_PORT", "58666"),
        "SPICE_SECRET": f"bench-secret-{namespace}-for-hs256-at-least-32-bytes",
        "SPICE_S3_ENDPOINT": "", **(extra_env or {}),
    }
    home = Path(tempfile.mkdtemp(prefix=f"spice-{namespace}-"))
    env["SPICE_HOME"] = str(home)  # secret, local archive and logs; the services are found by port
    services = Settings()  # the running stack's: its cluster's socket and the services' passwords
    env.update(SPICE_PG_PASSWORD=services.pg_password, SPICE_REDIS_PASSWORD=services.redis_password)
    with mock.patch.dict(os.environ, env):
        settings = Settings()
    await postgres.create_database(services, settings.pg_database)
    await migrate(settings.pg_dsn)
    await kafka.ensure_topics(settings, [settings.topic(t) for t in TOPICS], settings.partitions)
    running = Running(settings, env, home)
    try:
        for name in PROCESSES:
            running.procs[name] = _spawn_one(name, env, home)
        await _wait_healthy(settings, home)
        yield running
    finally:
        for proc in running.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in running.procs.values():
            try:
                await asyncio.to_thread(proc.wait, 30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        await postgres.drop_database(services, settings.pg_database)
        shutil.rmtree(ROOT / f"{namespace}-worker-data", ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


def _spawn_one(name: str, env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    with open(logs / f"{name}.log", "ab") as log:
        return subprocess.Popen(PROCESSES[name], env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                cwd=ROOT, start_new_session=True)


async def _wait_healthy(settings: Settings, logs: Path, timeout: float = 120.0) -> None:
    url = f"http://{settings.web_host}:{settings.web_port}/health"
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.25)
    raise RuntimeError(f"bench stack not healthy after {timeout:.0f}s; logs in {logs}")
