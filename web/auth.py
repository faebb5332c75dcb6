"""Authentication (bearer tokens) and command-level authorisation per database."""
from __future__ import annotations

import asyncio

from aiohttp import web

from shared.application.access import role_of as shared_role_of
from shared.application.submit import SubmitError
from shared.domain.access import Role, allows
from shared.tokens import InvalidToken, verify
from web.context import services
from web.errors import Handler, error

PROTECTED = ("/api/", "/ws/")
PUBLIC = frozenset({"/api/v1/openapi.json", "/api/docs"})  # the API's description is no secret


def _token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    # Browsers cannot set headers on a WebSocket: the token may come as a query parameter there.
    return request.query.get("token") if request.path.startswith("/ws/") else None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(PROTECTED) or request.path in PUBLIC:
        return await handler(request)
    token = _token(request)
    if token is None:
        return _unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    try:
        request["user"] = verify(services(request).settings, token)
    except InvalidToken as exc:
        return _unauthorized(f"invalid bearer token: {exc}")
    return await handler(request)


def _unauthorized(message: str) -> web.Response:
    response = error(401, message)
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def role_of(request: web.Request, db_name: str) -> Role | None:
    svc = services(request)
    return await shared_role_of(svc.docs, svc.commands, svc.settings.admin_user, db_name, request["user"])


async def authorize(request: web.Request, db_name: str, needed: Role) -> None:
    """404 for an unknown database, 403 unless the caller holds `needed` (or more) on it; nothing is
    recorded in either case."""
    # Both reads at once (each coalesced with the concurrent requests' own): one wait instead of two.
    _, role = await asyncio.gather(services(request).submitter.require_database(db_name), role_of(request, db_name))
    if not allows(role, needed):
        raise SubmitError(403, f"user {request['user']!r} is not {needed.value} of database {db_name!r}",
                          db_name=db_name, required_role=needed.value)
