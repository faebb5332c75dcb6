"""GET /api/v1/openapi.json: an OpenAPI 3.1 document of every route, built from the view's models."""
from __future__ import annotations

from aiohttp import web

from shared.config import Settings
from shared.domain.instances import MAX_BULK
from shared.domain.ontology import OntologyClass
from tests.stack import Stack
from web.app import create_app
from web.openapi import DOCUMENT, document


async def test_the_document_is_public_and_names_every_route(stack: Stack, settings: Settings) -> None:
    async with stack.client.get(f"{stack.base}/api/v1/openapi.json") as resp:  # no token
        assert resp.status == 200
        served = await resp.json()
    assert served["openapi"] == "3.1.0"
    app = create_app(settings)
    routes = {(r.method.lower(), r.resource.canonical) for r in app.router.routes()
              if r.method != "HEAD" and r.resource is not None and not isinstance(r.resource, web.StaticResource)}
    documented_ = {(method, path) for path, item in served["paths"].items() for method in item}
    assert routes <= documented_, routes - documented_
    assert served == app[DOCUMENT]


async def test_request_bodies_are_the_models_the_view_validates_with(stack: Stack) -> None:
    async with stack.client.get(f"{stack.base}/api/v1/openapi.json") as resp:
        served = await resp.json()
    create = served["paths"]["/api/v1/ontology/{db_name}/async/create"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OntologyClass"}
    schemas = served["components"]["schemas"]
    assert schemas["OntologyClass"]["required"] == ["id"]
    assert schemas["OntologyClass"]["properties"].keys() == OntologyClass.model_fields.keys()
    assert schemas["BulkCreate"]["properties"]["instances"]["maxItems"] == MAX_BULK
    assert create["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/Accepted")
    assert {"400", "401", "403", "404", "413", "422"} <= create["responses"].keys()
    assert "security" not in create and served["security"] == [{"bearer": []}]
    assert served["paths"]["/health"]["get"]["security"] == []


async def test_the_page_renders_the_document_for_people(stack: Stack) -> None:
    async with stack.client.get(f"{stack.base}/api/docs") as resp:
        assert resp.status == 200
        assert "text/html" in resp.headers["Content-Type"]
        assert "/api/v1/openapi.json" in await resp.text()


def test_a_route_without_a_declared_operation_is_refused(settings: Settings) -> None:
    app = create_app(settings)

    async def undeclared(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_get("/api/v1/undeclared", undeclared)
    try:
        document(app)
    except LookupError as exc:
        assert "/api/v1/undeclared" in str(exc)
    else:
        raise AssertionError("an undeclared route was documented")
