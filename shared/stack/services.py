"""Start and stop the whole local stack (PostgreSQL, Redis, Kafka) together."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from shared.config import Settings
from shared.stack import elasticsearch, kafka, postgres, redis, s3
from shared.stack.process import StackError


async def up(settings: Settings) -> None:
    """Start them all concurrently (each finishes even if another fails); idempotent, fast when running.

    versitygw starts only when it is the configured archive endpoint (see s3.enabled).
    """
    results = await asyncio.gather(
        postgres.start(settings), redis.start(settings), kafka.start(settings), elasticsearch.start(settings),
        *([s3.start(settings)] if s3.enabled(settings) else []), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise StackError("\n\n".join(str(e) for e in errors)) from errors[0]


def down(settings: Settings) -> None:
    """Stop them all (concurrently, each with its own bounded graceful wait)."""
    with ThreadPoolExecutor(5) as pool:
        for f in [pool.submit(m.stop, settings) for m in (s3, kafka, redis, postgres, elasticsearch)]:
            f.result()


def status(settings: Settings) -> dict[str, bool]:
    """Which services are running."""
    return {m.__name__.rsplit(".", 1)[1]: m.is_running(settings) for m in (postgres, redis, kafka, s3, elasticsearch)}
