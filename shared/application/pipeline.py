"""The one pipeline every command runs through: decide → archive (instance events) → append → apply → status."""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TypeVar

from shared.application.apply import apply_events
from shared.application.archiving import Report, archive_events, needs_archive
from shared.application.contexts import ContextReader
from shared.application.outcome import final_status, status_update
from shared.application.reconcile import reconcile, repair
from shared.application.replay import run_replay
from shared.domain.commands import AggregateType, Command, CommandType
from shared.domain.decide import DependencyPending, decide, decide_reconcile, failure
from shared.domain.decide_instances import decide_instances
from shared.domain.events import Event, EventType
from shared.domain.replays import decide_replay
from shared.domain.status import CommandStatus
from shared.ports import (
    CommandLog,
    DocumentStore,
    DuplicateEvent,
    EventArchive,
    EventStore,
    RepairUnsupported,
    SearchIndex,
    VersionTaken,
)

log = logging.getLogger(__name__)

C = TypeVar("C")
DECIDE_ATTEMPTS = 5  # decisions on fresh state after another writer took the version first


async def waiting_for_dependencies(command: Command, read: Callable[[], Awaitable[C]],
                                   decide_on: Callable[[C], list[Event]], report: Report, wait: float
                                   ) -> list[Event]:
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
                return [failure(command, "dependency_timeout", f"gave up {waiting}")]
            if delay >= 0.16:
                await report(status_update(command, CommandStatus.RETRYING, str(waiting)))
            # Ordering across aggregates is not guaranteed by Kafka (different keys, different
            # partitions): a class whose parent's create is still queued waits for it here.
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


class Pipeline:
    """Runs any command against the ports. Safe to run twice for one command: archive keys are written
    once, the event store's unique constraints decide, and document writes are version-conditional."""

    def __init__(self, commands: CommandLog, events: EventStore, docs: DocumentStore, archive: EventArchive,
                 event_topic: Callable[[Command], str], dependency_wait: float = 30.0,
                 search: SearchIndex | None = None, command_topic: Callable[[Command], str] | None = None,
                 admin_user: str = "admin") -> None:
        self.commands, self.events, self.docs, self.archive = commands, events, docs, archive
        # For the operator commands: the search index a reconciliation repairs and a replay rebuilds, where
        # a replay's completion command goes, and the administrator who may approve any replay.
        self.search, self.command_topic, self.admin_user = search, command_topic, admin_user
        self.event_topic = event_topic
        self.dependency_wait = dependency_wait
        self.contexts = ContextReader(commands, events, docs)

    async def execute(self, command: Command, report: Report) -> Event:
        done = await self.events.for_command(command.command_id)
        if done:
            return await self._finish(command, done, report, redelivered=True)
        await report(status_update(command, CommandStatus.PROCESSING, "Processing started"))
        for _ in range(DECIDE_ATTEMPTS):
            events = await self._decide(command, report)
            if needs_archive(events):
                events = await archive_events(self.archive, command, events, report)
            try:
                # Shielded: a worker told to stop mid-command finishes the append and the document
                # writes together instead of leaving an event whose document was never written.
                return await asyncio.shield(self._append_and_finish(command, events, report))
            except VersionTaken:
                continue  # state moved between read and append: decide again on fresh state
        raise RuntimeError(f"command {command.command_id}: aggregate version kept moving")

    async def _decide(self, command: Command, report: Report) -> list[Event]:
        if command.command_type is CommandType.RECONCILE_DATABASE:
            # What to repair is found now, from the stores; the event records it and the apply step repairs it.
            found = await reconcile(command.db_name, self.events, self.docs, self.search, self.archive)
            exists = await self.docs.database(command.db_name) is not None
            return [decide_reconcile(command, exists, [asdict(d) for d in found.drift])]
        if command.aggregate_type is AggregateType.REPLAY:
            request, history = await self.contexts.for_replay(command)
            return [decide_replay(command, request, history, self.admin_user)]
        if command.aggregate_type is AggregateType.INSTANCE:
            return await waiting_for_dependencies(
                command, lambda: self.contexts.for_instances(command),
                lambda ctx: decide_instances(command, ctx), report, self.dependency_wait)
        return await waiting_for_dependencies(
            command, lambda: self.contexts.for_schema(command), lambda ctx: [decide(command, ctx)], report,
            self.dependency_wait)

    async def _append_and_finish(self, command: Command, events: list[Event], report: Report) -> Event:
        # With PostgreSQL documents the append writes them in its own transaction (a batch's appends share
        # one): the events and their documents commit together. Otherwise they are written after it.
        documents = apply_events if self.events.writes_documents else None
        try:
            if len(events) == 1:
                await self.events.append(events[0], self.event_topic(command), documents)
            else:
                await self.events.append_many(events, self.event_topic(command), documents)
        except DuplicateEvent:
            # Another delivery of this command got there first: its events are the answer.
            return await self._finish(command, await self.events.for_command(command.command_id), report,
                                      redelivered=True)
        return await self._finish(command, events, report, redelivered=False, applied=documents is not None)

    async def _finish(self, command: Command, events: list[Event], report: Report, redelivered: bool,
                      applied: bool = False) -> Event:
        if events[0].event_type is EventType.REPLAY_APPROVED:
            return await self._replay(command, events[0], report)
        if events[0].event_type is EventType.DATABASE_RECONCILED:
            await repair(events[0], self.events, self.docs, self.search, self.archive)
        elif redelivered:
            # Re-apply only what is still each aggregate's newest event: an older one must never
            # overwrite what later commands wrote.
            first = events[0]
            last = await self.events.last_versions(first.db_name, first.aggregate_type,
                                                   [e.aggregate_id for e in events])
            events_to_apply = [e for e in events if e.version is not None and e.version == last.get(e.aggregate_id)]
            await apply_events(self.docs, events_to_apply)
        elif not applied:
            await apply_events(self.docs, events)
        await report(final_status(command, events))
        return events[0]

    async def _replay(self, command: Command, approval: Event, report: Report) -> Event:
        """The approved rebuild, run as the approval command (its progress on the status API), then its
        completion recorded as a command of its own: one command's event per aggregate, and REPLAY_COMPLETED
        is the replay's next. A redelivered approval whose completion is stored rebuilds nothing again."""
        history = await self.events.history(command.db_name, AggregateType.REPLAY, command.aggregate_id)
        ended = [e for e in history if e.event_type in (EventType.REPLAY_COMPLETED, EventType.REPLAY_FAILED)]
        if ended:
            result, error = ended[0].data.get("result", {}), ended[0].data.get("error")
        else:
            try:
                result, error = await run_replay(command, list(approval.data.get("targets", [])), self.events,
                                                 self.docs, self.search, report), None
            except RepairUnsupported as exc:
                result, error = {}, str(exc)
            assert self.command_topic is not None, "a pipeline that runs replays knows the command topics"
            completion = Command(
                command_id=uuid.uuid5(approval.command_id, "replay completed"),  # the same on a redelivery
                command_type=CommandType.COMPLETE_REPLAY, aggregate_id=command.aggregate_id,
                db_name=command.db_name, actor=command.actor, payload={"result": result, "error": error})
            await self.commands.record(completion, self.command_topic(completion))
        if error:
            await report(status_update(command, CommandStatus.FAILED, error,
                                       error={"code": "replay_failed", "message": error}))
        else:
            await report(status_update(command, CommandStatus.COMPLETED, "Replay completed",
                                       result={"replay_id": command.aggregate_id, **result}))
        return approval
