"""The PostgreSQL adapters pass their port contracts, and the database refuses to rewrite history."""
from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from shared.adapters.postgres.command_log import PostgresCommandLog
from shared.adapters.postgres.document_store import PostgresDocumentStore
from shared.adapters.postgres.event_store import PostgresEventStore
from shared.adapters.postgres.pool import Pool
from shared.application.apply import apply_events
from shared.domain.commands import AggregateType
from shared.domain.events import Event
from shared.ports import CommandLog, DocumentStore, EventStore
from tests.contracts.command_log import CommandLogContract, make_command
from tests.contracts.document_store import DocumentStoreContract, class_doc
from tests.contracts.event_store import EventStoreContract, make_event


class TestPostgresDocumentStore(DocumentStoreContract):
    @pytest.fixture
    def store(self, pool: Pool) -> DocumentStore:
        return PostgresDocumentStore(pool)


class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture
    def store(self, pool: Pool) -> EventStore:
        return PostgresEventStore(pool)


class TestPostgresCommandLog(CommandLogContract):
    @pytest.fixture
    def log(self, pool: Pool) -> CommandLog:
        return PostgresCommandLog(pool)


@pytest.mark.parametrize("statement", [
    "UPDATE commands SET actor = 'mallory'", "DELETE FROM commands", "TRUNCATE commands",
    "UPDATE events SET actor = 'mallory'", "DELETE FROM events", "TRUNCATE events",
])
async def test_command_log_and_event_store_are_append_only(pool: Pool, statement: str) -> None:
    await PostgresCommandLog(pool).record(make_command(), "t")
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await pool.execute(statement)


async def test_command_and_outbox_row_are_one_transaction(pool: Pool) -> None:
    before = await pool.fetchval("SELECT count(*) FROM outbox")
    command = make_command()
    await PostgresCommandLog(pool).record(command, "topic-x")
    row = await pool.fetchrow("SELECT topic, key FROM outbox ORDER BY id DESC LIMIT 1")
    assert (row["topic"], row["key"]) == ("topic-x", command.stream_key)
    assert await pool.fetchval("SELECT count(*) FROM outbox") == before + 1


async def test_concurrent_records_share_transactions_and_each_stands_alone(pool: Pool) -> None:
    """200 concurrent records through one log (group-committed): every command stored once with its one
    outbox row in submission order; a reused idempotency key answers the first command, even within one
    batch; a command the database cannot hold (a NUL in its payload) fails alone."""
    log = PostgresCommandLog(pool)
    commands = [make_command(key=f"k{i // 2}" if i < 20 else None) for i in range(200)]
    commands = [c.model_copy(update={"actor": "batcher-" + commands[0].aggregate_id}) for c in commands]
    bad = make_command().model_copy(update={"payload": {"name": "nul\u0000byte"}})
    outcomes = await asyncio.gather(*(log.record(c, "topic-g") for c in [*commands, bad]), return_exceptions=True)
    assert isinstance(outcomes[-1], asyncpg.PostgresError)
    answers = outcomes[:-1]
    for i, (command, answer) in enumerate(zip(commands, answers, strict=True)):
        assert not isinstance(answer, BaseException), answer
        stored, created = answer
        if i < 20 and i % 2:  # the second of a pair sharing a key
            assert (stored.command_id, created) == (commands[i - 1].command_id, False)
        else:
            assert (stored, created) == (command, True)
    created_ids = [c.command_id for i, c in enumerate(commands) if not (i < 20 and i % 2)]
    rows = await pool.fetch("SELECT command_id FROM outbox WHERE command_id = ANY($1::uuid[]) ORDER BY id",
                            created_ids)
    assert [r["command_id"] for r in rows] == created_ids
    assert await log.get(bad.command_id) is None


class CountingPool(Pool):
    """The real pool, counting the queries that read rows."""

    fetches = 0

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        self.fetches += 1
        return await super().fetch(query, *args)


async def test_concurrent_reads_coalesce_and_each_sees_what_was_committed_before_it_asked(
        database: str) -> None:
    """100 concurrent reads of one kind (a batch's commands asking their versions, their commands, their
    classes) are a handful of queries, each caller answered for its own key; a read asked after a write
    committed sees the write even while an earlier read of the same kind is in flight."""
    pool = CountingPool(database, max_size=4)
    try:
        events, docs, log = PostgresEventStore(pool), PostgresDocumentStore(pool), PostgresCommandLog(pool)
        ids = [f"K{uuid.uuid4().hex[:8]}" for _ in range(100)]
        await asyncio.gather(*(events.append(make_event(a, 1), "t") for a in ids[::2]))
        commands = [make_command() for _ in range(100)]
        await asyncio.gather(*(log.record(c, "t") for c in commands[::2]))
        await asyncio.gather(*(docs.put_class("contract", class_doc(a, 1)) for a in ids[::3]))
        pool.fetches = 0
        versions, stored, classes = await asyncio.gather(
            asyncio.gather(*(events.last_version("contract", AggregateType.ONTOLOGY_CLASS, a) for a in ids)),
            asyncio.gather(*(log.get(c.command_id) for c in commands)),
            asyncio.gather(*(docs.get_class("contract", a) for a in ids)))
        assert list(versions) == [1 - i % 2 for i in range(100)]
        assert [s.command_id if s else None for s in stored] == [
            c.command_id if i % 2 == 0 else None for i, c in enumerate(commands)]
        assert [c["class_id"] if c else None for c in classes] == [a if i % 3 == 0 else None
                                                                  for i, a in enumerate(ids)]
        assert pool.fetches <= 6, pool.fetches  # one query per kind, two while the first is in flight

        late = ids[1]
        in_flight = asyncio.ensure_future(events.last_version("contract", AggregateType.ONTOLOGY_CLASS, late))
        await events.append(make_event(late, 1), "t")
        after = await events.last_version("contract", AggregateType.ONTOLOGY_CLASS, late)
        assert (await in_flight, after) in ((0, 1), (1, 1))
    finally:
        await pool.close()


async def test_events_and_their_documents_commit_together_and_a_refused_document_fails_alone(pool: Pool) -> None:
    """With the documents in PostgreSQL, an append writes its documents in its own transaction (a batch's
    appends share it): after the append the document is there; a document the database refuses leaves
    its event unstored too, and only that append fails, not the others committed with it."""
    docs = PostgresDocumentStore(pool)
    events = PostgresEventStore(pool, PostgresDocumentStore)
    assert events.writes_documents

    async def refused(store: DocumentStore, stored: list[Event]) -> None:
        await store.put_class("contract", {"class_id": "nul\u0000byte", "version": 1})

    ids = [f"J{uuid.uuid4().hex[:8]}" for _ in range(20)]
    good = [make_event(a, 1) for a in ids]
    bad = make_event(f"J{uuid.uuid4().hex[:8]}", 1)
    outcomes = await asyncio.gather(*(events.append(e, "t", apply_events) for e in good),
                                    events.append(bad, "t", refused), return_exceptions=True)
    assert isinstance(outcomes[-1], asyncpg.PostgresError), outcomes[-1]
    assert all(isinstance(o, Event) for o in outcomes[:-1]), outcomes
    assert [(await docs.get_class("contract", a) or {}).get("version") for a in ids] == [1] * 20
    assert await events.for_command(bad.command_id) == []
    assert await events.last_version("contract", AggregateType.ONTOLOGY_CLASS, bad.aggregate_id) == 0


async def test_a_create_whose_event_is_the_newest_still_counts_as_on_its_way(pool: Pool) -> None:
    """Between a create's append and its document write (wide with TerminusDB) a submission naming the
    aggregate must not hear that it does not exist; once it is deleted again, it does."""
    from shared.domain.commands import utcnow
    from shared.domain.events import Event, EventType

    log, events = PostgresCommandLog(pool), PostgresEventStore(pool)
    command = make_command()
    await log.record(command, "t")

    def event(kind: EventType, version: int) -> Event:
        return Event(event_id=uuid.uuid4(), event_type=kind, aggregate_type=command.aggregate_type,
                     aggregate_id=command.aggregate_id, db_name=command.db_name, version=version,
                     command_id=command.command_id if version == 1 else uuid.uuid4(), actor="t",
                     occurred_at=utcnow(), data={})

    await events.append(event(EventType.DATABASE_CREATED, 1), "t")
    assert await log.pending_creates(command.db_name, [command.aggregate_id]) == {command.aggregate_id}
    await events.append(event(EventType.DATABASE_DELETED, 2), "t")
    assert await log.pending_creates(command.db_name, [command.aggregate_id]) == set()
