"""The project's relay, worker and web view in a namespace of the benchmark's own, on running services."""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from unittest import mock

import aiohttp

from shared.adapters.postgres.pool import migrate
from shared.config import TOPICS, Settings
from shared.stack import kafka, postgres

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = {
    "relay": [sys.executable, "-m", "shared.cli", "relay"],
    "worker": [sys.executable, "-m", "faust", "-A", "agents.worker", "worker", "-l", "info"],
    "web": [sys.executable, "-m", "shared.cli", "web"],
}


@contextlib.asynccontextmanager
async def own_stack(extra_env: dict[str, str] | None = None) -> AsyncIterator[Settings]:
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
    with mock.patch.dict(os.environ, env):
        settings = Settings()
    await postgres.create_database(settings, settings.pg_database)
    await migrate(settings.pg_dsn)
    await kafka.ensure_topics(settings, [settings.topic(t) for t in TOPICS], settings.partitions)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs += _spawn(env, home)
        await _wait_healthy(settings, home)
        yield settings
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.to_thread(proc.wait, 30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        await postgres.drop_database(settings, settings.pg_database)
        shutil.rmtree(ROOT / f"{namespace}-worker-data", ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


def _spawn(env: dict[str, str], logs: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for name, argv in PROCESSES.items():
        with open(logs / f"{name}.log", "wb") as log:
            procs.append(subprocess.Popen(argv, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                          cwd=ROOT, start_new_session=True))
    return procs


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
