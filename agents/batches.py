"""Taking a batch from a queue: what is ready, up to a count, waiting a little for more."""
from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")


async def fill(queue: asyncio.Queue[T], first: T, limit: int, within: float) -> list[T]:
    """`first` and what follows it: everything ready, and what arrives within `within` seconds, up to
    `limit` items."""
    loop = asyncio.get_running_loop()
    batch = [first]
    deadline = loop.time() + within
    while len(batch) < limit:
        if queue.empty():
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                # Queue.get loses nothing when cancelled here: an item stays queued until get_nowait takes it.
                batch.append(await asyncio.wait_for(queue.get(), left))
            except TimeoutError:
                break
        else:
            batch.append(queue.get_nowait())
    return batch
