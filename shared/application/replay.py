"""Running an approved replay: the named read models rebuilt from the event store alone, with progress."""
from __future__ import annotations

from typing import Any

from shared.application.apply import apply_event
from shared.application.archiving import Report
from shared.application.outcome import status_update
from shared.application.reconcile import KINDS, reconcile
from shared.domain.commands import AggregateType, Command
from shared.domain.status import CommandStatus
from shared.ports import DocumentStore, EventArchive, EventStore, Restored, SearchIndex

BATCH = 1000  # objects restored in one statement, and between two progress reports


async def run_replay(command: Command, targets: list[str], events: EventStore, docs: DocumentStore,
                     search: SearchIndex | None, archive: EventArchive, report: Report) -> dict[str, Any]:
    """Documents: every aggregate put back as its newest event says (the database and its grants through the
    version-conditional writes, classes and instances unconditionally), then what the events do not know
    removed. Each statement replaces at most 1,000 rows, so reads keep answering throughout. Search: fresh
    indices built from the events and swapped in at the end. Returns {"events", "objects", "checksum"}."""
    db = command.db_name
    read = restored = 0

    async def progress(percent: int, message: str) -> None:
        await report(status_update(command, CommandStatus.PROCESSING, message, progress=percent))

    if "documents" in targets:
        for aggregate_type in (AggregateType.DATABASE, AggregateType.GRANT):
            async for event in events.latest(db, aggregate_type):
                read += 1
                await apply_event(docs, event)
        for kind, aggregate_type in KINDS.items():
            batch: list[Restored] = []
            async for event in events.latest(db, aggregate_type):
                read += 1
                if event.version is None:
                    continue
                batch.append((event.aggregate_id, event.version, None if event.data.get("deleted") else event.data))
                if len(batch) == BATCH:
                    await docs.restore(db, kind, batch)
                    restored += len(batch)
                    batch = []
                    await progress(min(60, 10 + restored // BATCH), f"{restored} objects restored")
            await docs.restore(db, kind, batch)
            restored += len(batch)
        await progress(70, f"documents rebuilt: {restored} objects from {read} events")
    if "search" in targets and search is not None:
        await search.rebuild(db)
        await progress(90, "search indices rebuilt and swapped in")
    # One pass over what was rebuilt: after the restores above, the only drift left in the documents is what
    # no event stands for; removing it leaves the documents equal to the events, checksum included.
    after = await reconcile(db, events, docs, search if "search" in targets else None, None)
    strays = [d for d in after.drift if d.store == "documents" and d.problem == "unexpected"]
    for drift in strays:
        assert drift.found_version is not None  # "unexpected" means found
        await docs.restore(db, drift.kind, [(drift.aggregate_id, drift.found_version, None)])
    checksum = after.checksums["events" if "documents" in targets else "search"]
    return {"events": read, "objects": restored, "checksum": checksum,
            "drift_after": len(after.drift) - len(strays)}
