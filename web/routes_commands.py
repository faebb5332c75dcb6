"""Command routes: submit database and class commands, read their status, wait for them."""
from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from shared.application.submit import ClassPatch, SubmitError
from shared.domain.access import Role, allows
from shared.domain.commands import Command, CommandType
from shared.domain.ontology import DatabaseSpec, OntologyClass, check_database_name, check_identifier
from shared.domain.status import FINAL, CommandStatus, StatusRecord
from web.auth import authorize, role_of
from web.bodies import VersionBody, accepted, expected_version, float_param, idempotency_key, json_body, model_body
from web.context import actor, services
from web.openapi import COMMAND_ERRORS, EXPECTED_VERSION, READ_ERRORS, SYNC_ERRORS, WAIT, Operation, documented
from web.responses import Accepted, CommandStatusView, SyncDone
from web.status import lookup, parse_command_id, wait_final

routes = web.RouteTableDef()


def db_name(request: web.Request) -> str:
    name = request.match_info["db_name"]
    try:
        return check_database_name(name)
    except ValueError as exc:
        raise SubmitError(400, str(exc)) from exc


def class_id(request: web.Request) -> str:
    try:
        return check_identifier(request.match_info["class_id"], "class id")
    except ValueError as exc:
        raise SubmitError(400, str(exc)) from exc


@routes.post("/api/v1/database/create")
@documented(Operation("Create a database", "databases", {202: Accepted}, body=DatabaseSpec, errors=COMMAND_ERRORS,
                      idempotent_key=True))
async def create_database(request: web.Request) -> web.Response:
    spec = await model_body(request, DatabaseSpec)
    command, _ = await services(request).submitter.create_database(
        spec.name, spec.description, actor(request), idempotency_key(request))
    return accepted(command, f"Database creation command accepted for {spec.name!r}", db_name=spec.name)


@routes.delete("/api/v1/database/{db_name}")
@documented(Operation("Delete a database", "databases", {202: Accepted}, body=VersionBody, body_optional=True,
                      query=(EXPECTED_VERSION,), errors=COMMAND_ERRORS, idempotent_key=True))
async def delete_database(request: web.Request) -> web.Response:
    name = db_name(request)
    await authorize(request, name, Role.ADMIN)
    command, _ = await services(request).submitter.delete_database(
        name, await expected_version(request), actor(request), idempotency_key(request))
    return accepted(command, f"Database deletion command accepted for {name!r}", db_name=name)


async def _submit_create(request: web.Request) -> tuple[Command, str]:
    await authorize(request, db_name(request), Role.WRITER)
    cls = await model_body(request, OntologyClass)
    command, _ = await services(request).submitter.create_class(
        db_name(request), cls, actor(request), idempotency_key(request))
    return command, cls.id


async def _submit_update(request: web.Request) -> tuple[Command, str]:
    await authorize(request, db_name(request), Role.WRITER)
    cid = class_id(request)
    body = await json_body(request)
    patch = ClassPatch.model_validate(body)
    command, _ = await services(request).submitter.update_class(
        db_name(request), cid, patch, await expected_version(request, body), actor(request),
        idempotency_key(request))
    return command, cid


async def _submit_delete(request: web.Request) -> tuple[Command, str]:
    await authorize(request, db_name(request), Role.WRITER)
    cid = class_id(request)
    expected = await expected_version(request)
    command, _ = await services(request).submitter.delete_class(
        db_name(request), cid, expected, actor(request), idempotency_key(request))
    return command, cid


@routes.post("/api/v1/ontology/{db_name}/async/create")
@documented(Operation("Create a class", "ontology", {202: Accepted}, body=OntologyClass, errors=COMMAND_ERRORS,
                      idempotent_key=True))
async def create_class(request: web.Request) -> web.Response:
    command, cid = await _submit_create(request)
    return accepted(command, f"Ontology creation command accepted for {cid!r}", class_id=cid)


@routes.put("/api/v1/ontology/{db_name}/async/{class_id}")
@documented(Operation("Update a class (any subset of its fields)", "ontology", {202: Accepted}, body=ClassPatch,
                      query=(EXPECTED_VERSION,), errors=COMMAND_ERRORS, idempotent_key=True))
async def update_class(request: web.Request) -> web.Response:
    command, cid = await _submit_update(request)
    return accepted(command, f"Ontology update command accepted for {cid!r}", class_id=cid)


@routes.delete("/api/v1/ontology/{db_name}/async/{class_id}")
@documented(Operation("Delete a class", "ontology", {202: Accepted}, body=VersionBody, body_optional=True,
                      query=(EXPECTED_VERSION,), errors=COMMAND_ERRORS, idempotent_key=True))
async def delete_class(request: web.Request) -> web.Response:
    command, cid = await _submit_delete(request)
    return accepted(command, f"Ontology deletion command accepted for {cid!r}", class_id=cid)


@documented(Operation("A command's status and transitions", "commands", {200: CommandStatusView}, errors=READ_ERRORS))
async def status_route(request: web.Request) -> web.Response:
    raw = request.match_info["command_id"]
    command_id = parse_command_id(raw)
    record = await lookup(services(request), command_id) if command_id else None
    if record is None:
        raise SubmitError(404, f"unknown command {raw!r}", command_id=raw)
    await may_see(request, record)
    return web.json_response(record.to_api())


async def may_see(request: web.Request, record: StatusRecord) -> None:
    """A command's status is for its submitter and for readers of its database: of the database it was
    recorded for, not of a later database created under the same name."""
    if record.actor == actor(request) or actor(request) == services(request).settings.admin_user:
        return
    if allows(await role_of(request, record.db_name), Role.READER):
        deleted = await services(request).events.deleted_at(record.db_name)
        if deleted is None or record.created_at > deleted:
            return
    raise SubmitError(403, f"command {record.command_id} is not yours", command_id=record.command_id)


routes.get("/api/v1/commands/{command_id}")(status_route)
routes.get("/api/v1/ontology/{db_name}/async/command/{command_id}/status")(status_route)


def _wait_params(request: web.Request) -> tuple[float, float]:
    return (float_param(request, "timeout", 1, 300, 30.0), float_param(request, "poll_interval", 0.1, 5, 0.5))


async def _sync(request: web.Request, submit: Any, verb: str) -> web.Response:
    timeout, poll = _wait_params(request)
    started = time.monotonic()
    command, cid = await submit(request)
    return await _waited(request, command.command_id, timeout, poll, started, cid, verb)


async def _waited(request: web.Request, command_id: Any, timeout: float, poll: float, started: float,
                  cid: str | None, verb: str) -> web.Response:
    svc = services(request)
    record = await lookup(svc, command_id)
    if record is None:
        raise SubmitError(404, f"unknown command {command_id}")
    await may_see(request, record)
    record, history = await wait_final(svc, command_id, timeout, poll, first=record)
    if record is None:
        raise SubmitError(404, f"unknown command {command_id}")
    db = record.db_name
    hint = f"You can check the status using GET /api/v1/ontology/{db}/async/command/{command_id}/status"
    if record.status not in FINAL:
        raise SubmitError(408, f"Operation timed out after {timeout:g} seconds", command_id=str(command_id),
                          hint=hint, command_status=record.status.value)
    api = record.to_api()
    data = {"command_id": str(command_id), "class_id": cid or record.aggregate_id,
            "execution_time": round(time.monotonic() - started, 3), "result": api["result"],
            "progress_history": history}
    if record.status is CommandStatus.FAILED:
        message = (record.error or {}).get("message", "Command failed")
        return web.json_response({"status": "error", "message": message, "data": data,
                                  "detail": {"message": message, "command_id": str(command_id),
                                             "error": record.error}}, status=_failure_status(record.error))
    return web.json_response({"status": "success", "message": f"Successfully {verb} ontology class {cid!r}"
                              if cid else "Command completed successfully", "data": data})


def _failure_status(error: dict[str, Any] | None) -> int:
    code = (error or {}).get("code")
    return {"conflict": 409, "not_found": 404, "exists": 409, "in_use": 409}.get(str(code), 422)


@routes.post("/api/v1/ontology/{db_name}/sync/create")
@documented(Operation("Create a class and wait for it", "ontology", {200: SyncDone}, body=OntologyClass, query=WAIT,
                      errors=SYNC_ERRORS, idempotent_key=True))
async def create_class_sync(request: web.Request) -> web.Response:
    return await _sync(request, _submit_create, "created")


@routes.put("/api/v1/ontology/{db_name}/sync/{class_id}")
@documented(Operation("Update a class and wait for it", "ontology", {200: SyncDone}, body=ClassPatch,
                      query=(EXPECTED_VERSION, *WAIT), errors=SYNC_ERRORS, idempotent_key=True))
async def update_class_sync(request: web.Request) -> web.Response:
    return await _sync(request, _submit_update, "updated")


@routes.delete("/api/v1/ontology/{db_name}/sync/{class_id}")
@documented(Operation("Delete a class and wait for it", "ontology", {200: SyncDone}, body=VersionBody,
                      body_optional=True, query=(EXPECTED_VERSION, *WAIT), errors=SYNC_ERRORS, idempotent_key=True))
async def delete_class_sync(request: web.Request) -> web.Response:
    return await _sync(request, _submit_delete, "deleted")


@routes.get("/api/v1/ontology/{db_name}/sync/command/{command_id}/wait")
@documented(Operation("Wait for a command to finish", "commands", {200: SyncDone}, query=WAIT, errors=SYNC_ERRORS))
async def wait_command(request: web.Request) -> web.Response:
    timeout, poll = _wait_params(request)
    raw = request.match_info["command_id"]
    command_id = parse_command_id(raw)
    if command_id is None:
        raise SubmitError(404, f"unknown command {raw!r}")
    return await _waited(request, command_id, timeout, poll, time.monotonic(), None, "")


class GrantBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=200)
    role: Role | None


@routes.post("/api/v1/database/{db_name}/grants")
@documented(Operation("Grant a role (null revokes)", "databases", {202: Accepted}, body=GrantBody,
                      errors=COMMAND_ERRORS, idempotent_key=True))
async def grant_role(request: web.Request) -> web.Response:
    """Grant (or with role null, revoke) a role: a command like any other, with its own event."""
    name = db_name(request)
    await authorize(request, name, Role.ADMIN)
    body = await model_body(request, GrantBody)
    command, _ = await services(request).submitter.record(Command(
        command_type=CommandType.GRANT_ROLE, aggregate_id=body.user, db_name=name, actor=actor(request),
        payload={"user": body.user, "role": body.role.value if body.role else None},
        idempotency_key=idempotency_key(request)))
    return accepted(command, f"Grant command accepted: {body.user!r} -> {body.role}", db_name=name, user=body.user)
