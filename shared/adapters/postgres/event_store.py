"""The event store on PostgreSQL: append-only, one version per aggregate, one event per command."""
from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator, Callable
from datetime import datetime

import asyncpg

from shared.adapters.group_commit import Coalesced, GroupCommit
from shared.adapters.postgres.pool import OnConnection, Pool, statement_error
from shared.domain.commands import AggregateType
from shared.domain.events import Event
from shared.ports import DocumentStore, DocumentWrites, DuplicateEvent, EventStore, Mark, VersionTaken

# How far below a mark's head `since` looks for a transaction that was still open when the mark was taken
# (its positions were handed out before it committed); one open for longer than this many later positions
# is not looked for.
OPEN_MARGIN = 100_000
# A row's inserting transaction as a 64-bit id (xid8), rebuilt from its 32-bit xmin against the newest
# transaction id: exact for every row written within the last 2^31 transactions (all that OPEN_MARGIN sees).
ROW_XID8 = """((r.now - ((r.now - xmin::text::bigint) % 4294967296 + 4294967296) % 4294967296)::text::xid8)"""

COLUMNS = ("position, event_id, event_type, aggregate_type, aggregate_id, db_name, version, command_id,"
           " actor, occurred_at, data")
# The position of the latest creation of the database named by $1: its events are those from here on (an
# earlier database of the name keeps its events to itself). The unique (db_name, aggregate_type,
# aggregate_id, version) index finds it.
CREATED = """(SELECT coalesce(max(position), 0) FROM events WHERE db_name = $1 AND aggregate_type = 'database'
              AND aggregate_id = $1 AND event_type = 'DATABASE_CREATED')"""


def event_from_row(row: asyncpg.Record) -> Event:
    return Event(**dict(row))


def _conflict(exc: asyncpg.UniqueViolationError) -> DuplicateEvent | VersionTaken:
    if exc.constraint_name and "version" in exc.constraint_name:
        return VersionTaken(str(exc))
    return DuplicateEvent(str(exc))


def _item_conflict(exc: Exception) -> Exception | None:
    """A unique violation is one event's own (a redelivered command, a version taken), and so is another
    statement's error (a document the database cannot hold)."""
    if isinstance(exc, asyncpg.UniqueViolationError):
        return _conflict(exc)
    return exc if isinstance(exc, asyncpg.PostgresError) and statement_error(exc) else None


Item = tuple[Event, str, DocumentWrites | None]  # an event, its topic, and what writes its documents


class PostgresEventStore(EventStore):
    def __init__(self, pool: Pool, documents: Callable[[OnConnection], DocumentStore] | None = None) -> None:
        """`documents`: the document store on one connection, when the documents live in this PostgreSQL
        too; then appends write them in their own transaction (`writes_documents`)."""
        self.pool = pool
        self._documents = documents
        self.writes_documents = documents is not None
        self._group: GroupCommit[Item, Event] = GroupCommit(self._insert, _item_conflict)
        # Coalesced reads: the commands of one batch ask for their events and versions in one query each.
        self._of_command: Coalesced[uuid.UUID, list[Event]] = Coalesced(self._for_commands)
        self._last: Coalesced[tuple[str, str, str], int] = Coalesced(self._last_of)

    async def append(self, event: Event, topic: str, documents: DocumentWrites | None = None) -> Event:
        # Group-committed: concurrent appends (one batch's commands) share one transaction, and with it
        # their documents' writes.
        return await self._group.submit((event, topic, documents))

    async def _write_documents(self, conn: asyncpg.Connection, writes: list[tuple[DocumentWrites | None, list[Event]]]
                               ) -> None:
        """Inside the append's transaction: an event is committed with its documents or not at all, so
        "event stored, document not written" cannot happen here (only the sweep's case with another store)."""
        if self._documents is None:
            return
        docs = self._documents(OnConnection(conn))
        for write, events in writes:
            if write is not None:
                await write(docs, events)

    async def _insert(self, items: list[Item]) -> list[Event]:
        events = [e for e, _, _ in items]
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """INSERT INTO events (event_id, event_type, aggregate_type, aggregate_id, db_name,
                       version, command_id, actor, occurred_at, data)
                   SELECT i, t, at, ag, d, v, c, a, o, x::jsonb
                   FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[],
                               $7::uuid[], $8::text[], $9::timestamptz[], $10::text[])
                        WITH ORDINALITY AS u(i, t, at, ag, d, v, c, a, o, x, n)
                   ORDER BY n
                   RETURNING event_id, position""",
                [e.event_id for e in events], [e.event_type.value for e in events],
                [e.aggregate_type.value for e in events], [e.aggregate_id for e in events],
                [e.db_name for e in events], [e.version for e in events], [e.command_id for e in events],
                [e.actor for e in events], [e.occurred_at for e in events], [json.dumps(e.data) for e in events])
            position = {r["event_id"]: r["position"] for r in rows}
            stored = [e.model_copy(update={"position": position[e.event_id]}) for e in events]
            await conn.execute(
                """INSERT INTO outbox (topic, key, value)
                   SELECT t, k, v FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(t, k, v, n)
                   ORDER BY n""",
                [t for _, t, _ in items], [f"{e.db_name}/{e.aggregate_id}" for e in stored],
                [json.dumps(e.to_message()) for e in stored])
            await self._write_documents(conn, [(w, [e]) for (_, _, w), e in zip(items, stored, strict=True)])
        return stored

    async def append_many(self, events: list[Event], topic: str, documents: DocumentWrites | None = None) -> None:
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
                await self._write_documents(conn, [(documents, events)])
        except asyncpg.UniqueViolationError as exc:
            raise _conflict(exc) from exc

    async def for_command(self, command_id: uuid.UUID) -> list[Event]:
        return await self._of_command.get(command_id) or []

    async def _for_commands(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Event]]:
        found: dict[uuid.UUID, list[Event]] = {}
        for row in await self.pool.fetch(
                f"SELECT {COLUMNS} FROM events WHERE command_id = ANY($1::uuid[]) ORDER BY position", ids):
            found.setdefault(row["command_id"], []).append(event_from_row(row))
        return found

    async def latest(self, db_name: str, aggregate_type: AggregateType) -> AsyncGenerator[Event, None]:
        # A cursor inside a read-only transaction: rows arrive in batches, never the whole table at once.
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            async for row in conn.cursor(
                    f"""SELECT DISTINCT ON (aggregate_id) {COLUMNS} FROM events
                        WHERE db_name = $1 AND aggregate_type = $2 AND version IS NOT NULL AND position >= {CREATED}
                        ORDER BY aggregate_id, version DESC""",
                    db_name, aggregate_type.value, prefetch=1000):
                yield event_from_row(row)

    async def history(self, db_name: str, aggregate_type: AggregateType, aggregate_id: str) -> list[Event]:
        rows = await self.pool.fetch(
            f"""SELECT {COLUMNS} FROM events
                WHERE db_name = $1 AND aggregate_type = $2 AND aggregate_id = $3 AND version IS NOT NULL
                  AND position >= {CREATED}
                ORDER BY version""",
            db_name, aggregate_type.value, aggregate_id,
        )
        return [event_from_row(r) for r in rows]

    async def deleted_at(self, db_name: str) -> datetime | None:
        value = await self.pool.fetchval(
            """SELECT max(occurred_at) FROM events WHERE db_name = $1 AND aggregate_type = 'database'
                 AND aggregate_id = $1 AND event_type = 'DATABASE_DELETED'""", db_name)
        return value  # type: ignore[no-any-return]

    async def last_version(self, db_name: str, aggregate_type: AggregateType, aggregate_id: str) -> int:
        return await self._last.get((db_name, aggregate_type.value, aggregate_id)) or 0

    async def _last_of(self, keys: list[tuple[str, str, str]]) -> dict[tuple[str, str, str], int]:
        rows = await self.pool.fetch(
            """SELECT k.d, k.t, k.a, (SELECT max(version) FROM events e WHERE e.db_name = k.d
                                        AND e.aggregate_type = k.t AND e.aggregate_id = k.a) AS version
               FROM unnest($1::text[], $2::text[], $3::text[]) AS k(d, t, a)""",
            [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])
        return {(r["d"], r["t"], r["a"]): int(r["version"]) for r in rows if r["version"] is not None}

    async def last_versions(self, db_name: str, aggregate_type: AggregateType, aggregate_ids: list[str]
                            ) -> dict[str, int]:
        rows = await self.pool.fetch(
            """SELECT aggregate_id, max(version) AS version FROM events
               WHERE db_name = $1 AND aggregate_type = $2 AND aggregate_id = ANY($3::text[])
               GROUP BY aggregate_id""",
            db_name, aggregate_type.value, aggregate_ids,
        )
        return {r["aggregate_id"]: int(r["version"]) for r in rows if r["version"] is not None}

    async def read(self, db_name: str, after_position: int, limit: int) -> list[Event]:
        # The (db_name, position) index: one database's events without reading every other database's.
        rows = await self.pool.fetch(
            f"""SELECT {COLUMNS} FROM events
                WHERE db_name = $1 AND position > $2 AND position >= {CREATED}
                ORDER BY position LIMIT $3""",
            db_name, after_position, limit,
        )
        return [event_from_row(r) for r in rows]

    async def mark(self) -> Mark:
        # One statement, one snapshot: the head is the highest position that snapshot sees.
        row = await self.pool.fetchrow(
            "SELECT pg_current_snapshot()::text AS snapshot, (SELECT coalesce(max(position), 0) FROM events) AS head")
        return Mark(head=int(row["head"]), snapshot=str(row["snapshot"]))

    async def since(self, db_name: str, mark: Mark) -> AsyncGenerator[Event, None]:
        # Above the head: not committed when the mark was taken (the head is the highest position it saw). At
        # or below: committed after it exactly when the mark's snapshot does not see the row's transaction.
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            async for row in conn.cursor(
                    f"""SELECT {COLUMNS} FROM events,
                               (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS now) AS r
                        WHERE db_name = $1 AND position > $2 - {OPEN_MARGIN} AND position >= {CREATED}
                          AND (position > $2 OR NOT pg_visible_in_snapshot({ROW_XID8}, $3::text::pg_snapshot))
                        ORDER BY position""",
                    db_name, mark.head, mark.snapshot, prefetch=1000):
                yield event_from_row(row)
