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

import asyncpg

from shared.adapters.postgres.command_log import command_from_row
from shared.domain.commands import Command
from shared.ports import DocumentStore

STALE = """
SELECT c.* FROM commands c
WHERE c.recorded_at < clock_timestamp() - make_interval(secs => $1)
  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.command_id = c.command_id)
  AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.command_id = c.command_id
                  AND (o.created_at > clock_timestamp() - make_interval(secs => $1) OR o.refused IS NOT NULL))
ORDER BY c.recorded_at
LIMIT $2
"""


async def requeue_stale_commands(conn: asyncpg.Connection, older_than: float,
                                 topic_for: Callable[[Command], str], limit: int = 1000) -> int:
    """Queue stale commands again; returns how many."""
    async with conn.transaction():
        commands = [command_from_row(r) for r in await conn.fetch(STALE, older_than, limit)]
        await _queue(conn, commands, topic_for)
    return len(commands)


# Latest versioned event of each aggregate (appended recently, but longer ago than the agent needs to
# write its document) that the embedded document store does not reflect yet: the agent appended it,
# then stopped before writing the document.
UNAPPLIED = """
WITH latest AS (
  SELECT DISTINCT ON (db_name, aggregate_type, aggregate_id)
         command_id, event_type, db_name, aggregate_type, aggregate_id, version
  FROM events
  WHERE version IS NOT NULL
    AND appended_at BETWEEN clock_timestamp() - interval '1 hour' AND clock_timestamp() - make_interval(secs => $1)
  ORDER BY db_name, aggregate_type, aggregate_id, version DESC
)
-- One row per command: a bulk command is the latest event of thousands of aggregates.
SELECT DISTINCT ON (c.command_id) c.* FROM latest l JOIN commands c ON c.command_id = l.command_id
WHERE CASE
  WHEN l.aggregate_type = 'database' THEN NOT EXISTS (
    SELECT 1 FROM docs.databases d WHERE d.name = l.db_name AND d.version >= l.version)
  ELSE EXISTS (SELECT 1 FROM docs.databases d WHERE d.name = l.db_name AND NOT d.deleted)
   AND CASE l.aggregate_type
     WHEN 'ontology_class' THEN NOT EXISTS (SELECT 1 FROM docs.classes d
       WHERE d.db_name = l.db_name AND d.class_id = l.aggregate_id AND d.version >= l.version)
     WHEN 'grant' THEN NOT EXISTS (SELECT 1 FROM docs.grants d
       WHERE d.db_name = l.db_name AND d.user_id = l.aggregate_id AND d.version >= l.version)
     WHEN 'instance' THEN NOT EXISTS (SELECT 1 FROM docs.instances d
       WHERE d.db_name = l.db_name AND d.instance_id = l.aggregate_id AND d.version >= l.version)
     ELSE false
   END
END
AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.command_id = c.command_id
                AND o.created_at > clock_timestamp() - make_interval(secs => $1))
LIMIT $2
"""


async def requeue_unapplied_commands(conn: asyncpg.Connection, older_than: float,
                                     topic_for: Callable[[Command], str], limit: int = 1000) -> int:
    """Queue again the commands whose event is stored but not reflected in the document store; their
    redelivery applies the stored event (the agent never decides twice)."""
    async with conn.transaction():
        commands = [command_from_row(r) for r in await conn.fetch(UNAPPLIED, older_than, limit)]
        await _queue(conn, commands, topic_for)
    return len(commands)


# The newest versioned event of each aggregate among the events after `$1` and appended longer ago than
# `$2` seconds (a transaction commits well within that, so no position below the bound is still to come).
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
ORDER BY e.db_name, e.aggregate_type, e.aggregate_id, e.version DESC
"""


async def start_of_last_hour(conn: asyncpg.Connection) -> int:
    """The position just before the events appended within the last hour (where a store-asking sweep starts)."""
    found = await conn.fetchval("""SELECT coalesce(min(position) - 1, (SELECT coalesce(max(position), 0) FROM events))
                                   FROM events WHERE appended_at > clock_timestamp() - interval '1 hour'""")
    return int(found)


async def requeue_unapplied_per_store(conn: asyncpg.Connection, docs: DocumentStore, after: int, older_than: float,
                                      topic_for: Callable[[Command], str], limit: int = 10_000) -> tuple[int, int]:
    """The unapplied-event check for a document store outside PostgreSQL (TerminusDB), which no SQL can
    join: the newest event of each aggregate appended since the last round is compared with the version
    the store says it holds, and the commands of those it lacks are queued again. Each event is looked
    at once, `older_than` after its append. Returns (queued, position to go on from)."""
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
