"""Connections with JSON codecs, the connection pool, and the migration runner."""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

import asyncpg

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 7_200_311  # advisory lock id: concurrent starters migrate one at a time


async def _init(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def connect(dsn: str, command_timeout: float | None = None) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn, command_timeout=command_timeout)
    await _init(conn)
    return conn


def statement_error(exc: asyncpg.PostgresError) -> bool:
    """An error of one statement (a unique violation, a bad value): the server still serves the session and
    asyncpg raised it after the server said it is ready again. Not a FATAL error such as the "terminating
    connection due to administrator command" of a restart: asyncpg raises that while its protocol still
    waits for the session's end, and the next statement on it fails with "another operation is in progress"
    (observed: the previous no-op reset handed such connections on)."""
    return (getattr(exc, "severity", None) == "ERROR" and not isinstance(exc, asyncpg.OperatorInterventionError)
            and not str(getattr(exc, "sqlstate", "") or "").startswith(("08", "57")))


class Pool:
    """Connections of one DSN, each either idle here or leased to exactly one task; at most `max_size`.

    A lease owns its connection object outright and gives it back in one synchronous step, so no await
    lies between "free" and "taken". A connection goes back to the idle list only after a clean exit or a
    statement's error; one that is closed, still in a transaction, or was left by a cancellation, a
    timeout, a broken socket or a FATAL error (its protocol state is uncertain) is terminated, never handed
    on, and a fresh one is made on demand. What this replaced: asyncpg's pool with a no-op reset handed on
    connections that a PostgreSQL restart had left mid-error, and their next statement failed with
    "another operation is in progress" (issue 18); asyncpg's holders are also reused across connections,
    with awaits inside their release, which this design does not need to reason about."""

    def __init__(self, dsn: str, max_size: int, command_timeout: float | None = None) -> None:
        self._dsn, self._command_timeout = dsn, command_timeout
        self._idle: list[asyncpg.Connection] = []
        self._leased: set[asyncpg.Connection] = set()
        self._slots = asyncio.Semaphore(max_size)
        self._closed = False
        self._drained = asyncio.Event()  # set whenever no connection is leased
        self._drained.set()

    async def _lease(self) -> asyncpg.Connection:
        if self._closed:
            raise asyncpg.InterfaceError("the connection pool is closing")
        await self._slots.acquire()
        try:
            # No await between taking a connection from the idle list and owning it: no other task can
            # see it in between.
            while self._idle:
                conn = self._idle.pop()
                if not conn.is_closed():
                    break
            else:
                conn = await connect(self._dsn, self._command_timeout)
        except BaseException:
            self._slots.release()
            raise
        self._leased.add(conn)
        self._drained.clear()
        return conn

    def _give_back(self, conn: asyncpg.Connection, clean: bool) -> None:
        """Synchronous, so a cancellation cannot cut it in half: the connection is idle or gone after it."""
        self._leased.discard(conn)
        if clean and not self._closed and not conn.is_closed() and not conn.is_in_transaction():
            self._idle.append(conn)
        else:
            conn.terminate()
        if not self._leased:
            self._drained.set()
        self._slots.release()

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        conn = await self._lease()
        clean = False
        try:
            yield conn
            clean = True
        except asyncpg.PostgresError as exc:
            clean = statement_error(exc)
            raise
        except asyncpg.InternalClientError:
            # The connection is this task's alone, so a clash of protocol states is not two operations: an
            # idle connection got the server's FATAL "terminating connection" of a restart just before it
            # was leased, and its socket is not closed yet. The connection is gone: say so, transiently.
            raise asyncpg.ConnectionDoesNotExistError(
                "the server ended the connection (PostgreSQL restarting or stopping)") from None
        finally:
            self._give_back(conn, clean)

    async def execute(self, query: str, *args: Any) -> str:
        async with self.acquire() as conn:
            return str(await conn.execute(query, *args))

    async def executemany(self, query: str, args: Iterable[Sequence[Any]]) -> None:
        async with self.acquire() as conn:
            await conn.executemany(query, args)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self.acquire() as conn:
            return list(await conn.fetch(query, *args))

    async def fetchrow(self, query: str, *args: Any) -> Any:  # an asyncpg.Record or None
        async with self.acquire() as conn:
            return await conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.acquire() as conn:
            return await conn.fetchval(query, *args)

    async def close(self, timeout: float = 10.0) -> None:
        """Close idle connections now; leased ones are waited for (a shielded append finishes), up to
        `timeout`, then terminated."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(c.close(timeout=timeout) for c in idle), return_exceptions=True)
        if self._leased:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), timeout)
        for conn in list(self._leased):
            conn.terminate()


async def create_pool(dsn: str, min_size: int = 2, max_size: int = 10, command_timeout: float | None = None) -> Pool:
    """A pool with `min_size` connections opened now (so a wrong DSN fails here, not on first use);
    `command_timeout` bounds every statement (seconds)."""
    pool = Pool(dsn, max_size, command_timeout)
    opened = await asyncio.gather(*(connect(dsn, command_timeout) for _ in range(min(min_size, max_size))))
    pool._idle.extend(opened)
    return pool


async def migrate(dsn: str) -> list[str]:
    """Apply every migration not yet applied, in file name order; returns the names applied."""
    conn = await asyncpg.connect(dsn)
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for path in sorted(MIGRATIONS.glob("*.sql")):
            if path.name in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", path.name)
            applied.append(path.name)
    finally:
        await conn.close()
    return applied


class OnConnection:
    """One leased connection in the shape of a Pool, for a store whose statements must run inside a
    transaction already open on it (the event store's, when the documents commit with their events).
    `acquire` hands out the same connection; a transaction opened on it is a savepoint."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        yield self._conn

    async def execute(self, query: str, *args: Any) -> str:
        return str(await self._conn.execute(query, *args))

    async def executemany(self, query: str, args: Iterable[Sequence[Any]]) -> None:
        await self._conn.executemany(query, args)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return list(await self._conn.fetch(query, *args))

    async def fetchrow(self, query: str, *args: Any) -> Any:
        return await self._conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._conn.fetchval(query, *args)
