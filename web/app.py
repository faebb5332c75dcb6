"""The aiohttp application: wiring, health and the runner `spice web` uses."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from shared.adapters.document_stores import open_document_store
from shared.adapters.postgres.command_log import PostgresCommandLog
from shared.adapters.postgres.event_store import PostgresEventStore
from shared.adapters.postgres.pool import create_pool
from shared.adapters.search import indices as search_indices
from shared.application.submit import Submitter
from shared.config import MAX_MESSAGE_BYTES, Settings
from shared.domain.commands import Command
from web import openapi, page, routes_commands, routes_instances, routes_reads, routes_search, ws
from web.auth import auth_middleware
from web.context import SERVICES, Services
from web.errors import error_middleware
from web.openapi import Operation, documented
from web.responses import Health

log = logging.getLogger(__name__)


@documented(Operation("Readiness of the view and what it depends on", "meta", {200: Health, 503: Health}, errors=(),
                     public=True))
async def health(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(svc.pool.fetchval("SELECT 1"), 2)
        checks["postgres"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["postgres"] = f"down: {exc}"
    try:
        await asyncio.wait_for(svc.redis.ping(), 2)
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"down: {exc}"
    try:
        async with svc.http.get(f"{svc.settings.worker_url}/ready",
                                timeout=aiohttp.ClientTimeout(total=2)) as resp:
            checks["worker"] = "ok" if resp.status == 200 else f"down: HTTP {resp.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        checks["worker"] = f"down: {exc}"
    ok = all(v == "ok" for v in checks.values())
    return web.json_response({"status": "ok" if ok else "unavailable", "checks": checks},
                             status=200 if ok else 503)



def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[error_middleware, auth_middleware], client_max_size=MAX_MESSAGE_BYTES)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        pool = await create_pool(settings.pg_dsn, min_size=2, max_size=20, command_timeout=10)
        commands = PostgresCommandLog(pool)
        docs = open_document_store(settings, pool)

        def topic_for(command: Command) -> str:
            return settings.topic(f"{command.channel}-commands")

        http = aiohttp.ClientSession()
        client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=1)
        search = search_indices.client(settings, timeout=10)
        app[SERVICES] = Services(settings=settings, pool=pool, commands=commands,
                                 events=PostgresEventStore(pool), docs=docs,
                                 submitter=Submitter(commands, docs, topic_for), http=http, redis=client,
                                 search=search)
        yield
        await search.close()
        await client.aclose()
        await http.close()
        await pool.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/health", health)
    app.router.add_routes(routes_commands.routes)
    app.router.add_routes(routes_reads.routes)
    app.router.add_routes(routes_search.routes)
    app.router.add_routes(routes_instances.routes)
    ws.setup(app)
    page.setup(app)
    openapi.setup(app)
    return app


def run(settings: Settings) -> None:
    web.run_app(create_app(settings), host=settings.web_host, port=settings.web_port, print=None,
                access_log=None)
