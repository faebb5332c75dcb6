"""Executing instance commands: validate, archive each event to S3 once, append, write documents."""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from shared.application.execute import Report, status_update, waiting_for_dependencies
from shared.application.pending import on_their_way
from shared.domain.commands import AggregateType, Command, CommandType
from shared.domain.decide import failure
from shared.domain.decide_instances import (
    InstanceContext,
    MalformedPayload,
    class_of,
    decide_instances,
    instance_ids,
    items_of,
    linked_ids,
)
from shared.domain.events import Event, EventType
from shared.domain.instances import archive_key
from shared.domain.status import CommandStatus, StatusUpdate
from shared.ports import CommandLog, DocumentStore, DuplicateEvent, EventArchive, EventStore, VersionTaken

log = logging.getLogger(__name__)

ARCHIVE_CONCURRENCY = 32
PROGRESS_EVERY = 0.1  # report bulk progress at every further tenth of the work


def archive_key_of(event: Event) -> str:
    return archive_key(event.db_name, event.data["class_id"], event.aggregate_id, event.version or 0,
                       str(event.event_id))


async def apply_instance_events(docs: DocumentStore, events: list[Event]) -> None:
    """Write the documents the events describe. Version-conditional, so applying again, or applying an
    older event after a newer one, changes nothing."""
    puts = [e.data for e in events if e.event_type in (EventType.INSTANCE_CREATED, EventType.INSTANCE_UPDATED)]
    for start in range(0, len(puts), 1000):
        await docs.put_instances(events[0].db_name, puts[start:start + 1000])
    for e in events:
        if e.event_type is EventType.INSTANCE_DELETED and e.version is not None:
            await docs.delete_instance(e.db_name, e.aggregate_id, e.version)


def instance_result(command: Command, events: list[Event]) -> dict[str, Any]:
    first = events[0]
    if command.command_type is CommandType.BULK_CREATE_INSTANCES:
        ids = [e.aggregate_id for e in events]
        return {"message": f"{len(ids)} instances of {class_of(command)!r} created", "class_id": class_of(command),
                "db_name": command.db_name, "count": len(ids), "instance_ids": ids[:100],
                "event_type": first.event_type.value}
    return {"message": f"{first.event_type.value} {first.aggregate_id!r} at version {first.version}",
            "event_type": first.event_type.value, "event_id": str(first.event_id), "version": first.version,
            "aggregate_id": first.aggregate_id, "instance_id": first.aggregate_id, "class_id": class_of(command),
            "db_name": first.db_name, "archive_uri": first.data.get("archive_uri")}


class InstanceExecutor:
    """Runs instance commands. Safe to run twice for one command: archive keys are written once, the
    event store's unique constraints decide, and document writes are version-conditional."""

    def __init__(self, commands: CommandLog, events: EventStore, docs: DocumentStore, archive: EventArchive,
                 event_topic: Callable[[Command], str],
                 dependency_wait: float = 30.0) -> None:
        self.commands = commands
        self.events = events
        self.docs = docs
        self.archive = archive
        self.event_topic = event_topic
        self.dependency_wait = dependency_wait

    async def context(self, command: Command) -> InstanceContext:
        db = command.db_name
        try:
            class_of(command), items_of(command)
        except MalformedPayload:
            return InstanceContext(database_exists=True, classes={})  # the decider fails it, saying why
        database = await self.docs.database(db)
        if database is None:
            on_way = await on_their_way(self.commands, self.events, db, AggregateType.DATABASE, [db])
            return InstanceContext(database_exists=False, classes={}, pending_creates=frozenset(on_way))
        classes = {c["class_id"]: c for c in await self.docs.classes(db)}
        pending: set[str] = set()
        if class_of(command) not in classes:
            pending = await on_their_way(self.commands, self.events, db, AggregateType.ONTOLOGY_CLASS,
                                         [class_of(command)])
        ids = instance_ids(command)
        owners = await self.docs.instance_classes(command.db_name, ids)
        current: dict[str, dict[str, Any]] = {}
        if command.command_type in (CommandType.UPDATE_INSTANCE, CommandType.DELETE_INSTANCE) and owners:
            doc = await self.docs.get_instance(command.db_name, command.aggregate_id)
            if doc is not None:
                current[command.aggregate_id] = doc
        else:
            current = {i: {"class_id": c} for i, c in owners.items()}
        links = linked_ids(command, classes, current.get(command.aggregate_id))
        linked = await self.docs.instance_classes(db, links) if links else {}
        pending |= await on_their_way(self.commands, self.events, db, AggregateType.INSTANCE,
                                      [i for i in links if i not in linked])
        return InstanceContext(
            database_exists=True, classes=classes, current=current,
            last_versions=await self.events.last_versions(db, AggregateType.INSTANCE, ids),
            linked=linked, pending_creates=frozenset(pending),
        )

    async def _decide(self, command: Command, report: Report) -> list[Event]:
        return await waiting_for_dependencies(
            command, lambda: self.context(command), lambda ctx: decide_instances(command, ctx), report,
            self.dependency_wait, lambda reason: [failure(command, "dependency_timeout", reason)])

    async def execute(self, command: Command, report: Report) -> Event:
        done = await self.events.for_command(command.command_id)
        if done:
            return await self._finish(command, done, report)
        await report(status_update(command, CommandStatus.PROCESSING, "Processing started"))
        for _ in range(5):
            events = await self._decide(command, report)
            if events[0].failed:
                return await asyncio.shield(self._append(command, events, report))
            archived = await self._archive(command, events, report)
            try:
                # Shielded: a stop mid-command finishes the append and the document writes together.
                return await asyncio.shield(self._append(command, archived, report))
            except VersionTaken:
                continue  # another command took a version first: decide again on fresh state
        raise RuntimeError(f"command {command.command_id}: instance versions kept moving")

    async def _archive(self, command: Command, events: list[Event], report: Report) -> list[Event]:
        """Archive every event under its immutable key before it is appended. A key already there (a
        retry after a crash) is never overwritten: the archived event is used as it stands, so the
        archive and the event store always agree."""
        gate = asyncio.Semaphore(ARCHIVE_CONCURRENCY)
        total = len(events)
        done = 0
        next_report = PROGRESS_EVERY

        async def one(event: Event) -> Event:
            nonlocal done, next_report
            key = archive_key_of(event)
            stamped = event.model_copy(update={"data": {**event.data, "archive_uri": self.archive.uri(key)}})
            async with gate:
                written = await self.archive.put_once(key, json.dumps(stamped.to_message()).encode())
                if not written:
                    body = await self.archive.get(key)
                    stamped = Event.model_validate_json(body) if body else stamped
            done += 1
            if total > 1 and done / total >= next_report:
                next_report += PROGRESS_EVERY
                await report(status_update(command, CommandStatus.PROCESSING,
                                           f"archived {done} of {total} events", progress=10 + 80 * done // total))
            return stamped

        return list(await asyncio.gather(*(one(e) for e in events)))

    async def _append(self, command: Command, events: list[Event], report: Report) -> Event:
        try:
            if len(events) == 1:
                await self.events.append(events[0], self.event_topic(command))
            else:
                await self.events.append_many(events, self.event_topic(command))
        except DuplicateEvent:
            # Another delivery of this command got there first: its events are the answer.
            return await self._finish(command, await self.events.for_command(command.command_id), report)
        return await self._finish(command, events, report)

    async def _finish(self, command: Command, events: list[Event], report: Report) -> Event:
        if not events[0].failed:
            await apply_instance_events(self.docs, events)
        await report(instance_final_status(command, events))
        return events[0]


def instance_final_status(command: Command, events: list[Event]) -> StatusUpdate:
    """COMPLETED with the instance (or bulk) result, or FAILED with the error of the COMMAND_FAILED."""
    first = events[0]
    if first.failed:
        error = first.data.get("error", {})
        return status_update(command, CommandStatus.FAILED, error.get("message", "Command failed"),
                             error={**error, "event_id": str(first.event_id)})
    return status_update(command, CommandStatus.COMPLETED, "Command completed successfully",
                         result=instance_result(command, events))
