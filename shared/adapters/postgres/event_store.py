"""The event store on PostgreSQL: append-only, one version per aggregate, one event per command."""
from __future__ import annotations

import json
import uuid

import asyncpg

from shared.adapters.postgres.pool import Pool
from shared.domain.commands import AggregateType
from shared.domain.events import Event
from shared.ports import DuplicateEvent, EventStore, VersionTaken

COLUMNS = ("position, event_id, event_type, aggregate_type, aggregate_id, db_name, version, command_id,"
           " actor, occurred_at, data")


def event_from_row(row: asyncpg.Record) -> Event:
    return Event(**dict(row))


class PostgresEventStore(EventStore):
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def append(self, event: Event, topic: str) -> Event:
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                position = await conn.fetchval(
                    """INSERT INTO events (event_id, event_type, aggregate_type, aggregate_id, db_name,
                           version, command_id, actor, occurred_at, data)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING position""",
                    event.event_id, event.event_type.value, event.aggregate_type.value, event.aggregate_id,
                    event.db_name, event.version, event.command_id, event.actor, event.occurred_at,
                    event.data,
                )
                stored = event.model_copy(update={"position": position})
                await conn.execute(
                    "INSERT INTO outbox (topic, key, value) VALUES ($1, $2, $3)",
                    topic, f"{event.db_name}/{event.aggregate_id}", json.dumps(stored.to_message()),
                )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name and "version" in exc.constraint_name:
                raise VersionTaken(str(exc)) from exc
            raise DuplicateEvent(str(exc)) from exc
        return stored

    async def append_many(self, events: list[Event], topic: str) -> None:
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                # One transaction: a bulk command's events are stored (and queued) all or none.
                await conn.executemany(
                    """INSERT INTO events (event_id, event_type, aggregate_type, aggregate_id, db_name,
                           version, command_id, actor, occurred_at, data)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
                    [(e.event_id, e.event_type.value, e.aggregate_type.value, e.aggregate_id, e.db_name,
                      e.version, e.command_id, e.actor, e.occurred_at, e.data) for e in events],
                )
                await conn.executemany(
                    "INSERT INTO outbox (topic, key, value) VALUES ($1, $2, $3)",
                    [(topic, f"{e.db_name}/{e.aggregate_id}", json.dumps(e.to_message())) for e in events],
                )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name and "version" in exc.constraint_name:
                raise VersionTaken(str(exc)) from exc
            raise DuplicateEvent(str(exc)) from exc

    async def for_command(self, command_id: uuid.UUID) -> list[Event]:
        rows = await self.pool.fetch(
            f"SELECT {COLUMNS} FROM events WHERE command_id = $1 ORDER BY position", command_id
        )
        return [event_from_row(r) for r in rows]

    async def history(self, db_name: str, aggregate_type: AggregateType, aggregate_id: str) -> list[Event]:
        rows = await self.pool.fetch(
            f"""SELECT {COLUMNS} FROM events
                WHERE db_name = $1 AND aggregate_type = $2 AND aggregate_id = $3 AND version IS NOT NULL
                ORDER BY version""",
            db_name, aggregate_type.value, aggregate_id,
        )
        return [event_from_row(r) for r in rows]

    async def last_version(self, db_name: str, aggregate_type: AggregateType, aggregate_id: str) -> int:
        value = await self.pool.fetchval(
            "SELECT max(version) FROM events WHERE db_name = $1 AND aggregate_type = $2 AND aggregate_id = $3",
            db_name, aggregate_type.value, aggregate_id,
        )
        return int(value or 0)

    async def last_versions(self, db_name: str, aggregate_type: AggregateType, aggregate_ids: list[str]
                            ) -> dict[str, int]:
        rows = await self.pool.fetch(
            """SELECT aggregate_id, max(version) AS version FROM events
               WHERE db_name = $1 AND aggregate_type = $2 AND aggregate_id = ANY($3::text[])
               GROUP BY aggregate_id""",
            db_name, aggregate_type.value, aggregate_ids,
        )
        return {r["aggregate_id"]: int(r["version"]) for r in rows if r["version"] is not None}

    async def read(self, after_position: int, limit: int) -> list[Event]:
        rows = await self.pool.fetch(
            f"SELECT {COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2",
            after_position, limit,
        )
        return [event_from_row(r) for r in rows]
