"""asyncpg pools with JSON codecs, and the migration runner."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 7_200_311  # advisory lock id: concurrent starters migrate one at a time


async def _init(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await _init(conn)
    return conn


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Released connections keep their session: nothing here sets session state (no LISTEN, SET or
    advisory lock on a pooled connection; the relay and the migrator use connections of their own).
    asyncpg still rolls back an open transaction first. Saves the default reset's round trip
    (RESET ALL, UNLISTEN *, ...) on every release, several per command."""


async def create_pool(dsn: str, min_size: int = 2, max_size: int = 10, **kw: Any) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init,
                                     reset=_keep_session, **kw)
    assert pool is not None
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
