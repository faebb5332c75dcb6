"""Outbox relay: publishes committed outbox rows to Kafka in commit-safe order, at least once."""
from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from shared import dead_letters, metrics
from shared.config import BROKER_MESSAGE_BYTES, MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

RELAY_LOCK = 7_200_312  # advisory lock id: one active relay at a time, others stand by
# tests/test_faults.py sets this to stage a relay killed after publishing, before marking the rows.
EXIT_AFTER_PUBLISH = os.environ.get("SPICE_TEST_RELAY_EXIT_AFTER_PUBLISH") == "1"

# The commit-order gap: ids are assigned when a row is inserted, but a row becomes visible when its
# transaction commits, which can be in another order, so a relay that remembered "everything up to
# id N is done" would skip a row with a lower id committed after N was relayed. This relay keeps no
# such cursor: it selects rows that are still unpublished, whatever their id, and marks them only
# after the broker acknowledged them. A late row is simply picked up by the next fetch. Per key the
# order is the commit order: rows of one key written one after another (one aggregate's commands,
# each recorded after the previous committed) get increasing ids and are both visible by the time
# the later one is, so `ORDER BY id` sends them in that order.
FETCH = """
SELECT id, topic, key, value, command_id FROM outbox
WHERE published_at IS NULL
ORDER BY id
LIMIT $1
"""

MARK = "UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY($1::bigint[])"
REFUSE = "UPDATE outbox SET published_at = clock_timestamp(), refused = $2 WHERE id = $1"


@dataclass
class RelayStats:
    published: int = 0
    batches: int = 0


class OutboxRelay:
    def __init__(self, dsn: str, bootstrap: str, name: str = "main", batch_size: int = 5000,
                 poll_interval: float = 1.0, dead_letter_topic: str | None = None) -> None:
        self.dsn = dsn
        self.dead_letter_topic = dead_letter_topic
        self.bootstrap = bootstrap
        self.name = name
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.stats = RelayStats()
        self.leader = asyncio.Event()
        self._partitions: dict[str, list[int]] = {}
        # The Java client's murmur2 partitioner, as every Kafka producer uses by default: a key maps
        # to the same partition whoever produces it.
        self._partitioner = DefaultPartitioner()

    async def run(self, stop: asyncio.Event) -> None:
        """Wait for leadership, then relay until `stop` is set or the connection fails."""
        conn = await asyncpg.connect(self.dsn)
        try:
            while not stop.is_set():
                # Session-level lock: if this process dies its connection closes and the lock is
                # released, so a standby relay takes over from the saved cursor.
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK):
                    break
                await _wait(stop, 0.5)
            if stop.is_set():
                return
            self.leader.set()
            log.info("relay %s is the active relay", self.name)
            await self._relay(conn, stop)
        except asyncpg.InternalClientError:
            # The connection is this relay's alone: a clash of protocol states means a PostgreSQL restart
            # ended the session while it was idle (see shared/adapters/postgres/pool.py). Gone, transiently.
            raise asyncpg.ConnectionDoesNotExistError(
                "the server ended the connection (PostgreSQL restarting or stopping)") from None
        finally:
            try:
                await conn.close(timeout=5)
            except Exception:  # noqa: BLE001 — a connection a restart broke: drop it
                conn.terminate()

    async def _relay(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        wake = asyncio.Event()
        await conn.add_listener("spice_outbox", lambda *_: wake.set())
        # Not the idempotent producer: with hand-built batches it was seen (on a fresh broker) to have
        # a whole batch acknowledged yet absent. Order and completeness come from sending one batch
        # per partition at a time and marking rows only after every acknowledgement; a retried
        # batch can then only repeat rows (at-least-once), never reorder or drop them.
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=False, linger_ms=2,
            max_batch_size=256 * 1024, max_request_size=BROKER_MESSAGE_BYTES,
        )
        await producer.start()
        try:
            while not stop.is_set():
                wake.clear()
                rows = await conn.fetch(FETCH, self.batch_size)
                rows = await self._refuse_oversized(conn, producer, rows)
                if rows:
                    try:
                        await self._publish(producer, rows)
                    except KafkaError as exc:
                        # Nothing is marked: the same rows go again (at-least-once; consumers
                        # deduplicate), after a pause that lets the broker recover.
                        log.warning("publishing %d rows failed, retrying: %r", len(rows), exc)
                        self._partitions.clear()
                        await _wait(stop, 0.5)
                        continue
                    if EXIT_AFTER_PUBLISH:  # test hook, off by default: die between publish and mark
                        os._exit(75)
                    # Marked only after the broker acknowledged every row: a crash before this line
                    # publishes the batch again (at-least-once), never loses it.
                    await conn.execute(MARK, [r["id"] for r in rows])
                    for topic, count in Counter(r["topic"] for r in rows).items():
                        metrics.RELAY_PUBLISHED.labels(topic).inc(count)
                    # One line per batch, naming its commands: a command's path is one grep (event rows
                    # name theirs inside the event).
                    commands = " ".join(str(r["command_id"]) for r in rows if r["command_id"] is not None)
                    log.info("published %d row(s), ids %s..%s%s", len(rows), rows[0]["id"], rows[-1]["id"],
                             f"; commands {commands}" if commands else "")
                if len(rows) < self.batch_size:
                    await _wait_any(stop, wake, self.poll_interval)  # NOTIFY, or poll as a fallback
        finally:
            await producer.stop()

    async def _refuse_oversized(self, conn: asyncpg.Connection, producer: AIOKafkaProducer,
                                rows: list[asyncpg.Record]) -> list[asyncpg.Record]:
        """Rows no broker will take are given up one by one (dead-lettered, then marked with why), so
        they cannot stall every row after them: retrying them would fail the same way for ever."""
        keep: list[asyncpg.Record] = []
        for row in rows:
            size = len(row["key"].encode()) + len(row["value"].encode())
            if size <= MAX_MESSAGE_BYTES:
                keep.append(row)
                continue
            why = f"{size} bytes: more than the {MAX_MESSAGE_BYTES} one Kafka message carries"
            log.error("outbox row %s for %s (key %s) refused: %s", row["id"], row["topic"], row["key"], why)
            if self.dead_letter_topic:
                summary = json.dumps({"outbox_id": row["id"], "topic": row["topic"], "bytes": size})
                await producer.send_and_wait(self.dead_letter_topic, dead_letters.encode(
                    summary, why, reason="too_large", key=row["key"]), key=row["key"].encode())
            await conn.execute(REFUSE, row["id"], why)
            metrics.RELAY_REFUSED.inc()
        return keep

    async def _publish(self, producer: AIOKafkaProducer, rows: list[asyncpg.Record]) -> None:
        by_partition: dict[tuple[str, int], list[asyncpg.Record]] = defaultdict(list)
        for row in rows:
            topic = row["topic"]
            if topic not in self._partitions:
                self._partitions[topic] = sorted(await producer.partitions_for(topic))
            partitions = self._partitions[topic]
            by_partition[(topic, self._partitioner(row["key"].encode(), partitions, partitions))].append(row)
        # Partitions are independent, so they go out concurrently; within one, see _send_in_order.
        await asyncio.gather(*(self._send_in_order(producer, topic, partition, part)
                               for (topic, partition), part in by_partition.items()))
        self.stats.published += len(rows)
        self.stats.batches += 1

    @staticmethod
    async def _send_in_order(producer: AIOKafkaProducer, topic: str, partition: int,
                             rows: list[asyncpg.Record]) -> None:
        # One batch in flight per partition, the next sent only after the broker acknowledged the
        # previous: a batch that is retried can never land behind a later one, so one key's rows
        # reach Kafka in (txid, id) order whatever errors and retries happen on the way.
        batch = producer.create_batch()
        for row in rows:
            key, value = row["key"].encode(), row["value"].encode()
            if batch.append(key=key, value=value, timestamp=None) is None:
                await (await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"outbox row {row['id']} does not fit in a Kafka batch")
        if batch.record_count():
            await (await producer.send_batch(batch, topic, partition=partition))


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
