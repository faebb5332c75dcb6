"""Rebuild one database's indices from the event store into fresh indices, then swap the aliases atomically.

Search keeps answering from the old indices during the rebuild. The database's events are read in position
order with `PostgresEventStore.read(db, after_position, limit)` and bulk-indexed with external versions, so
the live projector writing to the old indices meanwhile, and an event projected twice, are harmless. Then
what committed after each pass's mark (`PostgresEventStore.since`) is projected, before the swap until
nothing new came, and once more after it.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from elasticsearch import AsyncElasticsearch

from shared.adapters.postgres.event_store import PostgresEventStore
from shared.adapters.search import indices
from shared.adapters.search.projector import Projector, Stats
from shared.chunks import chunked
from shared.ports import Mark

CATCH_UP_PASSES = 5

Progress = Callable[[int, int], None]


@dataclass
class RebuildResult:
    db: str
    indices: dict[str, str] = field(default_factory=dict)
    replaced: list[str] = field(default_factory=list)
    events_projected: int = 0
    seconds: float = 0.0
    stats: Stats = field(default_factory=Stats)
    exists: bool = True

    @property
    def rate(self) -> float:
        """Events of this database projected per second."""
        return self.events_projected / self.seconds if self.seconds else 0.0


class RebuildProjector(Projector):
    """Writes into the fresh concrete indices; a deleted database empties them (recreated if it returns)."""

    def __init__(self, es: AsyncElasticsearch, namespace: str, db: str, fresh: dict[str, str]) -> None:
        super().__init__(es, namespace)
        self.db, self.fresh, self.exists = db, fresh, False

    def target(self, db: str, kind: str) -> str:
        return self.fresh[kind]

    async def open_database(self, db: str, created: bool) -> bool:
        if created and not self.exists:
            # Both at once: each creation waits for its shard to start.
            await asyncio.gather(*(indices.create_index(self.es, name, kind, unserved=True)
                                   for kind, name in self.fresh.items()))
            self.exists = True
        return self.exists

    async def close_database(self, db: str) -> None:
        for name in self.fresh.values():
            await self.es.indices.delete(index=name, ignore_unavailable=True)
        self.exists = False
        self.classes.clear()


async def _first_pass(store: PostgresEventStore, projector: RebuildProjector, result: RebuildResult, head: int,
                      batch: int, progress: Progress | None) -> None:
    """Apply the database's events up to position `head`, page by page. One page at a time: reading the next
    one meanwhile, or two bulk requests at once, cost more than they saved (measured with bench/replay.py)."""
    after = 0
    while after < head:
        events = await store.read(result.db, after, batch)
        if not events:
            break
        result.stats.add(await projector.apply(events))
        result.events_projected += len(events)
        after = events[-1].position or after
        if progress is not None:
            progress(min(after, head), head)


async def _since(store: PostgresEventStore, projector: RebuildProjector, result: RebuildResult, mark: Mark,
                 batch: int) -> int:
    """Apply what committed after `mark`; returns how many events that was."""
    applied = 0
    async for events in chunked(store.since(result.db, mark), batch):
        result.stats.add(await projector.apply(events))
        applied += len(events)
    result.events_projected += applied
    return applied


async def rebuild(es: AsyncElasticsearch, store: PostgresEventStore, namespace: str, db: str, *,
                  batch: int = 2000, progress: Progress | None = None) -> RebuildResult:
    """Project every event of `db` into fresh indices, swap both aliases in one request, drop the old ones."""
    started = time.perf_counter()
    result = RebuildResult(db=db)
    fresh = {kind: indices.fresh_index(namespace, db, kind) for kind in indices.KINDS}
    result.indices = fresh
    projector = RebuildProjector(es, namespace, db, fresh)
    # Each pass projects what committed after the previous pass's mark (the first: everything the mark saw,
    # by position), so nothing is projected twice but what commits between a mark and its own read. A
    # transaction that committed late under a lower position than ones already read is found by `since`.
    mark = await store.mark()
    try:
        await _first_pass(store, projector, result, mark.head, batch, progress)
        for _ in range(CATCH_UP_PASSES):  # bounded: under a steady write load the swap comes anyway
            newer = await store.mark()
            caught_up = await _since(store, projector, result, mark, batch)
            mark = newer
            if not caught_up:
                break
        result.seconds = time.perf_counter() - started  # reading and indexing, before the swap
        aliases = {kind: indices.alias(namespace, db, kind) for kind in indices.KINDS}
        old = {kind: await indices.behind(es, name) for kind, name in aliases.items()}
        result.replaced = sorted(n for names in old.values() for n in names)
        if projector.exists:
            await indices.serve(es, list(fresh.values()))
            actions: list[dict[str, object]] = []
            for kind, name in aliases.items():
                actions.append({"add": {"index": fresh[kind], "alias": name}})
                actions += [{"remove_index": {"index": o}} for o in old[kind] if o != fresh[kind]]
            await es.indices.update_aliases(actions=actions)
            # What committed after the last mark may have reached the old indices only (the live projector
            # writes through the aliases).
            if await _since(store, projector, result, mark, batch):  # searchable now, not at the next refresh
                await es.indices.refresh(index=",".join(fresh.values()))
        else:  # the database is deleted at the end of the log: nothing to serve
            result.exists = False
            await indices.drop_database(es, namespace, db)
    except BaseException:
        for name in fresh.values():
            if name not in await _all_behind(es, namespace, db):
                await es.indices.delete(index=name, ignore_unavailable=True)
        raise
    return result


async def _all_behind(es: AsyncElasticsearch, namespace: str, db: str) -> list[str]:
    return [n for kind in indices.KINDS for n in await indices.behind(es, indices.alias(namespace, db, kind))]
