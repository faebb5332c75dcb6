"""Read routes: databases, classes, a class at a version or time, and its history. Never mutate."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from shared.application.submit import SubmitError
from shared.domain.access import Role
from shared.domain.commands import AggregateType, iso
from shared.domain.events import Event
from web.auth import authorize, role_of
from web.bodies import int_param, paging
from web.context import services
from web.openapi import PAGING, POINT_IN_TIME, READ_ERRORS, Operation, documented
from web.responses import DatabasePage, Document, Page
from web.routes_commands import class_id, db_name

routes = web.RouteTableDef()


async def require_readable_db(request: web.Request) -> str:
    name = db_name(request)
    if await services(request).docs.database(name) is None:
        raise SubmitError(404, f"database {name!r} does not exist", db_name=name)
    await authorize(request, name, Role.READER)
    return name


def page_of(request: web.Request, items: list[dict[str, Any]]) -> dict[str, Any]:
    limit, offset = paging(request)
    return {"total": len(items), "limit": limit, "offset": offset, "items": items[offset:offset + limit]}


@routes.get("/api/v1/database/list")
@documented(Operation("The databases the caller may read", "databases", {200: DatabasePage}, query=PAGING,
                      errors=READ_ERRORS))
async def list_databases(request: web.Request) -> web.Response:
    dbs = [d for d in await services(request).docs.databases() if await role_of(request, d["name"])]
    return web.json_response({**page_of(request, dbs), "databases": [d["name"] for d in dbs]})


@routes.get("/api/v1/database/{db_name}")
@documented(Operation("A database", "databases", {200: Document}, errors=READ_ERRORS))
async def get_database(request: web.Request) -> web.Response:
    name = await require_readable_db(request)
    return web.json_response(await services(request).docs.database(name))


@routes.get("/api/v1/database/{db_name}/grants")
@documented(Operation("A database's grants", "databases", {200: Page}, query=PAGING, errors=READ_ERRORS))
async def list_grants(request: web.Request) -> web.Response:
    name = await require_readable_db(request)
    return web.json_response(page_of(request, await services(request).docs.grants(name)))


@routes.get("/api/v1/ontology/{db_name}/classes")
@documented(Operation("A database's classes", "ontology", {200: Page}, query=PAGING, errors=READ_ERRORS))
async def list_classes(request: web.Request) -> web.Response:
    name = await require_readable_db(request)
    return web.json_response(page_of(request, await services(request).docs.classes(name)))


def _history_entry(event: Event) -> dict[str, Any]:
    return {
        "version": event.version, "event_type": event.event_type.value, "event_id": str(event.event_id),
        "command_id": str(event.command_id), "actor": event.actor, "timestamp": iso(event.occurred_at),
        "position": event.position, "state": event.data,
    }


def as_of_param(request: web.Request) -> datetime | None:
    raw = request.query.get("as_of")
    if not raw:
        return None
    try:
        ts = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise SubmitError(422, f"as_of must be an ISO-8601 timestamp, got {raw!r}") from exc
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


@routes.get("/api/v1/ontology/{db_name}/classes/{class_id}")
@documented(Operation("A class, now or at a version or time", "ontology", {200: Document}, query=POINT_IN_TIME,
                      errors=READ_ERRORS))
async def get_class(request: web.Request) -> web.Response:
    name, cid = await require_readable_db(request), class_id(request)
    svc = services(request)
    version = int_param(request, "version", lo=1)
    as_of = as_of_param(request)
    if version is None and as_of is None:
        doc = await svc.docs.get_class(name, cid)
        if doc is None:
            raise SubmitError(404, f"class {cid!r} does not exist in {name!r}", class_id=cid)
        return web.json_response(doc)
    state, what = state_then(await svc.events.history(name, AggregateType.ONTOLOGY_CLASS, cid), version, as_of)
    if state is None:
        raise SubmitError(404, f"class {cid!r} has no state {what} in {name!r}", class_id=cid)
    return web.json_response(state)


def state_then(history: list[Event], version: int | None, as_of: datetime | None
               ) -> tuple[dict[str, Any] | None, str]:
    """An aggregate's state at `version` or as of a time (None when it had none, or was deleted), and
    how that moment reads in a message."""
    if version is not None:
        chosen = [e for e in history if e.version == version]
        what = f"version {version}"
    else:
        assert as_of is not None
        chosen = [e for e in history if e.occurred_at <= as_of][-1:]
        what = f"as of {iso(as_of)}"
    if not chosen or chosen[0].data.get("deleted"):
        return None, what
    return chosen[0].data, what


@routes.get("/api/v1/ontology/{db_name}/classes/{class_id}/history")
@documented(Operation("A class's events, oldest first", "ontology", {200: Page}, query=PAGING, errors=READ_ERRORS))
async def class_history(request: web.Request) -> web.Response:
    name, cid = await require_readable_db(request), class_id(request)
    history = await services(request).events.history(name, AggregateType.ONTOLOGY_CLASS, cid)
    if not history:
        raise SubmitError(404, f"class {cid!r} has no history in {name!r}", class_id=cid)
    items = [_history_entry(e) for e in history]
    return web.json_response({"class_id": cid, "db_name": name, **page_of(request, items)})
