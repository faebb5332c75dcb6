"""The composition root: every store and client a process uses, built from Settings and closed together."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from elasticsearch import AsyncElasticsearch

from shared.adapters.archive import open_archive
from shared.adapters.document_stores import open_document_store
from shared.adapters.postgres.command_log import PostgresCommandLog
from shared.adapters.postgres.document_store import PostgresDocumentStore
from shared.adapters.postgres.event_store import PostgresEventStore
from shared.adapters.postgres.pool import Pool, create_pool
from shared.adapters.search import indices
from shared.adapters.search.versions import ElasticsearchSearchIndex
from shared.application.pipeline import Pipeline
from shared.application.submit import Submitter
from shared.config import BROKER_MESSAGE_BYTES, Settings
from shared.domain.commands import Command
from shared.ports import DocumentStore, EventArchive, SearchIndex


@dataclass(frozen=True)
class Needs:
    """What a process opens besides PostgreSQL and the document store (each process asks for its own)."""

    pool: tuple[int, int] = (1, 4)  # min, max connections
    command_timeout: float | None = None
    archive: bool = False
    redis_timeout: float | None = None  # Redis with this socket timeout, or none
    search_timeout: float | None = None  # Elasticsearch with this request timeout, or none
    producer: bool = False  # the idempotent Kafka producer (status and dead-letter messages)


@dataclass
class Stores:
    settings: Settings
    pool: Pool
    commands: PostgresCommandLog
    events: PostgresEventStore
    docs: DocumentStore
    archive: EventArchive | None = None
    redis: aioredis.Redis | None = None
    search: AsyncElasticsearch | None = None
    producer: AIOKafkaProducer | None = None
    _closing: AsyncExitStack = field(default_factory=AsyncExitStack)

    def command_topic(self, command: Command) -> str:
        return self.settings.topic(f"{command.channel}-commands")

    def event_topic(self, command: Command) -> str:
        return self.settings.topic(f"{command.channel}-events")

    def submitter(self, on_recorded: Callable[[Command], Awaitable[None]] | None = None) -> Submitter:
        return Submitter(self.commands, self.docs, self.command_topic, on_recorded)

    def search_index(self) -> SearchIndex | None:
        if self.search is None:
            return None
        return ElasticsearchSearchIndex(self.search, self.settings.namespace, self.events)

    def pipeline(self) -> Pipeline:
        assert self.archive is not None, "open the stores with Needs(archive=True)"
        return Pipeline(self.commands, self.events, self.docs, self.archive, self.event_topic,
                        dependency_wait=self.settings.dependency_wait_seconds, search=self.search_index(),
                        command_topic=self.command_topic, admin_user=self.settings.admin_user)

    async def close(self) -> None:
        await self._closing.aclose()


def status_subscriber(settings: Settings) -> aioredis.Redis:
    """A Redis connection of its own with no read timeout, for pub/sub: a subscriber is idle most of the time,
    and a timeout would drop and re-subscribe it, losing what is published in between."""
    return aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, health_check_interval=15)


async def open_stores(settings: Settings, needs: Needs) -> Stores:
    """Open what `needs` names; on a failure half-way, close what was opened and raise."""
    closing = AsyncExitStack()
    try:
        pool = await create_pool(settings.pg_dsn, min_size=needs.pool[0], max_size=needs.pool[1],
                                 command_timeout=needs.command_timeout)
        closing.push_async_callback(pool.close)
        docs = open_document_store(settings, pool)
        closing.push_async_callback(docs.close)
        # Documents in this PostgreSQL too: each append writes its documents in its own transaction.
        events = PostgresEventStore(pool, PostgresDocumentStore if isinstance(docs, PostgresDocumentStore) else None)
        stores = Stores(settings, pool, PostgresCommandLog(pool), events, docs, _closing=closing)
        if needs.archive:
            stores.archive = await open_archive(settings)
            closing.push_async_callback(stores.archive.close)
        if needs.redis_timeout is not None:
            client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=needs.redis_timeout,
                                             socket_connect_timeout=1)
            closing.push_async_callback(client.aclose)
            stores.redis = client
        if needs.search_timeout is not None:
            search = indices.client(settings, timeout=needs.search_timeout)
            closing.push_async_callback(search.close)
            stores.search = search
        if needs.producer:
            # A dead letter carries its command whole: as large as a command may be. Each send is awaited,
            # so one command's transitions reach the status topic in order (PROCESSING before COMPLETED).
            producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                        enable_idempotence=True, linger_ms=0, max_request_size=BROKER_MESSAGE_BYTES)
            await producer.start()
            closing.push_async_callback(producer.stop)
            stores.producer = producer
        return stores
    except BaseException:
        await closing.aclose()
        raise

