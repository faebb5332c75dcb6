"""Serving the app: aiohttp's runner, with requests its HTTP parser refuses answered in the error contract."""
from __future__ import annotations

import asyncio
import signal
from http import HTTPStatus

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from shared.config import Settings

PARSER_LIMIT = 8190  # aiohttp's limit on the request line and on each header, in bytes


class _JsonErrors(RequestHandler):
    """A request the parser refuses (a request line or header over the limit, a malformed one) never reaches
    the app's middlewares; aiohttp would answer it in plain text, quoting the raw request."""

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs it, and checks nothing was sent yet
        if status == HTTPStatus.BAD_REQUEST:
            text = (f"the request is malformed, or its request line or a header is longer than {PARSER_LIMIT} "
                    "bytes")
        else:
            text = HTTPStatus(status).phrase
        response = web.json_response({"detail": {"message": text}}, status=status)
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrors(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # the same object, with the connection handler above (no new state)
        return server


async def serve(app: web.Application, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM, then shut down like web.run_app."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = _Runner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        await stop.wait()
    finally:
        await runner.cleanup()


def run(settings: Settings, app: web.Application) -> None:
    asyncio.run(serve(app, settings.web_host, settings.web_port))
