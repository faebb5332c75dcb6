"""Operator routes under /api/v1/admin, for a database's admins: reconciliation (report and repair) and replays
under two-admin approval."""
from __future__ import annotations

from typing import Any, Literal
from uuid import UUID, uuid4

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.application.reconcile import reconcile
from shared.application.submit import SubmitError
from shared.domain.access import Role
from shared.domain.commands import AggregateType, Command, CommandType
from shared.domain.ontology import DATABASE_NAME, check_database_name
from shared.domain.replays import Replay, approval_refused, fold
from shared.domain.status import CommandStatus
from web.auth import authorize
from web.bodies import accepted, idempotency_key, model_body
from web.context import actor, services
from web.openapi import COMMAND_ERRORS, READ_ERRORS, Operation, documented
from web.responses import Accepted, Reconciliation, ReplayAccepted, ReplayView
from web.routes_commands import db_name
from web.status import lookup, parse_command_id

routes = web.RouteTableDef()


@routes.get("/api/v1/admin/reconcile/{db_name}")
@documented(Operation("Reconciliation report: every class and instance of the database checked against the "
                      "event store in the documents, the search index and the archive, with checksums",
                      "admin", {200: Reconciliation}, errors=READ_ERRORS))
async def reconcile_report(request: web.Request) -> web.Response:
    name = db_name(request)
    await authorize(request, name, Role.ADMIN)
    svc = services(request)
    report = await reconcile(name, svc.events, svc.docs, svc.search_index, svc.archive)
    return web.json_response(report.to_api())


@routes.post("/api/v1/admin/reconcile/{db_name}")
@documented(Operation("Repair every drifted object from the event store, as a command whose event records "
                      "what it repaired", "admin", {202: Accepted}, errors=COMMAND_ERRORS, idempotent_key=True))
async def reconcile_repair(request: web.Request) -> web.Response:
    name = db_name(request)
    await authorize(request, name, Role.ADMIN)
    command, _ = await services(request).submitter.record(Command(
        command_type=CommandType.RECONCILE_DATABASE, aggregate_id=name, db_name=name, actor=actor(request),
        payload={}, idempotency_key=idempotency_key(request)))
    return accepted(command, f"Reconciliation command accepted for {name!r}", db_name=name)


class ReplayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    db_name: str = Field(json_schema_extra={"pattern": DATABASE_NAME.pattern})
    targets: list[Literal["documents", "search"]] = Field(min_length=1, max_length=2)
    reason: str = Field(min_length=1, max_length=1000)

    @field_validator("db_name")
    @classmethod
    def _db(cls, v: str) -> str:
        return check_database_name(v)


async def _replay(request: web.Request) -> tuple[Command, Replay]:
    """The replay the path names (404 unknown) and its state, for an admin of its database (403)."""
    svc = services(request)
    raw = request.match_info["replay_id"]
    replay_id = parse_command_id(raw)
    asked = await svc.commands.get(replay_id) if replay_id else None
    if asked is None or asked.command_type is not CommandType.REQUEST_REPLAY:
        raise SubmitError(404, f"unknown replay {raw!r}", replay_id=raw)
    await authorize(request, asked.db_name, Role.ADMIN)
    replay = fold(asked, await svc.events.history(asked.db_name, AggregateType.REPLAY, str(asked.command_id)))
    if replay.status == "APPROVED" and replay.command_id:
        record = await lookup(svc, UUID(replay.command_id))
        if record is not None and record.status in (CommandStatus.PROCESSING, CommandStatus.RETRYING,
                                                    CommandStatus.COMPLETED):
            replay.status = "RUNNING"  # the rebuild runs, or its completion is on its way
        elif record is not None and record.status is CommandStatus.FAILED:
            replay.status = "FAILED"
    return asked, replay


def _view(replay: Replay) -> dict[str, Any]:
    return {"replay_id": replay.replay_id, "db_name": replay.db_name, "targets": replay.targets,
            "status": replay.status, "reason": replay.reason, "requested_by": replay.requested_by,
            "approved_by": replay.approved_by, "rejected_by": replay.rejected_by, "command_id": replay.command_id,
            "result": replay.result}


@routes.post("/api/v1/admin/replays")
@documented(Operation("Request a replay: the named read models rebuilt from the event store, once another admin "
                      "approves", "admin", {202: ReplayAccepted}, body=ReplayBody, errors=COMMAND_ERRORS,
                      idempotent_key=True))
async def request_replay(request: web.Request) -> web.Response:
    body = await model_body(request, ReplayBody)
    await authorize(request, body.db_name, Role.ADMIN)
    replay_id = uuid4()
    command, _ = await services(request).submitter.record(Command(
        command_id=replay_id, command_type=CommandType.REQUEST_REPLAY, aggregate_id=str(replay_id),
        db_name=body.db_name, actor=actor(request), idempotency_key=idempotency_key(request),
        payload={"targets": sorted(set(body.targets)), "reason": body.reason}))
    return web.json_response({"replay_id": command.aggregate_id, "status": "AWAITING_APPROVAL",
                              "command_id": str(command.command_id)}, status=202)


async def _decision(request: web.Request, kind: CommandType, status: str) -> web.Response:
    asked, replay = await _replay(request)
    svc = services(request)
    if kind is CommandType.APPROVE_REPLAY:
        refused = approval_refused(replay, actor(request), svc.settings.admin_user)
        if refused:
            raise SubmitError(403, refused, replay_id=replay.replay_id, requested_by=replay.requested_by)
    if replay.status != "AWAITING_APPROVAL":
        raise SubmitError(409, f"replay {replay.replay_id} is {replay.status}, not awaiting approval",
                          replay_id=replay.replay_id, replay_status=replay.status)
    command, _ = await svc.submitter.record(Command(
        command_type=kind, aggregate_id=replay.replay_id, db_name=asked.db_name, actor=actor(request),
        payload={}, idempotency_key=idempotency_key(request)))
    return web.json_response({"replay_id": replay.replay_id, "command_id": str(command.command_id),
                              "status": status}, status=202)


@routes.post("/api/v1/admin/replays/{replay_id}/approve")
@documented(Operation("Approve a replay (another admin than its requester, or the bootstrap administrator); the "
                      "rebuild runs as this command", "admin", {202: ReplayAccepted}, errors=COMMAND_ERRORS,
                      idempotent_key=True))
async def approve_replay(request: web.Request) -> web.Response:
    return await _decision(request, CommandType.APPROVE_REPLAY, "APPROVED")


@routes.post("/api/v1/admin/replays/{replay_id}/reject")
@documented(Operation("Reject a replay", "admin", {202: ReplayAccepted}, errors=COMMAND_ERRORS, idempotent_key=True))
async def reject_replay(request: web.Request) -> web.Response:
    return await _decision(request, CommandType.REJECT_REPLAY, "REJECTED")


@routes.get("/api/v1/admin/replays/{replay_id}")
@documented(Operation("A replay: its status, who requested and approved it, and its result", "admin",
                      {200: ReplayView}, errors=READ_ERRORS))
async def get_replay(request: web.Request) -> web.Response:
    _, replay = await _replay(request)
    return web.json_response(_view(replay))
