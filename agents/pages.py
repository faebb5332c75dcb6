"""The worker's pages are internal: only the project's own processes (which share the secret) read them."""
from __future__ import annotations

from faust.web import Request, Response, View

from shared.tokens import INTERNAL_HEADER, is_internal
from streams.app import app, settings


def refused(view: View, request: Request) -> Response | None:
    """A 401 answer unless the request carries the internal credential (`X-Spice-Internal`)."""
    if is_internal(settings, request.headers.get(INTERNAL_HEADER)):
        return None
    return view.json({"detail": {"message": "an internal page: the worker's credential is required"}}, status=401)


@app.page("/partitions/{table}")
async def partitions_page(self: View, request: Request, table: str) -> Response:
    """Which worker owns which partitions of a table (what Faust's own /router pages told, now off)."""
    return refused(self, request) or self.json(app.router.table_metadata(table))


@app.page("/partitions/{table}/{key}")
async def key_owner_page(self: View, request: Request, table: str, key: str) -> Response:
    """The URL of the worker that owns a key of a table."""
    return refused(self, request) or self.json(str(app.router.key_store(table, key)))
