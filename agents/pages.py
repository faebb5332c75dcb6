"""The worker's pages: internal ones only for the project's own processes (which share the secret); /metrics."""
from __future__ import annotations

import logging

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared import metrics
from shared.adapters.search.lag import COMMAND_TOPICS, EVENT_TOPICS, consumer_lag
from shared.tokens import INTERNAL_HEADER, is_internal
from streams.app import app, settings

log = logging.getLogger(__name__)


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


@app.page("/metrics")
async def metrics_page(self: View, request: Request) -> Response:
    """Prometheus text: the worker's counters and histograms, and the consumer lag read now. Counts only
    (bounded labels, no ids or names), so it is open like /ready."""
    try:
        lag = await consumer_lag(settings, COMMAND_TOPICS + EVENT_TOPICS)
    except Exception as exc:  # noqa: BLE001 — Kafka away: the counters are still worth answering
        log.warning("consumer lag unavailable: %s", exc)
    else:
        for topic, behind in lag["topics"].items():
            metrics.CONSUMER_LAG.labels(topic).set(behind)
        events = {settings.topic(n) for n in EVENT_TOPICS}
        metrics.PROJECTION_LAG.set(sum(v for t, v in lag["topics"].items() if t in events))
    return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])  # aiohttp adds the charset
