"""Live pushes on Redis pub/sub: concurrent publishes go out as one pipelined round trip."""
from __future__ import annotations

import redis.asyncio as aioredis

from shared.adapters.group_commit import GroupCommit


class Publisher:
    """Each caller is answered once its message is published; the messages of callers that arrive while a
    round trip is in flight go out together in the next, in arrival order (one Redis connection delivers
    them in that order). A Redis failure reaches every caller of that round trip."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._group: GroupCommit[tuple[str, str], None] = GroupCommit(self._publish_all, lambda _: None)

    async def publish(self, channel: str, message: str) -> None:
        await self._group.submit((channel, message))

    async def _publish_all(self, items: list[tuple[str, str]]) -> list[None]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel, message in items:
                pipe.publish(channel, message)
            await pipe.execute()
        return [None] * len(items)
