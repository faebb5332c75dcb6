"""Group commit: concurrent writers' items coalesce into one transaction, each caller answered after it."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 — an item to write
R = TypeVar("R")  # what its writer is answered

MAX_BATCH = 500


class GroupCommit(Generic[I, R]):
    """While one batch is being written, new items queue; when it commits, everything queued meanwhile is
    written as the next batch. A lone caller waits for one transaction, as before; under load a commit is
    shared by as many callers as arrived during the previous one, so throughput follows the load instead of
    the commit latency. One batch in flight at a time keeps the items' commit order their arrival order.

    `write` gets a batch and answers one outcome per item, in order: its result, or the exception that item
    alone raises. When `write` itself raises, every caller of that batch gets the exception (nothing of the
    batch is committed: it is one transaction)."""

    def __init__(self, write: Callable[[list[I]], Awaitable[list[R | Exception]]],
                 max_batch: int = MAX_BATCH) -> None:
        self._write = write
        self._max = max_batch
        self._queue: list[tuple[I, asyncio.Future[R]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def submit(self, item: I) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._draining is None:
            # Its own task, not this caller's: a caller that is cancelled (client gone) must not cut short a
            # transaction that carries other callers' items.
            self._draining = asyncio.create_task(self._drain())
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:self._max], self._queue[self._max:]
                try:
                    results = await self._write([item for item, _ in batch])
                except Exception as exc:  # noqa: BLE001 — handed to every caller of the batch
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), outcome in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, Exception):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._draining = None
