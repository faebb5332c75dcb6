"""The outbox relay: no row skipped when commits come out of order, per-key order kept, two relays."""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.adapters.outbox_relay import OutboxRelay
from shared.adapters.postgres.pool import migrate
from shared.config import MAX_MESSAGE_BYTES, Settings
from shared.stack import kafka, postgres


@pytest.fixture(scope="module")
async def relay_dsn(settings: Settings) -> AsyncIterator[str]:
    """A database of its own, so these relays never compete with the running stack's relay."""
    name = f"{settings.pg_database}_relay"
    await postgres.create_database(settings, name)
    dsn = settings.pg_dsn.rsplit("/", 1)[0] + f"/{name}"
    await migrate(dsn)
    yield dsn


async def new_topic(settings: Settings) -> str:
    """A fresh topic whose every partition has a leader (a probe message reaches each)."""
    topic = settings.topic(f"relay-{uuid.uuid4().hex[:8]}")
    await kafka.ensure_topics(settings, [topic], 4)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for partition in sorted(await producer.partitions_for(topic)):
            await producer.send_and_wait(topic, b'{"probe": true}', partition=partition)
    finally:
        await producer.stop()
    return topic


async def insert(conn: asyncpg.Connection, topic: str, key: str, seq: int) -> None:
    await conn.execute("INSERT INTO outbox (topic, key, value) VALUES ($1, $2, $3)", topic, key,
                       json.dumps({"key": key, "seq": seq}))


async def consume(settings: Settings, topic: str, expected: int, timeout: float = 60) -> list[dict[str, object]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    got: list[dict[str, object]] = []
    try:
        async with asyncio.timeout(timeout):
            while len(got) < expected:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    got.extend(m for m in (json.loads(r.value) for r in records) if "probe" not in m)
        extra = await consumer.getmany(timeout_ms=1000)  # nothing beyond what was written
        got.extend(m for records in extra.values() for m in (json.loads(r.value) for r in records)
                   if "probe" not in m)
    finally:
        await consumer.stop()
    return got


async def test_row_of_a_transaction_committing_late_is_not_skipped(settings: Settings, relay_dsn: str) -> None:
    """The commit-order gap: a row with a lower id whose transaction commits after a higher id was
    relayed is still relayed, in commit order."""
    topic = await new_topic(settings)
    early, late = await asyncpg.connect(relay_dsn), await asyncpg.connect(relay_dsn)
    stop = asyncio.Event()
    relay = OutboxRelay(relay_dsn, settings.kafka_bootstrap, name=f"gap-{topic}", poll_interval=0.2)
    task = asyncio.create_task(relay.run(stop))
    try:
        tx = early.transaction()
        await tx.start()
        await insert(early, topic, "k", 1)  # the lower id, still uncommitted
        await insert(late, topic, "k", 2)   # the higher id, committed and relayed first
        assert [m["seq"] for m in await consume(settings, topic, 1)] == [2]
        await tx.commit()
        assert [m["seq"] for m in await consume(settings, topic, 2)] == [2, 1]
    finally:
        stop.set()
        await task
        await early.close()
        await late.close()


async def test_concurrent_writers_and_two_relays(settings: Settings, relay_dsn: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="shared.adapters.outbox_relay")
    topic = await new_topic(settings)
    writers, per_writer = 8, 150
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    name = f"pair-{topic}"
    relay_a = OutboxRelay(relay_dsn, settings.kafka_bootstrap, name=name, batch_size=64)
    relay_b = OutboxRelay(relay_dsn, settings.kafka_bootstrap, name=name, batch_size=64)
    tasks = [asyncio.create_task(relay_a.run(stop_a)), asyncio.create_task(relay_b.run(stop_b))]

    async def writer(i: int) -> None:
        conn = await asyncpg.connect(relay_dsn)
        try:
            for seq in range(per_writer):
                async with conn.transaction():
                    await insert(conn, topic, f"agg-{i % 4}-{i}", seq)
                    if seq % 7 == 0:
                        await asyncio.sleep(0.003)  # hold the transaction open: commits interleave
        finally:
            await conn.close()

    try:
        writing = asyncio.gather(*(writer(i) for i in range(writers)))
        await asyncio.sleep(0.3)
        first = relay_a if relay_a.leader.is_set() else relay_b
        # Fail over mid-stream: the active relay stops, the standby takes over what is still unmarked.
        (stop_a if first is relay_a else stop_b).set()
        await writing
        got = await consume(settings, topic, writers * per_writer)
    finally:
        stop_a.set()
        stop_b.set()
        await asyncio.gather(*tasks)
    by_key: dict[str, list[int]] = defaultdict(list)
    for message in got:
        by_key[str(message["key"])].append(int(message["seq"]))  # type: ignore[call-overload]
    assert len(by_key) == writers
    for key, seqs in by_key.items():
        assert sorted(set(seqs)) == list(range(per_writer)), f"{key}: rows lost"
        assert_in_order_with_replays(key, seqs)
    assert relay_a.leader.is_set() and relay_b.leader.is_set(), "both relays should have led in turn"


def assert_in_order_with_replays(key: str, seqs: list[int]) -> None:
    """A row never arrives before one written ahead of it. At-least-once may replay rows already
    published (a relay stopped after sending, before marking them): those are duplicates of what came
    before, tolerated because consumers deduplicate."""
    high = -1
    for seq in seqs:
        if seq > high:
            assert seq == high + 1, f"{key}: {seq} arrived before {high + 1}: {seqs}"
            high = seq


async def test_a_row_too_large_for_the_broker_is_refused_and_the_rows_after_it_go_out(
        settings: Settings, relay_dsn: str) -> None:
    topic, dead = await new_topic(settings), await new_topic(settings)
    relay = OutboxRelay(relay_dsn, settings.kafka_bootstrap, name=f"big-{topic}", poll_interval=0.2,
                        dead_letter_topic=dead)
    conn = await asyncpg.connect(relay_dsn)
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    try:
        await insert(conn, topic, "k", 1)
        big = await conn.fetchval("INSERT INTO outbox (topic, key, value) VALUES ($1, 'k', $2) RETURNING id",
                                  topic, json.dumps({"key": "k", "seq": 2, "pad": "x" * (MAX_MESSAGE_BYTES + 1)}))
        await insert(conn, topic, "k", 3)
        got = await consume(settings, topic, 2)
        assert [m["seq"] for m in got] == [1, 3]
        [letter] = await consume(settings, dead, 1)
        assert letter["reason"] == "too_large" and json.loads(str(letter["message"]))["outbox_id"] == big
        refused = await conn.fetchval("SELECT refused FROM outbox WHERE id = $1", big)
        assert refused is not None and "bytes" in refused
    finally:
        stop.set()
        await running
        await conn.close()
