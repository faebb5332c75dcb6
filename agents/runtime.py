"""The worker's connections and stores, opened once when the worker starts."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from shared.adapters.transient import is_transient
from shared.application.archiving import Report
from shared.application.pipeline import Pipeline
from shared.bootstrap import Needs, Stores, open_stores
from shared.config import Settings
from shared.domain.commands import Command
from shared.domain.events import Event
from streams.app import app

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    pipeline: Pipeline
    stores: Stores

    @property
    def redis(self) -> aioredis.Redis:
        assert self.stores.redis is not None
        return self.stores.redis

    @property
    def producer(self) -> AIOKafkaProducer:
        """Status and dead-letter messages go out on this idempotent producer (see shared/bootstrap.py)."""
        assert self.stores.producer is not None
        return self.stores.producer

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
    stores = await open_stores(settings, Needs(pool=(2, 16), archive=True, redis_timeout=1, producer=True,
                                               search_timeout=60))
    log.info("worker runtime open")
    # Users' status histories do not name the worker (its host and pid are the operator's business);
    # the worker's own log does, on every line.
    return Runtime(pipeline=stores.pipeline(), stores=stores)


@app.on_before_shutdown.connect
async def close_runtime(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
    """When the worker stops, after its agents: every store and client the runtime opened is closed (the
    pool waits for a shielded append still running)."""
    global _runtime
    runtime, _runtime = _runtime, None
    if runtime is not None:
        await runtime.stores.close()
