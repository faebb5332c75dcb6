"""Error responses of the contract: {"detail": {"message": ...}} with a fitting status code."""
from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web
from pydantic import ValidationError

from shared.application.submit import SubmitError

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, message: str, **details: Any) -> web.Response:
    return web.json_response({"detail": {"message": message, **details}}, status=status)


def validation_message(exc: ValidationError) -> tuple[str, list[dict[str, Any]]]:
    errors = [{"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"].removeprefix("Value error, "),
               "type": e["type"]} for e in exc.errors()]
    parts = [f"{e['loc']}: {e['msg']}" if e["loc"] else e["msg"] for e in errors]
    return "invalid request: " + "; ".join(parts), errors


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return error(exc.status, exc.reason or "error")
        raise
    except SubmitError as exc:
        return error(exc.status, exc.message, **exc.details)
    except ValidationError as exc:
        message, errors = validation_message(exc)
        return error(422, message, errors=errors)
    except json.JSONDecodeError as exc:
        return error(400, f"request body is not valid JSON: {exc}")
    except ValueError as exc:
        return error(422, str(exc))
    # InternalClientError: what asyncpg raises on a connection the server is just ending (seen during a
    # PostgreSQL restart in tests/test_faults.py as "another operation is in progress").
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError,
            asyncpg.InterfaceError, asyncpg.InternalClientError, TimeoutError) as exc:
        log.warning("store unavailable: %s", exc)
        return error(503, f"a store is unavailable, nothing was recorded: {exc}")
