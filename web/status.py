"""Status lookups: the worker's command_status table first, then the command log and event store."""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

import aiohttp

from shared.application.apply import is_applied
from shared.application.outcome import final_status, status_update
from shared.channels import command_channel, user_channel
from shared.domain.commands import Command, iso, utcnow
from shared.domain.events import Event
from shared.domain.status import FINAL, CommandStatus, StatusRecord, StatusUpdate, apply_update
from shared.tokens import INTERNAL_HEADER, internal_token
from web.context import Services

log = logging.getLogger(__name__)


def parse_command_id(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


async def from_table(svc: Services, command_id: str) -> StatusRecord | None:
    """Ask the Faust worker; its table route forwards to the worker owning the key's partition."""
    try:
        async with svc.http.get(f"{svc.settings.worker_url}/status/{command_id}",
                                headers={INTERNAL_HEADER: internal_token(svc.settings)},
                                timeout=aiohttp.ClientTimeout(total=2)) as resp:
            if resp.status == 200:
                return StatusRecord.model_validate(await resp.json())
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        log.debug("status table unavailable: %s", exc)
    return None


def from_log(command: Command, events: list[Event] | None, table: StatusRecord | None) -> StatusRecord:
    # `events` are passed only once their effect is visible in the document store (see lookup).
    """The table's record, completed from the event store when the table lags behind it (the table
    is fed through Kafka, the event store is written first), or rebuilt from the logs alone."""
    record = table
    if record is None:
        seed = StatusUpdate(command_id=str(command.command_id), status=CommandStatus.PENDING,
                            message="Command recorded", command_type=command.command_type.value,
                            aggregate_id=command.aggregate_id, db_name=command.db_name,
                            actor=command.actor, created_at=command.created_at, timestamp=command.created_at)
        record = apply_update(None, seed)
        assert record is not None
    if events and record.status not in FINAL:
        at = events[0].occurred_at
        if not any(h.status is CommandStatus.PROCESSING for h in record.history):
            # Every executed command went through PROCESSING; the table (fed through Kafka) has not said so
            # yet, or its entry expired. Shown here too, so a later answer from the table adds nothing
            # the caller has not seen: a status history never goes back.
            started = status_update(command, CommandStatus.PROCESSING, "Processing started")
            record = apply_update(record, started.model_copy(update={"timestamp": at})) or record
        done = final_status(command, events).model_copy(update={"timestamp": at})
        record = apply_update(record, done) or record
    return record


async def announce_pending(svc: Services, command: Command) -> None:
    """Push a newly recorded command's PENDING status to its submitter's live channel, ahead of anything
    the worker pushes (one Redis server delivers in publish order, and this runs before the 202)."""
    try:
        message = json.dumps(from_log(command, None, None).to_api())
        channel = user_channel(svc.settings, command.actor)
        # Pipelined with the other submissions' pushes (one round trip for all of them).
        await svc.live.publish(channel, message)
    except Exception as exc:  # noqa: BLE001 — the live push is best effort; the status API has it anyway
        log.warning("PENDING push of %s skipped: %s", command.command_id, exc)


async def lookup(svc: Services, command_id: uuid.UUID) -> StatusRecord | None:
    table = await from_table(svc, str(command_id))
    if table is not None and table.status in FINAL:
        return table
    command = await svc.commands.get(command_id)
    if command is None:
        return table
    events = await svc.events.for_command(command_id)
    # An event alone is not completion: the agent writes the documents right after the events (in
    # their order, the last one last), and a caller told COMPLETED must find the result when it reads.
    # A command with no entry in the table at all is past the status TTL (or its status never came):
    # its events stand for its outcome, whatever later commands did to the objects since.
    done = events if events and (table is None and _settled(svc, events[-1]) or await is_applied(
        svc.docs, events[-1])) else None
    return from_log(command, done, table)


def _settled(svc: Services, event: Event) -> bool:
    """Long enough ago that its documents were written (or the sweep has re-queued the command)."""
    return (utcnow() - event.occurred_at).total_seconds() > svc.settings.redeliver_after_seconds


async def wait_final(svc: Services, command_id: uuid.UUID, timeout: float, poll_interval: float,
                     first: StatusRecord | None = None) -> tuple[StatusRecord | None, list[dict[str, Any]]]:
    """Wait until the command is COMPLETED or FAILED or `timeout` passes; returns the last record seen.

    Woken by the command's Redis channel, so a finished command answers within milliseconds; the
    poll interval is only the fallback (and the whole mechanism when Redis is down)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pubsub = svc.redis.pubsub()
    try:
        # Subscribe before the first look: an update published in between is not missed.
        await pubsub.subscribe(command_channel(svc.settings, str(command_id)))
        live = True
    except Exception as exc:  # noqa: BLE001 — Redis down: fall back to polling
        log.info("live status unavailable, polling: %s", exc)
        live = False
    try:
        # `first` may have been read before subscribing: look again unless it is already final.
        record = first if first is not None and first.status in FINAL else await lookup(svc, command_id)
        while record is not None and record.status not in FINAL and loop.time() < deadline:
            pause = min(poll_interval, max(0.0, deadline - loop.time()))
            if live:
                pause = min(pause, 1.0)  # below the shared client's 2 s socket timeout
                try:
                    await pubsub.get_message(ignore_subscribe_messages=True, timeout=pause)
                except Exception:  # noqa: BLE001
                    live = False
            else:
                await asyncio.sleep(pause)
            record = await lookup(svc, command_id)
    finally:
        try:
            await pubsub.aclose()
        except Exception:  # noqa: BLE001
            pass
    history = []
    if record is not None:
        start = record.created_at
        history = [{"timestamp": iso(h.timestamp), "elapsed_time": round((h.timestamp - start).total_seconds(), 3),
                    "status": h.status.value, "progress": h.progress, "message": h.message}
                   for h in record.history]
    return record, history
