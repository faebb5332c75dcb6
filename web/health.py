"""GET /health: every dependency of the stack checked at once, each with its status and latency."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from shared.adapters.postgres.reconcile_checks import summary
from web.context import SERVICES, Services
from web.openapi import Operation, documented
from web.responses import Health

TIMEOUT = 2.0  # seconds each check may take; they run side by side


async def _http_up(svc: Services, url: str, ok: Callable[[int], bool]) -> None:
    async with svc.http.get(url, timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as resp:
        if not ok(resp.status):
            raise RuntimeError(f"HTTP {resp.status}")


async def _tcp_up(host: str, port: int) -> None:
    _, writer = await asyncio.open_connection(host, port)
    writer.close()
    await writer.wait_closed()


def checks(svc: Services) -> dict[str, Callable[[], Awaitable[Any]]]:
    """What the view depends on: the stores it reads and writes, the broker and the worker that execute
    commands, the search index, the archive, and TerminusDB when it is the document store."""
    s = svc.settings
    found: dict[str, Callable[[], Awaitable[Any]]] = {
        "postgres": lambda: svc.pool.fetchval("SELECT 1"),
        "redis": svc.redis.ping,
        "kafka": lambda: _tcp_up(s.kafka_host, s.kafka_port),
        "worker": lambda: _http_up(svc, f"{s.worker_url}/ready", lambda code: code == 200),
    }
    if svc.search is not None:
        search = svc.search
        found["elasticsearch"] = lambda: search.cluster.health(timeout=f"{int(TIMEOUT)}s")
    if s.s3_endpoint:  # any answer from the S3 server is a live server (the bucket needs credentials)
        found["s3"] = lambda: _http_up(svc, s.s3_endpoint, lambda code: code < 500)
    if s.terminusdb_url:
        found["terminusdb"] = lambda: _http_up(svc, s.terminusdb_url.rstrip("/") + "/api/ok", lambda code: code < 500)
    return found


async def _timed(check: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), TIMEOUT)
        outcome: dict[str, Any] = {"status": "ok"}
    except Exception as exc:  # noqa: BLE001 — any failure is "down", said with its kind, not a 500
        outcome = {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:300] if str(exc) else type(exc).__name__}
    outcome["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return outcome


async def _reconciliation(svc: Services) -> dict[str, Any] | None:
    """The relay's periodic reconciliation, summed over the live databases' last checks: drift is no outage
    (the answer stays 200), an admin's repair command mends it."""
    try:
        return await asyncio.wait_for(summary(svc.pool), TIMEOUT)
    except Exception:  # noqa: BLE001 — the report's other checks still answer
        return None


@documented(Operation("Every dependency's status and latency; 503 names what is down", "meta",
                      {200: Health, 503: Health}, errors=(), public=True))
async def health(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    names, pending = zip(*checks(svc).items(), strict=True)
    results = dict(zip(names, await asyncio.gather(*(_timed(c) for c in pending)), strict=True))
    down = sorted(name for name, result in results.items() if result["status"] != "ok")
    body: dict[str, Any] = {"status": "unavailable" if down else "ok", "checks": results,
                            "reconciliation": await _reconciliation(svc) if "postgres" not in down else None}
    if down:
        body["down"] = down
        body["detail"] = {"message": f"unavailable: {', '.join(down)}"}
    return web.json_response(body, status=503 if down else 200)
