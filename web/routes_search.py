"""Search routes: instances and classes from the Elasticsearch read model (reads only, reader role)."""
from __future__ import annotations

from typing import Any

from aiohttp import web
from elasticsearch import ApiError, TransportError

from shared.adapters.search.query import BadQuery, parse_instance_query, parse_paging, search_classes, search_instances
from shared.application.submit import SubmitError
from web.context import services
from web.openapi import READ_ERRORS, SEARCH, Operation, documented
from web.responses import SearchHits
from web.routes_reads import require_readable_db

routes = web.RouteTableDef()


def _es(request: web.Request) -> Any:
    es = services(request).search
    if es is None:
        raise SubmitError(503, "the search read model is not configured")
    return es


async def _answer(request: web.Request, call: Any) -> web.Response:
    try:
        return web.json_response(await call)
    except BadQuery as exc:
        raise SubmitError(exc.status, exc.message) from exc
    except ApiError as exc:
        if exc.meta.status == 400:  # a value Elasticsearch refuses, e.g. a malformed date in a range
            raise SubmitError(422, f"search refused the query: {exc.message}") from exc
        raise SubmitError(503, f"search is unavailable: {exc.message}") from exc
    except TransportError as exc:
        raise SubmitError(503, f"search is unavailable: {exc}") from exc


@routes.get("/api/v1/search/{db_name}")
@documented(Operation("Search instances (full text, property=value filters, ranges, sort)", "search", {200: SearchHits},
                      query=SEARCH, errors=READ_ERRORS))
async def search(request: web.Request) -> web.Response:
    name = await require_readable_db(request)
    svc = services(request)
    try:
        query = parse_instance_query(request.query)
    except BadQuery as exc:
        raise SubmitError(exc.status, exc.message) from exc
    classes = await svc.docs.classes(name)
    return await _answer(request, search_instances(_es(request), svc.settings.namespace, name, query, classes))


@routes.get("/api/v1/search/{db_name}/classes")
@documented(Operation("Search classes", "search", {200: SearchHits}, query=SEARCH[:1] + SEARCH[3:], errors=READ_ERRORS))
async def search_class(request: web.Request) -> web.Response:
    name = await require_readable_db(request)
    try:
        limit, offset = parse_paging(request.query)
    except BadQuery as exc:
        raise SubmitError(exc.status, exc.message) from exc
    q = (request.query.get("q") or "").strip() or None
    return await _answer(request, search_classes(_es(request), services(request).settings.namespace, name, q,
                                                 limit, offset))
