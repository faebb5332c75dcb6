"""GET /api/v1/commands/{id}/trace: a command's causal trace, command → events → objects at those versions
→ archive URI → the version the search index holds (reads only, with the status route's read rights)."""
from __future__ import annotations

from typing import Any

from aiohttp import web
from elasticsearch import ApiError, TransportError

from shared.adapters.search import indices
from shared.application.submit import SubmitError
from shared.domain.commands import AggregateType
from shared.domain.events import Event
from web.context import services
from web.openapi import READ_ERRORS, Operation, documented
from web.responses import Trace
from web.routes_commands import may_see
from web.status import lookup, parse_command_id

routes = web.RouteTableDef()
SEARCHED = {AggregateType.ONTOLOGY_CLASS: indices.CLASSES, AggregateType.INSTANCE: indices.INSTANCES}
MGET_CHUNK = 1000


async def search_versions(request: web.Request, events: list[Event]) -> dict[tuple[str, str], int | None]:
    """(kind, aggregate id) → the version the search index holds, None when it holds none (or search is
    away: the trace still answers, saying so per object)."""
    es = services(request).search
    wanted = [(SEARCHED[e.aggregate_type], e.aggregate_id) for e in events if e.aggregate_type in SEARCHED]
    found: dict[tuple[str, str], int | None] = dict.fromkeys(wanted)
    if es is None or not wanted:
        return found
    namespace = services(request).settings.namespace
    for kind in {k for k, _ in wanted}:
        ids = sorted({i for k, i in wanted if k == kind})
        for start in range(0, len(ids), MGET_CHUNK):
            try:
                answer = await es.mget(index=indices.alias(namespace, events[0].db_name, kind),
                                       ids=ids[start:start + MGET_CHUNK], source=False)
            except (ApiError, TransportError):
                continue
            for doc in answer["docs"]:
                if doc.get("found"):
                    found[(kind, doc["_id"])] = doc.get("_version")
    return found


def _object(event: Event, indexed: dict[tuple[str, str], int | None]) -> dict[str, Any]:
    kind = SEARCHED.get(event.aggregate_type)
    return {"aggregate_id": event.aggregate_id, "aggregate_type": event.aggregate_type.value,
            "version": event.version, "state": None if event.data.get("deleted") else event.data,
            "archive_uri": event.data.get("archive_uri"),
            "search_version": indexed.get((kind, event.aggregate_id)) if kind else None}


@routes.get("/api/v1/commands/{command_id}/trace")
@documented(Operation("A command's causal trace: its events, the objects at those versions, where each is "
                      "archived and the version the search index holds", "commands", {200: Trace},
                      errors=READ_ERRORS))
async def trace(request: web.Request) -> web.Response:
    svc = services(request)
    raw = request.match_info["command_id"]
    command_id = parse_command_id(raw)
    record = await lookup(svc, command_id) if command_id else None
    command = await svc.commands.get(command_id) if command_id and record else None
    if record is None or command is None:
        raise SubmitError(404, f"unknown command {raw!r}", command_id=raw)
    await may_see(request, record)
    events = await svc.events.for_command(command.command_id)
    indexed = await search_versions(request, events)
    return web.json_response({
        "command": command.model_dump(mode="json"), "status": record.status.value,
        "events": [{"event_id": str(e.event_id), "event_type": e.event_type.value, "aggregate_id": e.aggregate_id,
                    "version": e.version, "position": e.position} for e in events],
        "objects": [_object(e, indexed) for e in events if e.version is not None],
    })
