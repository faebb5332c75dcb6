"""The command log on PostgreSQL: a command and its outbox row in one transaction."""
from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from shared.adapters.postgres.pool import Pool
from shared.domain.commands import Command
from shared.ports import CommandLog

CREATE_TYPES = ["CREATE_DATABASE", "CREATE_ONTOLOGY_CLASS", "CREATE_INSTANCE"]


def command_from_row(row: asyncpg.Record) -> Command:
    return Command(
        command_id=row["command_id"], command_type=row["command_type"], aggregate_id=row["aggregate_id"],
        db_name=row["db_name"], payload=row["payload"], actor=row["actor"],
        expected_version=row["expected_version"], idempotency_key=row["idempotency_key"],
        created_at=row["created_at"], metadata=row["metadata"],
    )


class PostgresCommandLog(CommandLog):
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def record(self, command: Command, topic: str) -> tuple[Command, bool]:
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                """INSERT INTO commands (command_id, command_type, aggregate_type, aggregate_id, db_name,
                       actor, payload, expected_version, idempotency_key, metadata, created_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                   ON CONFLICT (actor, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                   RETURNING command_id""",
                command.command_id, command.command_type.value, command.aggregate_type.value,
                command.aggregate_id, command.db_name, command.actor, command.payload,
                command.expected_version, command.idempotency_key, command.metadata, command.created_at,
            )
            if inserted is None:
                # The key was used before (possibly by a transaction that committed just now):
                # the first command stands and nothing new is queued.
                row = await conn.fetchrow(
                    "SELECT * FROM commands WHERE actor = $1 AND idempotency_key = $2",
                    command.actor, command.idempotency_key,
                )
                return command_from_row(row), False
            await conn.execute(
                "INSERT INTO outbox (topic, key, value, command_id) VALUES ($1, $2, $3, $4)",
                topic, command.stream_key, json.dumps(command.to_message()), command.command_id,
            )
        return command, True

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
        row = await self.pool.fetchrow("SELECT * FROM commands WHERE command_id = $1", command_id)
        return command_from_row(row) if row else None

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
            """SELECT DISTINCT c.aggregate_id FROM commands c
               WHERE c.db_name = $1 AND c.aggregate_id = ANY($2::text[]) AND c.command_type = ANY($3::text[])
                 AND NOT EXISTS (SELECT 1 FROM events e WHERE e.command_id = c.command_id)""",
            db_name, aggregate_ids, CREATE_TYPES,
        )
        return {r["aggregate_id"] for r in rows}

    async def list_for(self, db_name: str, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT command_id, command_type, aggregate_id, actor, created_at FROM commands"
            " WHERE db_name = $1 ORDER BY recorded_at DESC LIMIT $2", db_name, limit,
        )
        return [dict(r) for r in rows]
