"""The documents replay on PostgreSQL: a new set swapped in, and what commits while it reads is not lost."""
from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from typing import Any

from shared.adapters.postgres.document_store import PostgresDocumentStore
from shared.adapters.postgres.event_store import PostgresEventStore
from shared.adapters.postgres.pool import Pool
from shared.application.apply import apply_events
from shared.application.reconcile import reconcile
from shared.application.replay import run_replay
from shared.domain.commands import AggregateType, Command, CommandType
from shared.domain.events import Event, EventType, event_for
from shared.domain.status import StatusUpdate
from tests.contracts.document_store import class_doc, instance_doc


def instance_event(db: str, instance_id: str, version: int, **data: Any) -> Event:
    command = Command(command_type=CommandType.UPDATE_INSTANCE if version > 1 else CommandType.CREATE_INSTANCE,
                      aggregate_id=instance_id, db_name=db, actor="alice")
    return event_for(command, EventType.INSTANCE_UPDATED if version > 1 else EventType.INSTANCE_CREATED, version,
                     instance_doc(instance_id, "Item", version, **data))


class WriteWhileReading(PostgresEventStore):
    """The real store; while the replay reads the instances' newest events, another command commits an event
    and its document (as the pipeline would, in another partition): the interleaving the replay must survive."""

    def __init__(self, pool: Pool, docs: PostgresDocumentStore, concurrent: Event) -> None:
        super().__init__(pool)
        self.docs, self.concurrent = docs, concurrent

    async def latest(self, db_name: str, aggregate_type: AggregateType) -> AsyncGenerator[Event, None]:
        async for event in super().latest(db_name, aggregate_type):
            yield event
            if aggregate_type is AggregateType.INSTANCE and self.concurrent.version is not None:
                stored = await self.append(self.concurrent, "t")
                await apply_events(self.docs, [stored])
                self.concurrent = self.concurrent.model_copy(update={"version": None})


async def test_a_replay_swaps_in_what_the_events_say_and_keeps_what_committed_meanwhile(pool: Pool) -> None:
    db = f"rb-{uuid.uuid4().hex[:8]}"
    docs = PostgresDocumentStore(pool)
    creator = Command(command_type=CommandType.CREATE_DATABASE, aggregate_id=db, db_name=db, actor="alice")
    cls = Command(command_type=CommandType.CREATE_ONTOLOGY_CLASS, aggregate_id="Item", db_name=db, actor="alice")
    history = [event_for(creator, EventType.DATABASE_CREATED, 1, {"name": db, "version": 1}),
               event_for(cls, EventType.ONTOLOGY_CLASS_CREATED, 1, class_doc("Item", 1)),
               *(instance_event(db, f"i{n}", 1, n=n) for n in range(1, 4))]
    plain = PostgresEventStore(pool)
    for event in history:
        await apply_events(docs, [await plain.append(event, "t")])
    # Behind the system's back: one document drifted, one with no event at all.
    await pool.execute("UPDATE docs.instances SET doc = jsonb_set(doc, '{data,n}', '22'), version = 9"
                       " WHERE db_name = $1 AND instance_id = 'i2'", db)
    await docs.put_instances(db, [instance_doc("stray", "Item", 1, n=0)])
    events = WriteWhileReading(pool, docs, instance_event(db, "i3", 2, n=33))
    updates: list[StatusUpdate] = []

    async def report(update: StatusUpdate) -> None:
        updates.append(update)

    command = Command(command_type=CommandType.APPROVE_REPLAY, aggregate_id=str(uuid.uuid4()), db_name=db,
                      actor="alice")
    result = await run_replay(command, ["documents"], events, docs, None, report)

    assert (await docs.get_instance(db, "i2") or {}).get("data") == {"n": 2}  # the drift put back
    assert await docs.get_instance(db, "stray") is None  # what no event stands for is gone
    i3 = await docs.get_instance(db, "i3") or {}
    assert (i3.get("version"), i3.get("data")) == (2, {"n": 33})  # committed while the replay read: kept
    assert result["objects"] == 4 and updates, result
    after = await reconcile(db, plain, docs, None, None)
    assert after.drift == [] and after.checksums["documents"] == after.checksums["events"]


async def test_since_finds_a_transaction_that_committed_after_the_mark_under_a_lower_position(pool: Pool) -> None:
    """A transaction open when the mark was taken holds a position below one already committed: `since` still
    reads it, because the mark's snapshot did not see it, not because of its position."""
    store, db = PostgresEventStore(pool), f"rb-{uuid.uuid4().hex[:8]}"
    late = instance_event(db, "late", 1, n=1)
    async with pool.acquire() as conn, conn.transaction():
        position = await conn.fetchval(
            """INSERT INTO events (event_id, event_type, aggregate_type, aggregate_id, db_name, version, command_id,
                                   actor, occurred_at, data)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING position""",
            late.event_id, late.event_type.value, late.aggregate_type.value, late.aggregate_id, db, late.version,
            late.command_id, late.actor, late.occurred_at, late.data)
        early = await store.append(instance_event(db, "early", 1, n=2), "t")
        mark = await store.mark()
    assert early.position is not None and position < early.position <= mark.head
    assert [e.aggregate_id async for e in store.since(db, mark)] == ["late"]
