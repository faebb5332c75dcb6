"""Running an approved replay: the named read models rebuilt from the event store alone, with progress."""
from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from shared.application.apply import apply_event, apply_events
from shared.application.archiving import Report
from shared.application.outcome import status_update
from shared.application.reconcile import KINDS, Checksum, canonical, reconcile
from shared.chunks import chunked
from shared.domain.commands import AggregateType, Command
from shared.domain.events import Event
from shared.domain.status import CommandStatus
from shared.ports import DocumentStore, EventStore, Restored, SearchIndex

BATCH = 1000  # objects between two progress reports, and events applied together after the swap

Progress = Callable[[int, str], Awaitable[None]]


async def run_replay(command: Command, targets: list[str], events: EventStore, docs: DocumentStore,
                     search: SearchIndex | None, report: Report) -> dict[str, Any]:
    """Documents: the database and its grants put back through the version-conditional writes, every class
    and instance replaced by what its newest event says (DocumentStore.replace: built beside the old ones and
    swapped in at the end where the store can, so reads keep answering), then what was committed meanwhile
    applied again. Search: fresh indices built from the events and swapped in at the end. Returns {"events",
    "objects", "checksum"}: the checksum of the states the documents were given, the one a reconciliation
    reports for the events (and, when they agree, for the documents)."""
    db = command.db_name
    counts = {"events": 0, "objects": 0}

    async def progress(percent: int, message: str) -> None:
        await report(status_update(command, CommandStatus.PROCESSING, message, progress=percent))

    checksum: str | None = None
    if "documents" in targets:
        # Taken before anything is read: whatever commits after it is applied again at the end, so a write
        # that reached only the rows a replace removed is not lost.
        mark = await events.mark()
        for aggregate_type in (AggregateType.DATABASE, AggregateType.GRANT):
            async for event in events.latest(db, aggregate_type):
                counts["events"] += 1
                await apply_event(docs, event)
        digest = Checksum()
        for kind, aggregate_type in KINDS.items():
            await docs.replace(db, kind, _states(kind, events.latest(db, aggregate_type), digest, counts, progress))
        # Version-conditional like every write: an event the replace already showed changes nothing.
        async for caught_up in chunked(events.since(db, mark), BATCH):
            await apply_events(docs, caught_up)
        checksum = digest.hexdigest()
        await progress(70, f"documents rebuilt: {counts['objects']} objects from {counts['events']} events")
    if "search" in targets and search is not None:
        await search.rebuild(db)
        await progress(90, "search indices rebuilt and swapped in")
    if checksum is None:  # search alone: the checksum of what the fresh indices hold
        checksum = (await reconcile(db, events, docs, search, None)).checksums["search"]
    return {"events": counts["events"], "objects": counts["objects"], "checksum": checksum}


async def _states(kind: str, newest: AsyncIterator[Event], digest: Checksum, counts: dict[str, int],
                  progress: Progress) -> AsyncIterator[Restored]:
    """Each aggregate's state as its newest event says (None: deleted), fed to the checksum on the way."""
    async for event in newest:
        counts["events"] += 1
        if event.version is None:
            continue
        state = None if event.data.get("deleted") else event.data
        if state is not None:
            digest.add_canonical(kind, event.aggregate_id, event.version, canonical(state))
        counts["objects"] += 1
        if counts["objects"] % BATCH == 0:
            await progress(min(60, 10 + counts["objects"] // BATCH), f"{counts['objects']} objects rebuilt")
        yield event.aggregate_id, event.version, state
