"""The command log on PostgreSQL: a command and its outbox row in one transaction."""
from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from shared.adapters.group_commit import Coalesced, GroupCommit
from shared.adapters.postgres.pool import Pool, statement_error
from shared.config import MAX_MESSAGE_BYTES
from shared.domain.commands import Command
from shared.ports import CommandLog, CommandTooLarge

CREATE_TYPES = ["CREATE_DATABASE", "CREATE_ONTOLOGY_CLASS", "CREATE_INSTANCE"]


def command_from_row(row: asyncpg.Record) -> Command:
    return Command(
        command_id=row["command_id"], command_type=row["command_type"], aggregate_id=row["aggregate_id"],
        db_name=row["db_name"], payload=row["payload"], actor=row["actor"],
        expected_version=row["expected_version"], idempotency_key=row["idempotency_key"],
        created_at=row["created_at"], metadata=row["metadata"],
    )


def _refused_value(exc: Exception) -> Exception | None:
    """A statement's error (a value the database cannot hold) is its command's alone."""
    return exc if isinstance(exc, asyncpg.PostgresError) and statement_error(exc) else None


class PostgresCommandLog(CommandLog):
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._group: GroupCommit[tuple[Command, str, str], tuple[Command, bool]] = GroupCommit(
            self._write_batch, _refused_value)
        self._by_id: Coalesced[uuid.UUID, Command] = Coalesced(self._read_many)

    async def record(self, command: Command, topic: str) -> tuple[Command, bool]:
        message = json.dumps(command.to_message())  # the outbox row's value, serialised once
        size = len(message.encode())
        if size > MAX_MESSAGE_BYTES:
            raise CommandTooLarge(size, MAX_MESSAGE_BYTES)
        # Group-committed: concurrent submissions share one transaction (see GroupCommit).
        return await self._group.submit((command, topic, message))

    async def _write_batch(self, items: list[tuple[Command, str, str]]) -> list[tuple[Command, bool]]:
        """The commands and their outbox rows in one statement (one round trip, atomic), whatever the count."""
        commands = [c for c, _, _ in items]
        inserted = {r["command_id"] for r in await self.pool.fetch(
            """WITH x AS (
                   SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                                        $7::text[], $8::int[], $9::text[], $10::text[], $11::timestamptz[],
                                        $12::text[], $13::text[], $14::text[])
                        WITH ORDINALITY AS x(i, t, at, ag, d, a, p, v, k, m, c, topic, skey, msg, n)),
               ins AS (
                   INSERT INTO commands (command_id, command_type, aggregate_type, aggregate_id, db_name, actor,
                                         payload, expected_version, idempotency_key, metadata, created_at)
                   SELECT i, t, at, ag, d, a, p::jsonb, v, k, m::jsonb, c FROM x ORDER BY n
                   ON CONFLICT (actor, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                   RETURNING command_id),
               queued AS (
                   -- In the batch's order: the relay publishes one transaction's rows by id.
                   INSERT INTO outbox (topic, key, value, command_id)
                   SELECT x.topic, x.skey, x.msg, x.i FROM x JOIN ins ON ins.command_id = x.i ORDER BY x.n)
               SELECT command_id FROM ins""",
            [c.command_id for c in commands], [c.command_type.value for c in commands],
            [c.aggregate_type.value for c in commands], [c.aggregate_id for c in commands],
            [c.db_name for c in commands], [c.actor for c in commands],
            [json.dumps(c.payload) for c in commands], [c.expected_version for c in commands],
            [c.idempotency_key for c in commands], [json.dumps(c.metadata) for c in commands],
            [c.created_at for c in commands], [t for _, t, _ in items], [c.stream_key for c in commands],
            [m for _, _, m in items],
        )}
        # A key used before (possibly by a statement that committed just now, or earlier in this batch):
        # the first command stands and nothing new is queued for the later one.
        reused = [c for c in commands if c.command_id not in inserted]
        first: dict[tuple[str, str | None], Command] = {}
        if reused:
            rows = await self.pool.fetch(
                """SELECT c.* FROM commands c JOIN unnest($1::text[], $2::text[]) AS k(actor, key)
                     ON c.actor = k.actor AND c.idempotency_key = k.key""",
                [c.actor for c in reused], [c.idempotency_key for c in reused])
            first = {(r["actor"], r["idempotency_key"]): command_from_row(r) for r in rows}
        return [(c, True) if c.command_id in inserted else (first[(c.actor, c.idempotency_key)], False)
                for c in commands]

    async def record_received(self, command: Command) -> bool:
        inserted = await self.pool.fetchval(
            """INSERT INTO commands (command_id, command_type, aggregate_type, aggregate_id, db_name,
                   actor, payload, expected_version, idempotency_key, metadata, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
               ON CONFLICT DO NOTHING RETURNING command_id""",
            command.command_id, command.command_type.value, command.aggregate_type.value,
            command.aggregate_id, command.db_name, command.actor, command.payload,
            command.expected_version, command.idempotency_key, command.metadata, command.created_at,
        )
        return inserted is not None

    async def get(self, command_id: uuid.UUID) -> Command | None:
        # Coalesced: a batch's commands (each worker checks its command is recorded) ask in one query.
        return await self._by_id.get(command_id)

    async def _read_many(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, Command]:
        rows = await self.pool.fetch("SELECT * FROM commands WHERE command_id = ANY($1::uuid[])", ids)
        return {r["command_id"]: command_from_row(r) for r in rows}

    async def pending_creator(self, db_name: str) -> str | None:
        actor = await self.pool.fetchval(
            """SELECT c.actor FROM commands c
               WHERE c.db_name = $1 AND c.aggregate_id = $1 AND c.command_type = 'CREATE_DATABASE'
                 AND NOT EXISTS (SELECT 1 FROM events e WHERE e.command_id = c.command_id)
               ORDER BY c.recorded_at LIMIT 1""",
            db_name,
        )
        return actor  # type: ignore[no-any-return]

    async def pending_creates(self, db_name: str, aggregate_ids: list[str]) -> set[str]:
        if not aggregate_ids:
            return set()
        rows = await self.pool.fetch(
            # The second case closes the window between a create's append and its document write (wide
            # with TerminusDB): a class submitted right after its parent's create completed must not be
            # told the parent does not exist.
            """SELECT DISTINCT c.aggregate_id FROM commands c
               WHERE c.db_name = $1 AND c.aggregate_id = ANY($2::text[]) AND c.command_type = ANY($3::text[])
                 AND (NOT EXISTS (SELECT 1 FROM events e WHERE e.command_id = c.command_id)
                      OR EXISTS (SELECT 1 FROM events e WHERE e.command_id = c.command_id AND e.version IS NOT NULL
                                 AND e.aggregate_id = c.aggregate_id AND e.version = (
                                   SELECT max(x.version) FROM events x WHERE x.db_name = e.db_name
                                     AND x.aggregate_type = e.aggregate_type AND x.aggregate_id = e.aggregate_id)))""",
            db_name, aggregate_ids, CREATE_TYPES,
        )
        return {r["aggregate_id"] for r in rows}

    async def list_for(self, db_name: str, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT command_id, command_type, aggregate_id, actor, created_at FROM commands"
            " WHERE db_name = $1 ORDER BY recorded_at DESC LIMIT $2", db_name, limit,
        )
        return [dict(r) for r in rows]
