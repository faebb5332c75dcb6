"""Rebuild one database's indices from the event store into fresh indices, then swap the aliases atomically.

Search keeps answering from the old indices during the rebuild. The database's events are read in position
order with `PostgresEventStore.read(db, after_position, limit)` and bulk-indexed with external versions, so
the live projector writing to the old indices meanwhile, and a second pass over the same events, are harmless;
after the swap, what was committed since the rebuild began (`PostgresEventStore.since`) is projected again.
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
from shared.domain.events import Event

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


async def _pass(store: PostgresEventStore, projector: RebuildProjector, result: RebuildResult, after: int,
                until: int | None, batch: int, progress: Progress | None, head: int) -> int:
    """Apply the database's events after `after` (up to `until` when given); returns the last position.
    One page at a time: reading the next one meanwhile, or two bulk requests at once, cost more than they
    saved (measured with bench/replay.py)."""
    while until is None or after < until:
        events = await store.read(result.db, after, batch)
        if not events:
            break
        result.stats.add(await projector.apply(events))
        result.events_projected += len(events)
        after = events[-1].position or after
        if progress is not None:
            progress(min(after, head), head)
    return after


async def rebuild(es: AsyncElasticsearch, store: PostgresEventStore, namespace: str, db: str, *,
                  batch: int = 2000, progress: Progress | None = None) -> RebuildResult:
    """Project every event of `db` into fresh indices, swap both aliases in one request, drop the old ones."""
    started = time.perf_counter()
    result = RebuildResult(db=db)
    fresh = {kind: indices.fresh_index(namespace, db, kind) for kind in indices.KINDS}
    result.indices = fresh
    projector = RebuildProjector(es, namespace, db, fresh)
    # Taken before the first read: after the swap, whatever committed after it is projected again.
    mark = await store.mark()
    head = mark.head
    try:
        after = await _pass(store, projector, result, 0, head, batch, progress, head)
        for _ in range(CATCH_UP_PASSES):  # bounded: under a steady write load the swap comes anyway
            before = after
            after = await _pass(store, projector, result, after, None, batch, None, head)
            if after == before:
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
            # The passes read by position, so a transaction that committed late under a lower position than
            # ones already read was missed, and the live projector may have put it into the old indices only.
            late: list[Event] = []
            again = 0
            async for event in store.since(db, mark):
                late.append(event)
                if len(late) == batch:
                    await projector.apply(late)
                    again, late = again + len(late), []
            if late:
                await projector.apply(late)
                again += len(late)
            if again:  # searchable now, not at the next periodic refresh
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
