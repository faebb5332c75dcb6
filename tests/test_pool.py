"""The connection pool on the real PostgreSQL: a connection is reused only when its last use ended cleanly."""
from __future__ import annotations

import asyncio

import asyncpg
import pytest

from shared.adapters.postgres.pool import create_pool


async def test_statement_errors_keep_the_connection_and_cancellations_drop_it(database: str) -> None:
    pool = await create_pool(database, min_size=1, max_size=1)
    try:
        first = await pool.fetchval("SELECT pg_backend_pid()")
        with pytest.raises(asyncpg.DivisionByZeroError):
            await pool.fetchval("SELECT 1/0")
        assert await pool.fetchval("SELECT pg_backend_pid()") == first  # same session: still in step
        with pytest.raises(asyncpg.UniqueViolationError):
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("CREATE TEMP TABLE t (k int PRIMARY KEY) ON COMMIT DROP")
                await conn.execute("INSERT INTO t VALUES (1), (1)")
        assert await pool.fetchval("SELECT pg_backend_pid()") == first
        slow = asyncio.create_task(pool.fetchval("SELECT pg_sleep(5)"))
        await asyncio.sleep(0.3)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        # The cancelled statement's connection is never handed on: the next lease is a new session.
        assert await pool.fetchval("SELECT pg_backend_pid()") != first
    finally:
        await pool.close()


async def test_at_most_max_size_connections_and_each_to_one_task(database: str) -> None:
    pool = await create_pool(database, min_size=0, max_size=3)
    held: set[int] = set()
    peak = 0

    async def use() -> None:
        nonlocal peak
        async with pool.acquire() as conn:
            assert id(conn) not in held, "a connection leased to two tasks"
            held.add(id(conn))
            peak = max(peak, len(held))
            await conn.fetchval("SELECT pg_sleep(0.02)")
            held.discard(id(conn))

    try:
        await asyncio.gather(*(use() for _ in range(30)))
        assert peak == 3
    finally:
        await pool.close()
