"""Instance routes: submit create/update/delete/bulk-create commands, and read instances (never mutate)."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from shared.application.submit import SubmitError
from shared.application.submit_instances import BulkCreate, InstanceCreate, InstanceSubmitter, InstanceUpdate
from shared.domain.access import Role
from shared.domain.commands import AggregateType, iso
from shared.domain.events import Event
from shared.domain.instances import check_instance_id, instance_view
from web.auth import authorize
from web.bodies import (
    VersionBody,
    accepted,
    expected_version,
    idempotency_key,
    int_param,
    json_body,
    model_body,
    paging,
)
from web.context import actor, services
from web.openapi import COMMAND_ERRORS, EXPECTED_VERSION, PAGING, POINT_IN_TIME, READ_ERRORS, Operation, documented
from web.responses import Accepted, Document, Page
from web.routes_commands import class_id, db_name, status_route
from web.routes_reads import as_of_param, page_of, require_readable_db, state_then

routes = web.RouteTableDef()
BASE = "/api/v1/instances/{db_name}"


def instance_id(request: web.Request) -> str:
    try:
        return check_instance_id(request.match_info["instance_id"])
    except ValueError as exc:
        raise SubmitError(400, str(exc)) from exc


def submitter(request: web.Request) -> InstanceSubmitter:
    return InstanceSubmitter(services(request).submitter)


@routes.post(BASE + "/async/{class_id}/create")
@documented(Operation("Create an instance", "instances", {202: Accepted}, body=InstanceCreate, errors=COMMAND_ERRORS,
                      idempotent_key=True))
async def create_instance(request: web.Request) -> web.Response:
    name, cid = db_name(request), class_id(request)
    await authorize(request, name, Role.WRITER)
    body = await model_body(request, InstanceCreate)
    command, iid = await submitter(request).create(name, cid, body, actor(request), idempotency_key(request))
    return accepted(command, f"Instance creation command accepted for {iid!r}",
                    db_name=name, class_id=cid, instance_id=iid)


@routes.put(BASE + "/async/{class_id}/{instance_id}/update")
@documented(Operation("Update an instance (a partial update)", "instances", {202: Accepted}, body=InstanceUpdate,
                      query=(EXPECTED_VERSION,), errors=COMMAND_ERRORS, idempotent_key=True))
async def update_instance(request: web.Request) -> web.Response:
    name, cid, iid = db_name(request), class_id(request), instance_id(request)
    await authorize(request, name, Role.WRITER)
    raw = await json_body(request)
    body = InstanceUpdate.model_validate(raw)
    command = await submitter(request).update(name, cid, iid, body, await expected_version(request, raw),
                                              actor(request), idempotency_key(request))
    return accepted(command, f"Instance update command accepted for {iid!r}",
                    db_name=name, class_id=cid, instance_id=iid)


@routes.delete(BASE + "/async/{class_id}/{instance_id}/delete")
@documented(Operation("Delete an instance", "instances", {202: Accepted}, body=VersionBody, body_optional=True,
                      query=(EXPECTED_VERSION,), errors=COMMAND_ERRORS, idempotent_key=True))
async def delete_instance(request: web.Request) -> web.Response:
    name, cid, iid = db_name(request), class_id(request), instance_id(request)
    await authorize(request, name, Role.WRITER)
    command = await submitter(request).delete(name, cid, iid, await expected_version(request), actor(request),
                                              idempotency_key(request))
    return accepted(command, f"Instance deletion command accepted for {iid!r}",
                    db_name=name, class_id=cid, instance_id=iid)


@routes.post(BASE + "/async/{class_id}/bulk-create")
@documented(Operation("Create up to 10,000 instances in one command", "instances", {202: Accepted}, body=BulkCreate,
                      errors=COMMAND_ERRORS, idempotent_key=True))
async def bulk_create(request: web.Request) -> web.Response:
    name, cid = db_name(request), class_id(request)
    await authorize(request, name, Role.WRITER)
    body = await model_body(request, BulkCreate)
    command, ids = await submitter(request).bulk_create(name, cid, body, actor(request), idempotency_key(request))
    return accepted(command, f"Bulk creation command accepted for {len(ids)} instances of {cid!r}",
                    db_name=name, class_id=cid, count=len(ids), instance_ids=ids)


routes.get(BASE + "/async/command/{command_id}/status")(status_route)


@routes.get(BASE + "/{class_id}")
@documented(Operation("A class's instances", "instances", {200: Page}, query=PAGING, errors=READ_ERRORS))
async def list_instances(request: web.Request) -> web.Response:
    name, cid = await require_readable_db(request), class_id(request)
    limit, offset = paging(request)
    total, docs = await services(request).docs.instances(name, cid, limit, offset)
    return web.json_response({"total": total, "limit": limit, "offset": offset, "class_id": cid,
                              "items": [instance_view(d) for d in docs]})


async def _addressed(request: web.Request) -> tuple[str, str, str]:
    """The readable database, the class and the instance the path names."""
    return await require_readable_db(request), class_id(request), instance_id(request)


async def _history(request: web.Request, name: str, cid: str, iid: str) -> list[Event]:
    history = await services(request).events.history(name, AggregateType.INSTANCE, iid)
    if not history or history[0].data.get("class_id") != cid:
        raise SubmitError(404, f"instance {iid!r} of class {cid!r} does not exist in {name!r}",
                          instance_id=iid, class_id=cid)
    return history


@routes.get(BASE + "/{class_id}/{instance_id}")
@documented(Operation("An instance, now or at a version or time", "instances", {200: Document}, query=POINT_IN_TIME,
                      errors=READ_ERRORS))
async def get_instance(request: web.Request) -> web.Response:
    name, cid, iid = await _addressed(request)
    version = int_param(request, "version", lo=1)
    as_of = as_of_param(request)
    if version is None and as_of is None:
        doc = await services(request).docs.get_instance(name, iid)
        if doc is None or doc["class_id"] != cid:
            raise SubmitError(404, f"instance {iid!r} of class {cid!r} does not exist in {name!r}",
                              instance_id=iid, class_id=cid)
        return web.json_response(instance_view(doc))
    state, what = state_then(await _history(request, name, cid, iid), version, as_of)
    if state is None:
        raise SubmitError(404, f"instance {iid!r} has no state {what} in {name!r}", instance_id=iid)
    return web.json_response(instance_view(state))


def _change(event: Event) -> dict[str, Any]:
    return {"version": event.version, "event_type": event.event_type.value, "event_id": str(event.event_id),
            "command_id": str(event.command_id), "actor": event.actor, "timestamp": iso(event.occurred_at),
            "archive_uri": event.data.get("archive_uri")}


@routes.get(BASE + "/{class_id}/{instance_id}/history")
@documented(Operation("An instance's events with its state after each", "instances", {200: Page}, query=PAGING,
                      errors=READ_ERRORS))
async def instance_history(request: web.Request) -> web.Response:
    name, cid, iid = await _addressed(request)
    history = await _history(request, name, cid, iid)
    items = [{**_change(e), "state": instance_view(e.data) if not e.data.get("deleted") else None} for e in history]
    return web.json_response({"instance_id": iid, "class_id": cid, "db_name": name, **page_of(request, items)})


@routes.get(BASE + "/{class_id}/{instance_id}/provenance")
@documented(Operation("Who changed an instance, when, by which command", "instances", {200: Document},
                      errors=READ_ERRORS))
async def instance_provenance(request: web.Request) -> web.Response:
    """Who created and changed the instance, when, by which command and event, and where each event
    is archived."""
    name, cid, iid = await _addressed(request)
    history = await _history(request, name, cid, iid)
    last = history[-1]
    first = history[0]
    return web.json_response({
        "instance_id": iid, "class_id": cid, "db_name": name, "version": last.version,
        "deleted": bool(last.data.get("deleted")),
        "created_by": first.actor, "created_at": iso(first.occurred_at),
        "created_by_command": str(first.command_id),
        "updated_by": last.actor, "updated_at": iso(last.occurred_at),
        "source_command_id": str(last.command_id), "event_id": str(last.event_id),
        "archive_uri": last.data.get("archive_uri"),
        "changes": [_change(e) for e in history],
    })
