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
from shared.ports import CommandLog, DocumentStore, EventStore
from tests.contracts.command_log import CommandLogContract, make_command
from tests.contracts.document_store import DocumentStoreContract
from tests.contracts.event_store import EventStoreContract


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
