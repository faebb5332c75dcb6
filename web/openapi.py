"""The OpenAPI 3.1 document of every route, built from the operations the handlers declare and the pydantic
models they validate request bodies with."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.domain.commands import MAX_VERSION
from shared.domain.instances import INSTANCE_ID
from shared.domain.ontology import DATABASE_NAME, IDENTIFIER
from web import responses
from web.bodies import MAX_LIMIT, MAX_OFFSET

H = TypeVar("H", bound=Callable[..., Any])
REF = "#/components/schemas/{model}"
JSON = "application/json"

# What each path segment accepts; a value outside the pattern answers 400 or 404.
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "db_name": {"type": "string", "pattern": DATABASE_NAME.pattern},
    "class_id": {"type": "string", "pattern": IDENTIFIER.pattern},
    "instance_id": {"type": "string", "pattern": INSTANCE_ID.pattern},
    "command_id": {"type": "string", "format": "uuid"},
    "replay_id": {"type": "string", "format": "uuid"},
    "filename": {"type": "string"},
}
ERROR_TEXT = {400: "malformed request", 401: "no or bad bearer token", 403: "the caller lacks the role",
              404: "unknown database, class, instance or command", 408: "the sync wait timed out",
              409: "version conflict, or the name is taken", 413: "the command is larger than the broker carries",
              422: "invalid input", 503: "a store is unavailable: nothing was recorded"}


@dataclass(frozen=True)
class Query:
    name: str
    schema: dict[str, Any]
    description: str = ""


@dataclass(frozen=True)
class Operation:
    """What a handler takes and answers; `answers` maps success codes to models (None: not JSON)."""

    summary: str
    tag: str
    answers: dict[int, type[BaseModel] | None]
    body: type[BaseModel] | None = None
    body_optional: bool = False
    query: tuple[Query, ...] = ()
    errors: tuple[int, ...] = (400, 401, 403, 404, 422, 503)
    public: bool = False
    content: str = JSON
    idempotent_key: bool = False


OPERATIONS: dict[Callable[..., Any], Operation] = {}


def documented(operation: Operation) -> Callable[[H], H]:
    """Declare a handler's operation (apply below the route decorator)."""
    def mark(handler: H) -> H:
        OPERATIONS[handler] = operation
        return handler
    return mark


def integer(lo: int, hi: int | None = None, description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": lo}
    if hi is not None:
        schema["maximum"] = hi
    return {"schema": schema, "description": description}


COMMAND_ERRORS = (400, 401, 403, 404, 409, 413, 422, 503)
READ_ERRORS = (400, 401, 403, 404, 422, 503)
SYNC_ERRORS = (*COMMAND_ERRORS, 408)

EXPECTED_VERSION = Query("expected_version", integer(0, MAX_VERSION)["schema"],
                         "the aggregate's current version; a mismatch fails the command with 409")
PAGING = (Query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100}),
          Query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}))
WAIT = (Query("timeout", {"type": "number", "minimum": 1, "maximum": 300, "default": 30}, "seconds to wait"),
        Query("poll_interval", {"type": "number", "minimum": 0.1, "maximum": 5, "default": 0.5}))
SEARCH = (Query("q", {"type": "string"}, "full-text query"),
          Query("class_id", {"type": "string", "pattern": IDENTIFIER.pattern}, "only this class and its subclasses"),
          Query("sort", {"type": "string"}, "comma-separated properties, '-' first for descending"),
          Query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20}),
          Query("offset", {"type": "integer", "minimum": 0, "maximum": 10000, "default": 0}))
POINT_IN_TIME = (Query("version", {"type": "integer", "minimum": 1}, "the state at this version"),
                 Query("as_of", {"type": "string", "format": "date-time"}, "the state at this time"))


def _models(operations: Iterable[Operation]) -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {"ErrorBody": responses.ErrorBody}
    for op in operations:
        for model in [op.body, *op.answers.values()]:
            if model is not None:
                found[model.__name__] = model
    return list(found.values())


def _content(model: type[BaseModel] | None, content: str) -> dict[str, Any]:
    if model is None:
        return {content: {"schema": {"type": "string"}}}
    return {content: {"schema": {"$ref": REF.format(model=model.__name__)}}}


def _operation(path: str, op: Operation) -> dict[str, Any]:
    parameters = [{"name": name, "in": "path", "required": True, "schema": PATH_PARAMETERS[name]}
                  for name in re.findall(r"{(\w+)}", path)]
    parameters += [{"name": q.name, "in": "query", "required": False, "schema": q.schema,
                    **({"description": q.description} if q.description else {})} for q in op.query]
    if op.idempotent_key:
        parameters.append({"name": "Idempotency-Key", "in": "header", "required": False,
                           "description": "the same key and request answer the first command again",
                           "schema": {"type": "string", "minLength": 1, "maxLength": 200,
                                      "pattern": "^[\\x20-\\x7e]+$"}})
    answers: dict[str, Any] = {
        str(code): {"description": "success" if code < 300 else "", "content": _content(model, op.content)}
        for code, model in op.answers.items()}
    for code in op.errors:
        answers[str(code)] = {"description": ERROR_TEXT[code], "content": _content(responses.ErrorBody, JSON)}
    spec: dict[str, Any] = {"summary": op.summary, "tags": [op.tag], "parameters": parameters,
                            "responses": answers}
    if op.body is not None:
        spec["requestBody"] = {"required": not op.body_optional, "content": _content(op.body, JSON)}
    if op.public:
        spec["security"] = []
    return spec


def document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI document of the app's routes; a route without a declared operation is an error."""
    paths: dict[str, dict[str, Any]] = {}
    used: list[Operation] = []
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = route.resource.canonical
        if isinstance(route.resource, web.StaticResource):
            op, path = STATIC, path + "/{filename}"
        elif (found := OPERATIONS.get(route.handler)) is not None:
            op = found
        else:
            raise LookupError(f"route {route.method} {path} declares no operation")
        paths.setdefault(path, {})[route.method.lower()] = _operation(path, op)
        used.append(op)
    _, defs = models_json_schema([(m, "validation") for m in _models(used)], ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Spice Harvester", "version": "1",
                 "description": "Every change is a command (202, executed asynchronously, its status under "
                                "/api/v1/commands/{id}); reads never change anything."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": defs.get("$defs", {}),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "security": [{"bearer": []}],
    }


STATIC = Operation("The page's static files", "pages", {200: None}, errors=(404,), public=True,
                   content="application/octet-stream")
OPENAPI_PATH = "/api/v1/openapi.json"
DOCUMENT = web.AppKey("openapi", dict)
PAGE = Path(__file__).parent / "static" / "api.html"


class OpenAPIDocument(responses.Open):
    openapi: str
    paths: dict[str, Any]


@documented(Operation("This document (OpenAPI 3.1)", "meta", {200: OpenAPIDocument}, errors=(), public=True))
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[DOCUMENT])


@documented(Operation("This document, rendered for people", "meta", {200: None}, errors=(), public=True,
                      content="text/html"))
async def api_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(PAGE, headers={"Cache-Control": "no-cache"})


def setup(app: web.Application) -> None:
    """Serve the document; call after every other route is added (it is built once, from them)."""
    app.router.add_get(OPENAPI_PATH, openapi_json)
    app.router.add_get("/api/docs", api_page)
    app[DOCUMENT] = document(app)
