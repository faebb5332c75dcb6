"""The relay's own HTTP port: GET /metrics (Prometheus text, with the outbox backlog read when scraped)."""
from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared import metrics
from shared.adapters.postgres.pool import connect
from shared.config import Settings

log = logging.getLogger(__name__)
BACKLOG = "SELECT count(*) FROM outbox WHERE published_at IS NULL"


async def serve_metrics(settings: Settings) -> web.AppRunner | None:
    """Start serving on 127.0.0.1:settings.relay_port; None (and a warning) when the port is taken: the relay
    relays without it."""
    async def page(request: web.Request) -> web.Response:
        try:
            conn = await connect(settings.pg_dsn)
            try:
                metrics.RELAY_BACKLOG.set(await conn.fetchval(BACKLOG))
            finally:
                await conn.close()
        except Exception as exc:  # noqa: BLE001 — PostgreSQL away: the counters are still worth answering
            log.warning("outbox backlog unavailable: %s", exc)
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.worker_bind, settings.relay_port).start()
    except OSError as exc:
        log.warning("relay metrics not served on port %d: %s", settings.relay_port, exc)
        await runner.cleanup()
        return None
    return runner
