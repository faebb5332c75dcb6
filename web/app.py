"""The aiohttp application: wiring, health and the runner `spice web` uses."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from shared.bootstrap import Needs, open_stores
from shared.config import MAX_MESSAGE_BYTES, Settings
from web import observe, openapi, page, routes_commands, routes_instances, routes_reads, routes_search, ws
from web.auth import auth_middleware
from web.context import SERVICES, Services
from web.errors import error_middleware
from web.observe import metrics_middleware
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
    app = web.Application(middlewares=[metrics_middleware, error_middleware, auth_middleware],
                          client_max_size=MAX_MESSAGE_BYTES)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        stores = await open_stores(settings, Needs(pool=(2, 20), command_timeout=10, redis_timeout=2,
                                                   search_timeout=10))
        assert stores.redis is not None
        http = aiohttp.ClientSession()
        app[SERVICES] = Services(settings=settings, pool=stores.pool, commands=stores.commands,
                                 events=stores.events, docs=stores.docs, submitter=stores.submitter(), http=http,
                                 redis=stores.redis, search=stores.search)
        yield
        await http.close()
        await stores.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/health", health)
    app.router.add_routes(routes_commands.routes)
    app.router.add_routes(routes_reads.routes)
    app.router.add_routes(routes_search.routes)
    app.router.add_routes(routes_instances.routes)
    ws.setup(app)
    page.setup(app)
    observe.setup(app)
    openapi.setup(app)
    return app


def run(settings: Settings) -> None:
    web.run_app(create_app(settings), host=settings.web_host, port=settings.web_port, print=None,
                access_log=None)
