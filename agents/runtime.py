"""The worker's connections and stores, opened once when the worker starts."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from shared.adapters.archive import open_archive
from shared.adapters.document_stores import open_document_store
from shared.adapters.postgres.command_log import PostgresCommandLog
from shared.adapters.postgres.event_store import PostgresEventStore
from shared.adapters.postgres.pool import Pool, create_pool
from shared.adapters.transient import is_transient
from shared.application.archiving import Report
from shared.application.pipeline import Pipeline
from shared.config import BROKER_MESSAGE_BYTES, Settings
from shared.domain.commands import Command
from shared.domain.events import Event

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    pool: Pool
    redis: aioredis.Redis
    pipeline: Pipeline
    # Status and dead-letter messages go out on this idempotent producer, each send awaited, so one
    # command's transitions reach the status topic in order (PROCESSING before COMPLETED).
    producer: AIOKafkaProducer

    async def execute(self, command: Command, report: Report) -> Event:
        return await self.pipeline.execute(command, report)


_runtime: Runtime | None = None
_opening = asyncio.Lock()


async def open_runtime(settings: Settings) -> Runtime:
    global _runtime
    if _runtime is not None:
        return _runtime
    # Several agents ask at once when the worker starts: one opens, the others wait for it (two
    # runtimes would leave one producer unreferenced, and its sends would never complete).
    async with _opening:
        delay = 0.2
        while _runtime is None:
            try:
                _runtime = await _open(settings)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                # A store or the broker is away (e.g. the worker started before PostgreSQL): wait for
                # it rather than fail every command handed to this worker meanwhile.
                log.warning("worker runtime not open yet (%s: %s), retrying in %.1fs", type(exc).__name__,
                            exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
    return _runtime


async def _open(settings: Settings) -> Runtime:
    log.info("opening the worker runtime")
    pool = await create_pool(settings.pg_dsn, min_size=2, max_size=16)
    try:
        return await _open_with(settings, pool)
    except BaseException:
        await pool.close()
        raise


async def _open_with(settings: Settings, pool: Pool) -> Runtime:
    commands = PostgresCommandLog(pool)

    def event_topic(command: Command) -> str:
        return settings.topic(f"{command.channel}-events")

    events, docs = PostgresEventStore(pool), open_document_store(settings, pool)
    # Users' status histories do not name the worker (its host and pid are the operator's business);
    # the worker's own log does, on every line.
    pipeline = Pipeline(commands, events, docs, await open_archive(settings), event_topic,
                        dependency_wait=settings.dependency_wait_seconds)
    client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=1, socket_connect_timeout=1)
    # A dead letter carries its command whole: as large as a command may be.
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=0, max_request_size=BROKER_MESSAGE_BYTES)
    await producer.start()
    log.info("worker runtime open")
    return Runtime(pool=pool, redis=client, pipeline=pipeline, producer=producer)
