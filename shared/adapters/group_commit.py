"""Group commit and read coalescing: concurrent callers' items share one transaction or one query."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 — an item to write
R = TypeVar("R")  # what its writer is answered
K = TypeVar("K", bound=Hashable)  # a key to read
V = TypeVar("V")  # what is read for it

MAX_BATCH = 500


class GroupCommit(Generic[I, R]):
    """While one batch is being written, new items queue; when it commits, everything queued meanwhile is
    written as the next batch. A lone caller waits for one transaction, as before; under load a commit is
    shared by as many callers as arrived during the previous one, so throughput follows the load instead of
    the commit latency. One batch in flight at a time keeps the items' commit order their arrival order.

    `write` writes a batch in one transaction and answers one result per item, in order. When it raises
    and `item_error` says the error is one item's own (a constraint, a value the store cannot hold; it
    answers the exception that item's caller should get, else None), the batch rolled back as a whole, so
    each item is written alone and only the failing ones fail. Any other error (the store away) goes to
    every caller of the batch."""

    def __init__(self, write: Callable[[list[I]], Awaitable[list[R]]],
                 item_error: Callable[[Exception], Exception | None], max_batch: int = MAX_BATCH) -> None:
        self._write = write
        self._item_error = item_error
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

    async def _outcomes(self, items: list[I]) -> list[R | Exception]:
        try:
            return list(await self._write(items))
        except Exception as exc:
            own = self._item_error(exc)
            if own is None:
                raise
            if len(items) == 1:
                return [own]
        outcomes: list[R | Exception] = []
        for item in items:
            outcomes.extend(await self._outcomes([item]))
        return outcomes

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:self._max], self._queue[self._max:]
                try:
                    results = await self._outcomes([item for item, _ in batch])
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


class Coalesced(Generic[K, V]):
    """Concurrent reads of single keys as one query: while one query is in flight, the keys asked meanwhile
    queue and are read together by the next (GroupCommit's discipline, with `read_many` as the batch). Every
    caller's key is read by a query sent after it asked, so a caller sees everything committed before it
    asked, as with a query of its own; a lone caller waits for one query, as before. One batch's commands
    asking the same kind of thing cost one round trip instead of one each. A failure of the query (the store
    away) reaches every caller of the batch."""

    def __init__(self, read_many: Callable[[list[K]], Awaitable[dict[K, V]]]) -> None:
        self._read_many = read_many
        self._group: GroupCommit[K, V | None] = GroupCommit(self._read, lambda _: None)

    async def get(self, key: K) -> V | None:
        return await self._group.submit(key)

    async def _read(self, keys: list[K]) -> list[V | None]:
        found = await self._read_many(list(dict.fromkeys(keys)))
        return [found.get(key) for key in keys]
