"""The pages: `/` (submit and watch), `/explore` (browse) and their static files, public (each page asks for a
bearer token itself)."""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

from web.openapi import Operation, documented

STATIC = Path(__file__).parent / "static"
NO_CACHE = {"Cache-Control": "no-cache"}


@documented(Operation("The page: submit commands, watch them", "pages", {200: None}, errors=(), public=True,
                     content="text/html"))
async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers=NO_CACHE)


@documented(Operation("The object explorer: classes, instances, history, provenance, links", "pages", {200: None},
                      errors=(), public=True, content="text/html"))
async def explore(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "explore.html", headers=NO_CACHE)


def setup(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/explore", explore)
    app.router.add_static("/static/", STATIC, name="static")
