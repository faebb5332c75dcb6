"""Start and stop the whole local stack (PostgreSQL, Redis, Kafka) together."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from shared.config import Settings
from shared.stack import kafka, postgres, redis
from shared.stack.process import StackError


async def up(settings: Settings) -> None:
    """Start all three concurrently (each finishes even if another fails); idempotent, fast when running."""
    results = await asyncio.gather(
        postgres.start(settings), redis.start(settings), kafka.start(settings), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise StackError("\n\n".join(str(e) for e in errors)) from errors[0]


def down(settings: Settings) -> None:
    """Stop all three (concurrently, each with its own bounded graceful wait)."""
    with ThreadPoolExecutor(3) as pool:
        for f in [pool.submit(m.stop, settings) for m in (kafka, redis, postgres)]:
            f.result()


def status(settings: Settings) -> dict[str, bool]:
    """Which services are running."""
    return {m.__name__.rsplit(".", 1)[1]: m.is_running(settings) for m in (postgres, redis, kafka)}
