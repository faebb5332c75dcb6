"""Operator routes under /api/v1/admin: the reconciliation report (read-only, for a database's admins)."""
from __future__ import annotations

from aiohttp import web

from shared.application.reconcile import reconcile
from shared.domain.access import Role
from shared.domain.commands import Command, CommandType
from web.auth import authorize
from web.bodies import accepted, idempotency_key
from web.context import actor, services
from web.openapi import COMMAND_ERRORS, READ_ERRORS, Operation, documented
from web.responses import Accepted, Reconciliation
from web.routes_commands import db_name

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
