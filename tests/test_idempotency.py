"""A command delivered twice has one effect and one event; an Idempotency-Key makes one command."""
from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer

from shared.adapters.archive.local_dir import LocalDirEventArchive
from shared.adapters.postgres.command_log import PostgresCommandLog
from shared.adapters.postgres.document_store import PostgresDocumentStore
from shared.adapters.postgres.event_store import PostgresEventStore
from shared.adapters.postgres.pool import Pool
from shared.application.pipeline import Pipeline
from shared.config import Settings
from shared.domain.commands import Command, CommandType
from shared.domain.decide import Context, decide
from shared.domain.status import StatusUpdate
from tests.stack import Stack, record_only
from tests.test_write_path import PERSON


async def test_same_command_published_twice_has_one_effect(stack: Stack, pool: Pool,
                                                           settings: Settings) -> None:
    db = await stack.new_database()
    command_id = await stack.submit("POST", f"/api/v1/ontology/{db}/async/create", PERSON)
    assert (await stack.wait(command_id))["status"] == "COMPLETED"
    row = await pool.fetchrow("SELECT topic, key, value FROM outbox WHERE value::jsonb->>'command_id' = $1",
                              command_id)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:  # the relay's at-least-once promise, acted out: the same record again, twice
        for _ in range(2):
            await producer.send_and_wait(row["topic"], row["value"].encode(), key=row["key"].encode())
    finally:
        await producer.stop()
    # Same key, so same partition: once this later command is done, the duplicates were consumed.
    later = await stack.run("PUT", f"/api/v1/ontology/{db}/async/Person", {"description": "after"})
    assert later["status"] == "COMPLETED", later
    events = await pool.fetch("SELECT event_type FROM events WHERE command_id = $1", uuid.UUID(command_id))
    assert [e["event_type"] for e in events] == ["ONTOLOGY_CLASS_CREATED"]
    code, cls = await stack.request("GET", f"/api/v1/ontology/{db}/classes/Person")
    assert cls["version"] == 2 and cls["description"] == "after"
    status = await stack.status(command_id)
    assert [h["status"] for h in status["result"]["history"]].count("COMPLETED") == 1


async def test_the_pipeline_run_twice_relies_on_the_event_store(pool: Pool, tmp_path: Path) -> None:
    """Without the Faust table's fast path: the unique constraints alone make the second run a no-op."""
    events, docs = PostgresEventStore(pool), PostgresDocumentStore(pool)
    pipeline = Pipeline(PostgresCommandLog(pool), events, docs, LocalDirEventArchive(tmp_path), lambda c: "unused")
    reports: list[StatusUpdate] = []

    async def report(update: StatusUpdate) -> None:
        reports.append(update)

    name = f"db-{uuid.uuid4().hex[:8]}"
    create_db = Command(command_type=CommandType.CREATE_DATABASE, aggregate_id=name, db_name=name,
                        actor="tester", payload={"name": name})
    await pipeline.execute(create_db, report)
    create = Command(command_type=CommandType.CREATE_ONTOLOGY_CLASS, aggregate_id="Person", db_name=name,
                     actor="tester", payload=PERSON)
    first = await pipeline.execute(create, report)
    second = await pipeline.execute(create, report)
    assert first.event_id == second.event_id
    assert len(await events.for_command(create.command_id)) == 1
    assert (await docs.get_class(name, "Person"))["version"] == 1  # type: ignore[index]
    assert [r.status for r in reports if r.command_id == str(create.command_id)] == [
        "PROCESSING", "COMPLETED", "COMPLETED"]


async def test_idempotency_key_returns_the_first_command(stack: Stack, pool: Pool) -> None:
    db = await stack.new_database()
    key = {"Idempotency-Key": uuid.uuid4().hex}
    before = await pool.fetchval("SELECT count(*) FROM commands")
    first = await stack.submit("POST", f"/api/v1/ontology/{db}/async/create", PERSON, headers=key)
    again = await stack.submit("POST", f"/api/v1/ontology/{db}/async/create", PERSON, headers=key)
    assert first == again
    assert await pool.fetchval("SELECT count(*) FROM commands") == before + 1
    assert (await stack.wait(first))["status"] == "COMPLETED"


async def test_a_command_whose_message_was_lost_is_requeued(stack: Stack, pool: Pool) -> None:
    """Recorded, but its Kafka message never consumed (here: never queued at all): the reconciliation
    sweep queues it again and it completes once."""
    db = await stack.new_database()
    lost = Command(command_type=CommandType.CREATE_ONTOLOGY_CLASS, aggregate_id="Lost", db_name=db,
                   actor="tester", payload={"id": "Lost"})
    await record_only(pool, lost)
    done = await stack.wait(str(lost.command_id), timeout=60)
    assert done["status"] == "COMPLETED", done
    assert len(await pool.fetch("SELECT 1 FROM events WHERE command_id = $1", lost.command_id)) == 1


async def test_the_stale_sweep_goes_on_from_the_oldest_command_still_without_an_event(pool: Pool) -> None:
    """Each round reads from the oldest command still without an event, not the whole log: a command queued
    again recently is left alone (and takes none of the round's limit) but keeps the round's start at it;
    once it has its event, the next round starts after it."""
    from shared.adapters.postgres.redelivery import requeue_stale_commands

    since = await pool.fetchval("SELECT clock_timestamp()")
    lost, later = (Command(command_type=CommandType.CREATE_ONTOLOGY_CLASS, aggregate_id=name, db_name="sweep",
                           actor="tester", payload={"id": name}) for name in ("Lost", "Later"))
    await record_only(pool, lost)
    await record_only(pool, later)
    recorded = await pool.fetchval("SELECT recorded_at FROM commands WHERE command_id = $1", lost.command_id)
    await asyncio.sleep(1.1)
    async with pool.acquire() as conn:
        assert await requeue_stale_commands(conn, 1.0, lambda c: "t", since, limit=1) == (1, recorded)
        # The one queued just now is left alone and does not take the round's one place: the next is queued.
        assert await requeue_stale_commands(conn, 1.0, lambda c: "t", recorded, limit=1) == (1, recorded)
        assert await requeue_stale_commands(conn, 1.0, lambda c: "t", recorded) == (0, recorded)  # both just now
        await PostgresEventStore(pool).append(decide(later, Context(current=None, last_version=0,
                                                                    database_exists=True)), "t")
        await PostgresEventStore(pool).append(decide(lost, Context(current=None, last_version=0,
                                                                   database_exists=True)), "t")
        await asyncio.sleep(1.1)
        count, start = await requeue_stale_commands(conn, 1.0, lambda c: "t", recorded)
    assert count == 0 and start > recorded
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE command_id = $1", lost.command_id) == 1


async def test_an_event_whose_document_was_never_written_is_applied(stack: Stack, pool: Pool) -> None:
    """The agent stored the event and stopped before writing the document: the sweep re-queues the
    command, and its redelivery applies the stored event without deciding again."""
    db = await stack.new_database()
    half = Command(command_type=CommandType.CREATE_ONTOLOGY_CLASS, aggregate_id="Half", db_name=db,
                   actor="tester", payload={"id": "Half", "description": "written halfway"})
    await record_only(pool, half)
    event = decide(half, Context(current=None, last_version=0, database_exists=True))
    await PostgresEventStore(pool).append(event, "unused-topic")
    for _ in range(600):
        code, cls = await stack.request("GET", f"/api/v1/ontology/{db}/classes/Half")
        if code == 200:
            break
        await asyncio.sleep(0.1)
    assert code == 200 and cls["event_id"] == str(event.event_id) and cls["version"] == 1
    assert len(await pool.fetch("SELECT 1 FROM events WHERE command_id = $1", half.command_id)) == 1


async def test_the_unapplied_sweep_ages_events_by_their_append_and_queues_a_command_once(pool: Pool) -> None:
    """A bulk command decides its events, archives them for a long while, then appends them: the sweep
    waits from the append (not from the decision) before calling them unapplied, and queues the command
    once however many of its aggregates lack their document."""
    from datetime import timedelta

    from shared.adapters.postgres.redelivery import requeue_unapplied_commands
    from shared.domain.commands import utcnow
    from shared.domain.events import Event, EventType

    db = f"db-{uuid.uuid4().hex[:8]}"
    docs = PostgresDocumentStore(pool)
    await docs.put_database({"name": db, "description": "d", "version": 1, "source_command_id": "c",
                             "event_id": "e"})
    start = await pool.fetchval("SELECT coalesce(max(position), 0) FROM events")  # other tests' events before
    bulk = Command(command_type=CommandType.BULK_CREATE_INSTANCES, aggregate_id=db, db_name=db, actor="tester",
                   payload={"class_id": "Thing", "instances": [{"instance_id": f"t{i}"} for i in range(50)]})
    await record_only(pool, bulk)
    decided = utcnow() - timedelta(minutes=5)
    await PostgresEventStore(pool).append_many([Event(
        event_id=uuid.uuid4(), event_type=EventType.INSTANCE_CREATED, aggregate_type=bulk.aggregate_type,
        aggregate_id=f"t{i}",
        db_name=db, version=1, command_id=bulk.command_id, actor="tester", occurred_at=decided,
        data={"instance_id": f"t{i}", "class_id": "Thing", "data": {}, "version": 1}) for i in range(50)], "t")
    # A replay's own events have versions but no document: never taken for unapplied ones.
    replay = Command(command_type=CommandType.REQUEST_REPLAY, aggregate_id=str(uuid.uuid4()), db_name=db,
                     actor="tester", payload={"targets": ["documents"], "reason": "drill"})
    await record_only(pool, replay)
    await PostgresEventStore(pool).append(Event(
        event_id=uuid.uuid4(), event_type=EventType.REPLAY_REQUESTED, aggregate_type=replay.aggregate_type,
        aggregate_id=replay.aggregate_id, db_name=db, version=1, command_id=replay.command_id, actor="tester",
        data={"targets": ["documents"]}), "t")
    queued = "SELECT count(*) FROM outbox WHERE command_id = $1"
    async with pool.acquire() as conn:
        assert await requeue_unapplied_commands(conn, docs, start, 8, lambda c: "t") == (0, start)  # just now
        assert await pool.fetchval(queued, bulk.command_id) == 0
        count, checked = await requeue_unapplied_commands(conn, docs, start, 0, lambda c: "t")
        assert count == 1 and checked > start
    assert await pool.fetchval(queued, bulk.command_id) == 1
    assert await pool.fetchval(queued, replay.command_id) == 0
