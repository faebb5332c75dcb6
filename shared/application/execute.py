"""Executing one command: decide on current state, append the event, apply it, report status."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import ValidationError

from shared.application.apply import apply_event
from shared.application.pending import on_their_way
from shared.domain.commands import AggregateType, Command, CommandType
from shared.domain.decide import Context, DependencyPending, decide, failure
from shared.domain.events import Event
from shared.domain.ontology import OntologyClass
from shared.domain.status import CommandStatus, StatusUpdate
from shared.ports import CommandLog, DocumentStore, DuplicateEvent, EventStore, VersionTaken

log = logging.getLogger(__name__)

Report = Callable[[StatusUpdate], Awaitable[None]]
C = TypeVar("C")
D = TypeVar("D")


def status_update(command: Command, status: CommandStatus, message: str, **extra: Any) -> StatusUpdate:
    return StatusUpdate(
        command_id=str(command.command_id), status=status, message=message,
        command_type=command.command_type.value, aggregate_id=command.aggregate_id,
        db_name=command.db_name, actor=command.actor, created_at=command.created_at, **extra,
    )


def final_status(command: Command, event: Event) -> StatusUpdate:
    if event.failed:
        error = event.data.get("error", {})
        return status_update(command, CommandStatus.FAILED, error.get("message", "Command failed"),
                             error={**error, "event_id": str(event.event_id)})
    result = {
        "message": f"{event.event_type.value} {event.aggregate_id!r} at version {event.version}",
        "event_type": event.event_type.value,
        "event_id": str(event.event_id),
        "version": event.version,
        "aggregate_id": event.aggregate_id,
        "db_name": event.db_name,
    }
    if event.aggregate_type is AggregateType.ONTOLOGY_CLASS:
        result["class_id"] = event.aggregate_id
    return status_update(command, CommandStatus.COMPLETED, "Command completed successfully", result=result)


def _references(command: Command, current: dict[str, Any] | None) -> set[str]:
    """Classes a create or update would depend on (best effort: invalid bodies are judged later)."""
    if command.command_type not in (CommandType.CREATE_ONTOLOGY_CLASS, CommandType.UPDATE_ONTOLOGY_CLASS):
        return set()
    base = {k: v for k, v in (current or {}).items() if k in OntologyClass.model_fields}
    try:
        return OntologyClass.model_validate({**base, **command.payload, "id": command.aggregate_id}
                                            ).referenced_classes()
    except ValidationError:
        return set()


async def waiting_for_dependencies(command: Command, read: Callable[[], Awaitable[C]], decide_on: Callable[[C], D],
                                   report: Report, wait: float, give_up: Callable[[str], D]) -> D:
    """Decide on freshly read state; while a dependency is still on its way (DependencyPending) read
    again with backoff, shown as RETRYING once it is more than a blip, for at most `wait` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    delay = 0.01
    while True:
        try:
            return decide_on(await read())
        except DependencyPending as waiting:
            if loop.time() > deadline:
                return give_up(f"gave up {waiting}")
            if delay >= 0.16:
                await report(status_update(command, CommandStatus.RETRYING, str(waiting)))
            # Ordering across aggregates is not guaranteed by Kafka (different keys, different
            # partitions): a class whose parent's create is still queued waits for it here.
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


class Executor:
    """Runs commands against the ports. Safe to run twice for one command: the event store's unique
    constraints decide, and the document writes are version-conditional."""

    def __init__(self, commands: CommandLog, events: EventStore, docs: DocumentStore,
                 event_topic: Callable[[Command], str],
                 dependency_wait: float = 30.0) -> None:
        self.commands = commands
        self.events = events
        self.docs = docs
        self.event_topic = event_topic
        self.dependency_wait = dependency_wait

    async def context(self, command: Command) -> Context:
        """Read only what the decision needs: the aggregate, the classes it refers to, and (for a class
        delete) the classes that refer to it. Never every class of the database per command."""
        database = await self.docs.database(command.db_name)
        existing: set[str] = set()
        dependents: dict[str, list[str]] = {}
        if command.aggregate_type is AggregateType.DATABASE:
            current = database
        elif command.aggregate_type is AggregateType.GRANT:
            current = await self.docs.grant(command.db_name, command.aggregate_id)
        else:
            current = await self.docs.get_class(command.db_name, command.aggregate_id) if database else None
            for ref in _references(command, current) if database else set():
                if await self.docs.get_class(command.db_name, ref) is not None:
                    existing.add(ref)
            if command.command_type is CommandType.DELETE_ONTOLOGY_CLASS and database:
                users = [doc["class_id"] for doc in await self.docs.classes(command.db_name)
                         if doc["class_id"] != command.aggregate_id and command.aggregate_id in _references_of(doc)]
                count = await self.docs.count_instances(command.db_name, command.aggregate_id)
                if count:
                    users.append(f"{count} instance(s)")
                if users:
                    dependents[command.aggregate_id] = users
        missing = sorted(_references(command, current) - existing)
        pending = await on_their_way(self.commands, self.events, command.db_name, AggregateType.ONTOLOGY_CLASS,
                                     missing)
        if database is None and command.aggregate_type is not AggregateType.DATABASE:
            pending |= await on_their_way(self.commands, self.events, command.db_name, AggregateType.DATABASE,
                                          [command.db_name])
        return Context(
            current=current,
            last_version=await self.events.last_version(command.db_name, command.aggregate_type,
                                                        command.aggregate_id),
            database_exists=database is not None,
            classes=frozenset(existing),
            pending_creates=frozenset(pending),
            dependents=dependents,
        )

    async def _decide(self, command: Command, report: Report) -> Event:
        return await waiting_for_dependencies(
            command, lambda: self.context(command), lambda ctx: decide(command, ctx), report,
            self.dependency_wait, lambda reason: failure(command, "dependency_timeout", reason))

    async def execute(self, command: Command, report: Report) -> Event:
        done = await self.events.for_command(command.command_id)
        if done:
            return await self._finish(command, done[0], report, redelivered=True)
        await report(status_update(command, CommandStatus.PROCESSING, "Processing started"))
        for _ in range(5):
            event = await self._decide(command, report)
            try:
                # Shielded: a worker told to stop mid-command finishes the append and the document
                # write together instead of leaving an event whose document was never written.
                return await asyncio.shield(self._append_and_finish(command, event, report))
            except VersionTaken:
                continue  # state moved between read and append; decide again on fresh state
        raise RuntimeError(f"command {command.command_id}: aggregate version kept moving")

    async def _append_and_finish(self, command: Command, event: Event, report: Report) -> Event:
        try:
            stored = await self.events.append(event, self.event_topic(command))
        except DuplicateEvent:
            # Another delivery of this command got there first: its event is the answer.
            return await self._finish(command, (await self.events.for_command(command.command_id))[0],
                                      report, redelivered=True)
        return await self._finish(command, stored, report, redelivered=False)

    async def _finish(self, command: Command, event: Event, report: Report, redelivered: bool) -> Event:
        if redelivered:
            # Re-apply only if it is still the aggregate's newest event: an older one must never
            # overwrite what later commands wrote.
            last = await self.events.last_version(event.db_name, event.aggregate_type, event.aggregate_id)
            if event.version is not None and event.version == last:
                await apply_event(self.docs, event)
        else:
            await apply_event(self.docs, event)
        await report(final_status(command, event))
        return event


def _references_of(doc: dict[str, Any]) -> set[str]:
    """Classes a stored class document refers to (the stored document carries provenance too)."""
    return OntologyClass.model_validate({k: doc[k] for k in OntologyClass.model_fields if k in doc}
                                        ).referenced_classes()
