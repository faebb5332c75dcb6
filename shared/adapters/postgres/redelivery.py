"""Reconciliation sweep: re-queue recorded commands that produced no event (principles 2 and 12).

Kafka and Faust deliver at least once in theory; in practice Faust 0.15.3 can commit the offset of a
message it never handed to an agent when a worker stops or rebalances mid-fetch (measured in
tests/test_worker_restart.py). Any command still without an event after `older_than` seconds, and not
queued again within that time, gets a fresh outbox row with the same message. Executing a command
twice is a no-op (event store constraints), so a needless re-queue costs one lookup.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from shared.adapters.postgres.command_log import command_from_row
from shared.domain.commands import Command
from shared.ports import DocumentStore

# Commands recorded between `$2` and `$1` with no event that no refusal ended.
OPEN = """
FROM commands c
WHERE c.recorded_at >= $2 AND c.recorded_at < $1
  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.command_id = c.command_id)
  AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.command_id = c.command_id AND o.refused IS NOT NULL)
"""
# Of those, the ones not queued again since `$1` (a recent one is left to that delivery for now), oldest
# first: the limit counts only commands that are due, so ones queued again and again never fill it.
DUE = f"""
SELECT c.* {OPEN}
  AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.command_id = c.command_id AND o.created_at > $1)
ORDER BY c.recorded_at
LIMIT $3
"""


async def requeue_stale_commands(conn: asyncpg.Connection, older_than: float, topic_for: Callable[[Command], str],
                                 since: datetime | None = None, limit: int = 1000) -> tuple[int, datetime]:
    """Queue again the commands recorded more than `older_than` seconds ago (and `since` or later) that have
    no event and were not queued again within that time. Returns (how many, where the next round starts):
    the oldest command still without an event (queued recently or not), else the bound, so a round reads
    what is still open and what came since, never the whole log again."""
    bound = await conn.fetchval("SELECT clock_timestamp() - make_interval(secs => $1)", older_than)
    start = since or datetime.min.replace(tzinfo=UTC)
    async with conn.transaction():
        # A command row is visible by the time the bound passes its recorded_at: its transaction (one group
        # of submissions) commits well within `older_than`.
        commands = [command_from_row(r) for r in await conn.fetch(DUE, bound, start, limit)]
        await _queue(conn, commands, topic_for)
        oldest = await conn.fetchval(f"SELECT min(c.recorded_at) {OPEN}", bound, start)
    return len(commands), oldest or bound


# The newest versioned event of each aggregate that has documents (not a replay's) among the events after
# `$1` and appended longer ago than `$2` seconds (a transaction commits well within that, so no position
# below the bound is still to come).
LATEST_SINCE = """
WITH bound AS (
  SELECT coalesce(max(position), $1) AS upto FROM (
    SELECT position FROM events WHERE position > $1 AND appended_at < clock_timestamp() - make_interval(secs => $2)
    ORDER BY position LIMIT $3) window_
)
SELECT DISTINCT ON (e.db_name, e.aggregate_type, e.aggregate_id)
       e.command_id, e.db_name, e.aggregate_type, e.aggregate_id, e.version, bound.upto
FROM events e, bound
WHERE e.position > $1 AND e.position <= bound.upto AND e.version IS NOT NULL
  AND e.aggregate_type IN ('database', 'grant', 'ontology_class', 'instance')
ORDER BY e.db_name, e.aggregate_type, e.aggregate_id, e.version DESC
"""


async def start_of_last_hour(conn: asyncpg.Connection) -> int:
    """The position just before the events appended within the last hour (where a store-asking sweep starts)."""
    found = await conn.fetchval("""SELECT coalesce(min(position) - 1, (SELECT coalesce(max(position), 0) FROM events))
                                   FROM events WHERE appended_at > clock_timestamp() - interval '1 hour'""")
    return int(found)


async def requeue_unapplied_commands(conn: asyncpg.Connection, docs: DocumentStore, after: int, older_than: float,
                                      topic_for: Callable[[Command], str], limit: int = 10_000) -> tuple[int, int]:
    """Queue again the commands whose event is stored but not reflected in the document store (the worker
    stopped in between; their redelivery applies the stored event, it never decides twice): the newest event
    of each aggregate appended since the last round is compared with the version the store says it holds
    (any store: TerminusDB is joined by no SQL). Each event is looked at once, `older_than` after its
    append. Returns (queued, position to go on from)."""
    rows = await conn.fetch(LATEST_SINCE, after, older_than, limit)
    if not rows:
        return 0, after
    groups: dict[tuple[str, str], dict[str, tuple[int, uuid.UUID]]] = {}
    for row in rows:
        groups.setdefault((row["db_name"], row["aggregate_type"]), {})[row["aggregate_id"]] = (
            row["version"], row["command_id"])
    behind: set[uuid.UUID] = set()
    for (db_name, aggregate_type), latest in groups.items():
        if aggregate_type != "database" and await docs.database(db_name) is None:
            continue  # a dropped database's documents went with it
        held = await docs.held_versions(db_name, aggregate_type, sorted(latest))
        behind |= {command_id for aggregate_id, (version, command_id) in latest.items()
                   if held.get(aggregate_id, 0) < version}
    recent = await conn.fetch("""SELECT c.* FROM commands c WHERE c.command_id = ANY($1::uuid[])
                                 AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.command_id = c.command_id
                                   AND o.created_at > clock_timestamp() - make_interval(secs => $2))""",
                              list(behind), older_than)
    commands = [command_from_row(r) for r in recent]
    async with conn.transaction():
        await _queue(conn, commands, topic_for)
    return len(commands), int(rows[0]["upto"])


async def _queue(conn: asyncpg.Connection, commands: list[Command], topic_for: Callable[[Command], str]) -> None:
    await conn.executemany(
        "INSERT INTO outbox (topic, key, value, command_id) VALUES ($1, $2, $3, $4)",
        [(topic_for(c), c.stream_key, json.dumps(c.to_message()), c.command_id) for c in commands],
    )
