"""Reconciliation sweep: re-queue recorded commands that produced no event (principles 2 and 12).

Kafka and Faust deliver at least once in theory; in practice Faust 0.15.3 can commit the offset of a
message it never handed to an agent when a worker stops or rebalances mid-fetch (measured in
tests/test_worker_restart.py). Any command still without an event after `older_than` seconds, and not
queued again within that time, gets a fresh outbox row with the same message. Executing a command
twice is a no-op (event store constraints), so a needless re-queue costs one lookup.
"""
from __future__ import annotations

import json
from collections.abc import Callable

import asyncpg

from shared.adapters.postgres.command_log import command_from_row
from shared.domain.commands import Command

STALE = """
SELECT c.* FROM commands c
WHERE c.recorded_at < clock_timestamp() - make_interval(secs => $1)
  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.command_id = c.command_id)
  AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.command_id = c.command_id
                  AND o.created_at > clock_timestamp() - make_interval(secs => $1))
ORDER BY c.recorded_at
LIMIT $2
"""


async def requeue_stale_commands(conn: asyncpg.Connection, older_than: float,
                                 topic_for: Callable[[Command], str], limit: int = 1000) -> int:
    """Queue stale commands again; returns how many."""
    async with conn.transaction():
        rows = await conn.fetch(STALE, older_than, limit)
        commands = [command_from_row(r) for r in rows]
        await conn.executemany(
            "INSERT INTO outbox (topic, key, value, command_id) VALUES ($1, $2, $3, $4)",
            [(topic_for(c), c.stream_key, json.dumps(c.to_message()), c.command_id) for c in commands],
        )
    return len(commands)
