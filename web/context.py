"""What every handler reaches through the aiohttp app: stores, the submitter and status lookups."""
from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web
from elasticsearch import AsyncElasticsearch

from shared.adapters.live_push import Publisher
from shared.adapters.postgres.command_log import PostgresCommandLog
from shared.adapters.postgres.event_store import PostgresEventStore
from shared.adapters.postgres.pool import Pool
from shared.application.submit import Submitter
from shared.config import Settings
from shared.ports import DocumentStore, EventArchive, SearchIndex


@dataclass
class Services:
    settings: Settings
    pool: Pool
    commands: PostgresCommandLog
    events: PostgresEventStore
    docs: DocumentStore
    submitter: Submitter
    http: aiohttp.ClientSession
    redis: aioredis.Redis
    live: Publisher  # pipelined publishes on `redis` (each submission's PENDING push)
    search: AsyncElasticsearch | None = None  # the search read model (routes_search)
    search_index: SearchIndex | None = None  # the same, as reconciliation reads it
    archive: EventArchive | None = None


SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


def actor(request: web.Request) -> str:
    """The caller, as the verified bearer token names them (never taken from a request body)."""
    return str(request["user"])
