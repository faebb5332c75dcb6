"""The aiohttp application: its stores, middlewares and routes, and the runner `spice web` uses."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from shared.adapters.live_push import Publisher
from shared.bootstrap import Needs, open_stores
from shared.config import MAX_MESSAGE_BYTES, Settings
from shared.domain.commands import Command
from web import (
    observe,
    openapi,
    page,
    routes_admin,
    routes_commands,
    routes_instances,
    routes_reads,
    routes_search,
    routes_trace,
    serve,
    ws,
)
from web.auth import auth_middleware
from web.context import SERVICES, Services
from web.errors import error_middleware
from web.health import health
from web.observe import metrics_middleware
from web.status import announce_pending

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[metrics_middleware, error_middleware, auth_middleware],
                          client_max_size=MAX_MESSAGE_BYTES)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        stores = await open_stores(settings, Needs(pool=(2, 20), command_timeout=10, redis_timeout=2,
                                                   search_timeout=10, archive=True))
        assert stores.redis is not None
        http = aiohttp.ClientSession()

        async def recorded(command: Command) -> None:
            await announce_pending(app[SERVICES], command)

        app[SERVICES] = Services(settings=settings, pool=stores.pool, commands=stores.commands,
                                 events=stores.events, docs=stores.docs, submitter=stores.submitter(recorded),
                                 http=http, redis=stores.redis, live=Publisher(stores.redis), search=stores.search,
                                 search_index=stores.search_index(), archive=stores.archive)
        yield
        await http.close()
        await stores.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/health", health)
    app.router.add_routes(routes_commands.routes)
    app.router.add_routes(routes_reads.routes)
    app.router.add_routes(routes_search.routes)
    app.router.add_routes(routes_instances.routes)
    app.router.add_routes(routes_trace.routes)
    app.router.add_routes(routes_admin.routes)
    ws.setup(app)
    page.setup(app)
    observe.setup(app)
    openapi.setup(app)
    return app


def run(settings: Settings) -> None:
    serve.run(settings, create_app(settings))
