"""Projection agent: database, ontology and instance events into the Elasticsearch search read model."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict
from typing import Any

from faust.web import Request, Response, View
from pydantic import ValidationError

from agents.batches import fill
from agents.pages import refused
from agents.runtime import open_runtime
from shared import metrics
from shared.adapters.search import indices
from shared.adapters.search.lag import EVENT_TOPICS, projection_lag
from shared.adapters.search.projector import ProjectionError, Projector, Stats
from shared.domain.events import Event
from streams.app import app, settings
from streams.topics import projection_dead_letters

log = logging.getLogger(__name__)

BATCH = 500
WITHIN = 0.05  # seconds to wait for a batch to fill (under load batches fill while a bulk is in flight)
ATTEMPTS = 8  # then the events go to the projection dead-letter topic with their error
BACKOFF = 0.2  # first retry delay, doubled each time ...
BACKOFF_CAP = 10.0  # ... up to this (about 35 s over all attempts)

event_topics = app.topic(*(settings.topic(t) for t in EVENT_TOPICS), key_type=str, value_type=bytes,
                         key_serializer="raw", value_serializer="raw")

STATS = Stats()  # since this worker started
_state: dict[str, Any] = {"batches": 0, "last_batch_at": None}
_projector: Projector | None = None


async def projector() -> Projector:
    global _projector
    if _projector is None:
        runtime = await open_runtime(settings)
        _projector = Projector(indices.client(settings), settings.namespace, events=runtime.pipeline.events)
    return _projector


def backoff(attempt: int) -> float:
    return float(min(BACKOFF_CAP, BACKOFF * 2 ** (attempt - 1)))


async def dead_letter(value: Any, key: Any, topic: str, error: str, attempts: int) -> None:
    runtime = await open_runtime(settings)
    raw = value.decode(errors="replace") if isinstance(value, bytes | bytearray) else str(value)
    try:
        event: Any = json.loads(raw)
    except ValueError:
        event = raw
    body = {"error": error, "event": event, "topic": topic, "attempts": attempts}
    key_bytes = key if isinstance(key, bytes) else str(key or "").encode()
    await runtime.producer.send_and_wait(projection_dead_letters.get_topic_name(), json.dumps(body).encode(),
                                         key=key_bytes)
    STATS.dead_lettered += 1
    metrics.DEAD_LETTERS.labels("projection").inc()
    log.error("projection dead-lettered an event from %s after %d attempt(s): %s", topic, attempts, error)


async def project(items: list[tuple[Any, Any, str]]) -> None:
    """Apply (value, key, topic) messages; retry failures with backoff, then dead-letter them."""
    pending: list[tuple[Event, Any, str]] = []
    for value, key, topic in items:
        try:
            pending.append((Event.model_validate_json(value), key, topic))
        except ValidationError as exc:
            await dead_letter(value, key, topic, f"undecodable event: {exc}", 0)
    origin = {id(e): (k, t) for e, k, t in pending}
    events = [e for e, _, _ in pending]
    errors: dict[int, str] = {}
    for attempt in range(1, ATTEMPTS + 1):
        try:
            STATS.add(await (await projector()).apply(events))
            return
        except ProjectionError as exc:
            STATS.add(exc.stats)
            events = [e for e, _ in exc.failures]
            errors = {id(e): msg for e, msg in exc.failures}
        except Exception as exc:  # noqa: BLE001 — Elasticsearch unreachable, a bug: retried, then dead-lettered
            errors = {id(e): f"{type(exc).__name__}: {exc}" for e in events}
        if attempt < ATTEMPTS:
            log.warning("projection attempt %d failed for %d event(s), retrying in %.1fs: %s", attempt,
                        len(events), backoff(attempt), next(iter(errors.values()), ""))
            await asyncio.sleep(backoff(attempt))
    for event in events:
        key, topic = origin[id(event)]
        await dead_letter(json.dumps(event.to_message()).encode(), key, topic, errors.get(id(event), "failed"),
                          ATTEMPTS)


async def collect(queue: asyncio.Queue[Any], feeder: asyncio.Task[None]) -> list[Any]:
    """Up to BATCH events: wait for the first, then at most WITHIN seconds for more."""
    first = None
    while first is None and not feeder.done():
        try:
            first = await asyncio.wait_for(queue.get(), 1.0)
        except TimeoutError:
            continue
    if first is None:
        return []
    return await fill(queue, first, BATCH, WITHIN)


@app.agent(event_topics)
async def projection_agent(stream: Any) -> None:
    manual = stream.noack()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=BATCH * 2)

    async def feed() -> None:
        async for event in manual.events():
            await queue.put(event)

    feeder = asyncio.ensure_future(feed())
    try:
        while not feeder.done():
            batch = await collect(queue, feeder)
            if not batch:
                continue
            await project([(e.value, e.key, e.message.topic) for e in batch])
            # Acknowledged only now: the batch is in Elasticsearch or in the dead-letter topic. A worker
            # stopped mid-batch leaves it unacknowledged, to be delivered again (harmless: external versions).
            for event in batch:
                await manual.ack(event)
            _state["batches"] += 1
            _state["last_batch_at"] = time.time()
    finally:
        feeder.cancel()
        if feeder.done() and not feeder.cancelled() and feeder.exception() is not None:
            log.error("projection feeder stopped: %r", feeder.exception())


@app.page("/projection/lag")
async def lag_page(self: View, request: Request) -> Response:
    """Events the projection has not committed yet (all workers of the group) and this worker's counters."""
    denied = refused(self, request)
    if denied is not None:
        return denied
    try:
        body = await projection_lag(settings)
    except Exception as exc:  # noqa: BLE001 — Kafka unreachable: say so instead of a 500 page
        return self.json({"detail": {"message": f"lag unavailable: {exc}"}}, status=503)
    return self.json({**body, "worker": {**asdict(STATS), **_state}})
