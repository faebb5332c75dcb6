"""The EventStore contract."""
from __future__ import annotations

import uuid

import pytest

from shared.domain.commands import AggregateType, Command, CommandType
from shared.domain.events import Event, EventType, event_for
from shared.ports import DuplicateEvent, EventStore, VersionTaken


def make_event(aggregate: str, version: int | None, command: Command | None = None) -> Event:
    cmd = command or Command(command_type=CommandType.CREATE_ONTOLOGY_CLASS, aggregate_id=aggregate,
                             db_name="contract", actor="tester")
    kind = EventType.ONTOLOGY_CLASS_CREATED if version else EventType.COMMAND_FAILED
    return event_for(cmd, kind, version, {"class_id": aggregate, "version": version})


class EventStoreContract:
    @pytest.fixture
    def store(self) -> EventStore:
        raise NotImplementedError

    @pytest.fixture
    def aggregate(self) -> str:
        return f"A{uuid.uuid4().hex[:8]}"

    async def test_append_and_read_back(self, store: EventStore, aggregate: str) -> None:
        first = await store.append(make_event(aggregate, 1), "t")
        second = await store.append(make_event(aggregate, 2), "t")
        assert first.position is not None and second.position is not None
        assert second.position > first.position
        history = await store.history("contract", AggregateType.ONTOLOGY_CLASS, aggregate)
        assert [e.version for e in history] == [1, 2]
        assert await store.last_version("contract", AggregateType.ONTOLOGY_CLASS, aggregate) == 2
        assert [e.event_id for e in await store.for_command(first.command_id)] == [first.event_id]
        after = await store.read("contract", first.position - 1, 10)
        assert [e.event_id for e in after][:2] == [first.event_id, second.event_id]

    async def test_same_command_twice_is_refused(self, store: EventStore, aggregate: str) -> None:
        event = make_event(aggregate, 1)
        await store.append(event, "t")
        with pytest.raises(DuplicateEvent):
            await store.append(event, "t")
        assert len(await store.for_command(event.command_id)) == 1

    async def test_a_version_is_taken_once(self, store: EventStore, aggregate: str) -> None:
        await store.append(make_event(aggregate, 1), "t")
        with pytest.raises(VersionTaken):
            await store.append(make_event(aggregate, 1), "t")

    async def test_failures_carry_no_version(self, store: EventStore, aggregate: str) -> None:
        await store.append(make_event(aggregate, None), "t")
        await store.append(make_event(aggregate, None), "t")
        assert await store.last_version("contract", AggregateType.ONTOLOGY_CLASS, aggregate) == 0

    async def test_append_many_is_all_or_nothing(self, store: EventStore, aggregate: str) -> None:
        command = Command(command_type=CommandType.CREATE_ONTOLOGY_CLASS, aggregate_id=aggregate,
                          db_name="contract", actor="tester")
        ids = [f"{aggregate}_{i}" for i in range(3)]
        events = [event_for(command, EventType.ONTOLOGY_CLASS_CREATED, 1, {}).model_copy(
            update={"aggregate_id": i, "event_id": uuid.uuid5(uuid.NAMESPACE_URL, i)}) for i in ids]
        await store.append_many(events, "t")
        assert await store.last_versions("contract", AggregateType.ONTOLOGY_CLASS, [*ids, "nope"]) == {
            i: 1 for i in ids}
        await store.append(make_event(f"{aggregate}_x", 1), "t")
        clash = Command(command_type=CommandType.CREATE_ONTOLOGY_CLASS, aggregate_id=aggregate,
                        db_name="contract", actor="tester")
        batch = [event_for(clash, EventType.ONTOLOGY_CLASS_CREATED, 1, {}).model_copy(
            update={"aggregate_id": i, "event_id": uuid.uuid5(uuid.NAMESPACE_URL, f"2/{i}")})
            for i in (f"{aggregate}_y", f"{aggregate}_x")]
        with pytest.raises(VersionTaken):
            await store.append_many(batch, "t")
        assert await store.for_command(clash.command_id) == []

    async def test_history_belongs_to_the_current_database_of_a_name(self, store: EventStore,
                                                                      aggregate: str) -> None:
        db = f"db-{aggregate.lower()}"

        def database_event(kind: EventType, version: int) -> Event:
            command = Command(command_type=CommandType.CREATE_DATABASE, aggregate_id=db, db_name=db, actor="a")
            return event_for(command, kind, version, {"name": db})

        cls = Command(command_type=CommandType.CREATE_ONTOLOGY_CLASS, aggregate_id=aggregate, db_name=db, actor="a")
        assert await store.deleted_at(db) is None
        await store.append(database_event(EventType.DATABASE_CREATED, 1), "t")
        await store.append(event_for(cls, EventType.ONTOLOGY_CLASS_CREATED, 1, {"class_id": aggregate}), "t")
        assert len(await store.history(db, AggregateType.ONTOLOGY_CLASS, aggregate)) == 1
        await store.append(database_event(EventType.DATABASE_DELETED, 2), "t")
        assert await store.deleted_at(db) is not None
        await store.append(database_event(EventType.DATABASE_CREATED, 3), "t")
        assert await store.history(db, AggregateType.ONTOLOGY_CLASS, aggregate) == []
        assert [e.version for e in await store.history(db, AggregateType.DATABASE, db)] == [3]

    async def test_since_a_mark_reads_what_was_committed_after_it(self, store: EventStore, aggregate: str) -> None:
        before = await store.append(make_event(aggregate, 1), "t")
        mark = await store.mark()
        assert mark.head >= (before.position or 0)
        after = await store.append(make_event(aggregate, 2), "t")
        assert [e.event_id async for e in store.since("contract", mark) if e.aggregate_id == aggregate] == [
            after.event_id]
        assert [e async for e in store.since("contract", await store.mark()) if e.aggregate_id == aggregate] == []
