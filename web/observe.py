"""The web view's /metrics, and the middleware that counts and times every request by its route template."""
from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared import metrics
from web.errors import Handler
from web.openapi import Operation, documented


def _route(request: web.Request) -> str:
    """The route's template (`/api/v1/instances/{db_name}/{class_id}`): bounded, unlike the path itself."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = _route(request)
        metrics.HTTP_REQUESTS.labels(request.method, route, str(status)).inc()
        metrics.HTTP_SECONDS.labels(request.method, route).observe(time.perf_counter() - started)


@documented(Operation("Prometheus metrics of the web view (counts only; see README)", "meta", {200: None}, errors=(),
                      public=True, content="text/plain"))
async def metrics_page(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics_page)
