"""GET /health: each dependency with its status and latency; a 503 names what is down."""
from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

from tests.stack import Process, Stack

DEPENDENCIES = {"postgres", "redis", "kafka", "worker", "elasticsearch", "s3"}


async def test_every_dependency_is_reported_with_its_latency(stack: Stack) -> None:
    async with stack.client.get(f"{stack.base}/health") as resp:  # no token
        assert resp.status == 200
        body = await resp.json()
    assert body["status"] == "ok" and "down" not in body
    assert DEPENDENCIES <= body["checks"].keys()
    for name, check in body["checks"].items():
        assert check["status"] == "ok", (name, check)
        assert isinstance(check["latency_ms"], float | int) and 0 <= check["latency_ms"] < 2000, (name, check)


async def test_a_503_names_what_is_down(stack: Stack) -> None:
    """A second web view whose broker and worker addresses lead nowhere: it says exactly those are down."""
    ports = []
    for _ in range(3):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    web, nowhere_kafka, nowhere_worker = ports
    second = Process("web-health", [sys.executable, "-m", "shared.cli", "web"],
                     {**os.environ, "SPICE_WEB_PORT": str(web), "SPICE_KAFKA_PORT": str(nowhere_kafka),
                      "SPICE_WORKER_WEB_PORT": str(nowhere_worker)}, Path(tempfile.mkdtemp()))
    second.start()
    try:
        body: dict[str, Any] = {}
        for _ in range(200):
            try:
                async with stack.client.get(f"http://127.0.0.1:{web}/health") as resp:
                    assert resp.status == 503
                    body = await resp.json()
                    break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        assert body["status"] == "unavailable"
        assert body["down"] == ["kafka", "worker"], body
        assert "kafka" in body["detail"]["message"] and "worker" in body["detail"]["message"]
        assert body["checks"]["postgres"]["status"] == "ok" and body["checks"]["kafka"]["error"]
    finally:
        second.stop()
