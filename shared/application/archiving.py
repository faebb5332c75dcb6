"""Archiving events to the immutable S3 archive before they are appended: each key written once."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from shared.application.outcome import status_update
from shared.domain.commands import AggregateType, Command
from shared.domain.events import Event
from shared.domain.instances import archive_key
from shared.domain.status import CommandStatus, StatusUpdate
from shared.ports import EventArchive

Report = Callable[[StatusUpdate], Awaitable[None]]
ARCHIVE_CONCURRENCY = 32
PROGRESS_EVERY = 0.1  # report bulk progress at every further tenth of the work


def needs_archive(events: list[Event]) -> bool:
    """Instance events are archived; schema events (databases, classes, grants) live in the event store."""
    return not events[0].failed and events[0].aggregate_type is AggregateType.INSTANCE


def archive_key_of(event: Event) -> str:
    return archive_key(event.db_name, event.data["class_id"], event.aggregate_id, event.version or 0,
                       str(event.event_id))


async def archive_events(archive: EventArchive, command: Command, events: list[Event], report: Report
                         ) -> list[Event]:
    """Archive every event under its immutable key. A key already there (a retry after a crash) is never
    overwritten: the archived event is used as it stands, so the archive and the event store agree."""
    gate = asyncio.Semaphore(ARCHIVE_CONCURRENCY)
    total = len(events)
    done = 0
    next_report = PROGRESS_EVERY

    async def one(event: Event) -> Event:
        nonlocal done, next_report
        key = archive_key_of(event)
        stamped = event.model_copy(update={"data": {**event.data, "archive_uri": archive.uri(key)}})
        async with gate:
            written = await archive.put_once(key, json.dumps(stamped.to_message()).encode())
            if not written:
                body = await archive.get(key)
                stamped = Event.model_validate_json(body) if body else stamped
        done += 1
        if total > 1 and done / total >= next_report:
            next_report += PROGRESS_EVERY
            await report(status_update(command, CommandStatus.PROCESSING,
                                       f"archived {done} of {total} events", progress=10 + 80 * done // total))
        return stamped

    return list(await asyncio.gather(*(one(e) for e in events)))
