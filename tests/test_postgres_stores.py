"""The PostgreSQL adapters pass their port contracts, and the database refuses to rewrite history."""
from __future__ import annotations

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
