"""Status agent: folds status transitions into the command_status table and announces them on Redis."""
from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Any

from faust.web import Request, Response, View

from agents.pages import refused
from agents.runtime import open_runtime
from shared.channels import command_channel, user_channel
from shared.domain.commands import utcnow
from shared.domain.status import FINAL, StatusRecord, StatusUpdate, apply_update
from streams.app import app, settings
from streams.records import decode, decode_status_message, encode_expiry
from streams.topics import command_status as status_topic
from tables.status import command_status

log = logging.getLogger(__name__)


class Announcer:
    """Pushes status records to Redis from one task, everything queued since the last push in one pipelined
    round trip, in the order folded: the status agent never waits for Redis (it is only the live push; the
    table is the record), so its pace is the table's, not a Redis round trip per transition."""

    def __init__(self) -> None:
        self.queue: list[StatusRecord] = []
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def push(self, record: StatusRecord) -> None:
        self.queue.append(record)
        self.ready.set()
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self.run())

    async def run(self) -> None:
        runtime = await open_runtime(settings)
        while True:
            await self.ready.wait()
            self.ready.clear()
            records, self.queue = self.queue, []
            try:
                async with runtime.redis.pipeline(transaction=False) as pipe:
                    for record in records:
                        message = json.dumps(record.to_api())
                        pipe.publish(command_channel(settings, record.command_id), message)
                        pipe.publish(user_channel(settings, record.actor), message)
                    await pipe.execute()
            except Exception as exc:  # noqa: BLE001 — Redis is only the live push; the table is the record
                log.warning("status push of %d update(s) skipped: %s", len(records), exc)


announcer = Announcer()


@app.agent(status_topic)
async def status_agent(stream: Any) -> None:
    manual = stream.noack()  # acked after the table write, never by a cancelled iteration
    async for event in manual.events():
        await fold(event.value)
        await manual.ack(event)


async def fold(raw: bytes) -> None:
    """One message: the transitions of the commands of one partition, each command's folded in order and
    written to the table once; or an expiry."""
    updates = decode_status_message(raw)
    if isinstance(updates, str):
        expire(updates)
        return
    by_command: dict[str, list[StatusUpdate]] = {}
    for update in updates:
        by_command.setdefault(update.command_id, []).append(update)
    for own in by_command.values():
        fold_command(own)


def fold_command(updates: list[StatusUpdate]) -> None:
    # The message came to the partition of its commands' ids (agents/commands.py send_status), so every
    # key written here belongs to the partition whose changelog the write goes to.
    key = updates[0].command_id.encode()
    stored = command_status.get(key)
    record = decode(StatusRecord, stored) if stored else None
    changed = False
    for update in updates:
        folded = apply_update(record, update)
        if folded is not None:
            record, changed = folded, True
            announcer.push(folded)
    if changed and record is not None:
        # Reassign (never mutate in place): only an assignment is written to the changelog.
        command_status[key] = record.model_dump_json().encode()


def expired(record: StatusRecord, now: datetime) -> bool:
    return record.status in FINAL and (now - record.updated_at).total_seconds() > settings.status_ttl_seconds


def expire(command_id: str) -> None:
    """Drop a final entry older than the TTL (checked again here: the sweep's view may be stale). Deleting
    writes a tombstone to the changelog, so a recovering worker does not bring the entry back."""
    key = command_id.encode()
    stored = command_status.get(key)
    if stored is not None and expired(decode(StatusRecord, stored), utcnow()):
        del command_status[key]


EXPIRE_BATCH = 10_000  # expiry messages one sweep sends at most (the next sweep takes the rest)


@app.timer(interval=max(1.0, min(60.0, settings.status_ttl_seconds / 4)))
async def expire_statuses() -> None:
    """Tables are written only inside a stream: the sweep sends each expired entry's id to the status
    topic (keyed by it, so to the partition that holds it), and the status agent deletes it there."""
    now = utcnow()
    due: list[str] = []
    for n, (key, raw) in enumerate(list(command_status.items())):
        if n % 1000 == 999:
            await asyncio.sleep(0)  # a large table is read without holding up the agents
        if expired(decode(StatusRecord, raw), now):
            due.append(key.decode())
            if len(due) >= EXPIRE_BATCH:
                break
    if not due:
        return
    runtime = await open_runtime(settings)
    await asyncio.gather(*[await runtime.producer.send(status_topic.get_topic_name(), encode_expiry(c),
                                                         key=c.encode()) for c in due])
    log.info("%d final status entr%s past the status TTL: expiring", len(due), "y" if len(due) == 1 else "ies")


@app.page("/status/{command_id}")
@app.table_route(table=command_status, match_info="command_id")
async def status_page(self: View, request: Request, command_id: str) -> Response:
    # Checked where the key lives: a worker that does not own it forwards the request, headers and all.
    denied = refused(self, request)
    if denied is not None:
        return denied
    stored = command_status.get(command_id.encode())
    if stored is None:
        return self.json({"detail": {"message": f"no status for {command_id}"}}, status=404)
    return self.json(json.loads(stored))


@app.page("/ready")
async def ready_page(self: View, request: Request) -> Response:
    """200 once the worker owns partitions and is not rebalancing or recovering tables, else 503."""
    partitions = len(app.assignor.assigned_actives())
    ready = partitions > 0 and not app.rebalancing and app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
    return self.json({"ready": ready, "partitions": partitions}, status=200 if ready else 503)
