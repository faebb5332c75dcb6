"""Reading request bodies and query parameters, with 4xx answers for anything malformed."""
from __future__ import annotations

import json
import logging
import math
import re
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from shared import metrics
from shared.application.submit import SubmitError
from shared.domain.commands import MAX_VERSION, Command, Version
from shared.params import BadParameter, bounded_int

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)


class VersionBody(BaseModel):
    """The optional body of a delete: the version the caller expects (the query parameter says the same)."""

    expected_version: Version | None = None


MAX_DEPTH = 64  # arrays and objects inside each other; far beyond any ontology or instance
# What PostgreSQL's jsonb (and text) cannot hold: NUL, and UTF-16 surrogates standing alone.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def storable(value: Any) -> None:
    """422 for what a store cannot hold: nesting beyond MAX_DEPTH, NUL or a lone surrogate in a string or a
    key. Walked with a list, not recursion, so no depth can overflow the interpreter's stack here."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise SubmitError(422, f"request body is nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, str):
            _text(item)
        elif isinstance(item, dict):
            for key, inner in item.items():
                _text(key)
                pending.append((inner, depth + 1))
        elif isinstance(item, list):
            pending.extend((inner, depth + 1) for inner in item)


def _text(text: str) -> None:
    bad = UNSTORABLE.search(text)
    if bad:
        what = "NUL (\\u0000)" if bad.group() == "\x00" else f"a lone surrogate (\\u{ord(bad.group()):04x})"
        raise SubmitError(422, f"strings and keys may not contain {what}")


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        text = await request.text()
    except (LookupError, UnicodeDecodeError) as exc:
        raise SubmitError(400, "request body must be UTF-8 text (Content-Type charset utf-8 or none)") from exc
    if not text.strip():
        raise SubmitError(400, "request body is empty; a JSON object is required")
    try:
        body = json.loads(text, parse_constant=_constant, parse_float=_finite)
    except RecursionError as exc:
        raise SubmitError(422, f"request body is nested more than {MAX_DEPTH} levels deep") from exc
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, 1e999, an integer of thousands of digits
        raise SubmitError(400, f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise SubmitError(400, "request body must be a JSON object")
    storable(body)
    return body


async def model_body(request: web.Request, model: type[M]) -> M:
    return model.model_validate(await json_body(request))


async def expected_version(request: web.Request, body: dict[str, Any] | None = None) -> int | None:
    """The expected_version a write names: its JSON body's field, else the query parameter; None when
    neither does. Without `body` (deletes) an optional JSON body is read here. Every route reads it so."""
    if body is None and request.can_read_body and (await request.text()).strip():
        body = await json_body(request)
    raw = (body or {}).get("expected_version")
    if raw is None:
        return int_param(request, "expected_version", lo=0, hi=MAX_VERSION)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_VERSION:
        raise SubmitError(422, f"expected_version must be an integer between 0 and {MAX_VERSION}, got {raw!r}")
    return raw


def int_param(request: web.Request, name: str, lo: int | None = None, hi: int | None = None,
              default: int | None = None) -> int | None:
    try:
        return bounded_int(name, request.query.get(name), lo, hi, default)
    except BadParameter as exc:
        raise SubmitError(422, str(exc)) from exc


MAX_LIMIT = 1000
MAX_OFFSET = MAX_VERSION  # far beyond any list here, and within what SQL's OFFSET takes


def paging(request: web.Request) -> tuple[int, int]:
    """limit (1..MAX_LIMIT, default 100) and offset (0..MAX_OFFSET) of a list route."""
    limit = int_param(request, "limit", lo=1, hi=MAX_LIMIT, default=100)
    offset = int_param(request, "offset", lo=0, hi=MAX_OFFSET, default=0)
    assert limit is not None and offset is not None  # defaults were given
    return limit, offset


def float_param(request: web.Request, name: str, lo: float, hi: float, default: float) -> float:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SubmitError(422, f"query parameter {name!r} must be a number, got {raw!r}") from exc
    if not lo <= value <= hi:
        raise SubmitError(422, f"query parameter {name!r} must be between {lo} and {hi}, got {value}")
    return value


def idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (1 <= len(key) <= 200 and key.isascii() and key.isprintable()):
        raise SubmitError(400, "Idempotency-Key must be 1 to 200 printable ASCII characters")
    return key


def accepted(command: Command, message: str, **extra: Any) -> web.Response:
    """202 for a recorded command (a repeated request with its Idempotency-Key too)."""
    metrics.ACCEPTED.labels(command.command_type.value).inc()
    log.info("accepted %s %s", command.command_type.value, command.command_id,
             extra={"command_id": command.command_id, "db_name": command.db_name, "aggregate_id": command.aggregate_id})
    return web.json_response(
        {"command_id": str(command.command_id), "status": "PENDING", "result": {"message": message, **extra}},
        status=202)
