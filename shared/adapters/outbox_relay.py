"""Outbox relay: publishes committed outbox rows to Kafka in commit-safe order, at least once."""
from __future__ import annotations

import asyncio
import itertools
import logging
from collections import defaultdict
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

log = logging.getLogger(__name__)

RELAY_LOCK = 7_200_312  # advisory lock id: one active relay at a time, others stand by

# Rows strictly after the cursor in (txid, id) order. `ready` is true for rows written by a
# transaction older than the snapshot's xmin.
#
# The commit-order gap: ids (and txids) are assigned when a row is inserted, but rows become
# visible when their transaction commits, which can be in another order. A cursor on `id` alone
# would skip a row with a lower id whose transaction commits after a higher id was relayed.
# pg_snapshot_xmin() is the oldest transaction still running: every transaction with a txid below
# it has finished, so the set of rows with txid < xmin can never grow again. Relaying only that
# prefix, in (txid, id) order, and moving the cursor only within it, means no row can later appear
# behind the cursor. Rows of a still-open older transaction simply wait until it ends.
FETCH = """
WITH horizon AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
SELECT id, txid::text AS txid, topic, key, value, txid < horizon.xmin AS ready
FROM outbox, horizon
WHERE (txid, id) > ($1::text::xid8, $2::bigint)
ORDER BY txid, id
LIMIT $3
"""

# Never moves backwards, even if a stale relay that lost its lock writes late.
SAVE_CURSOR = """
INSERT INTO relay_cursor (name, txid, id) VALUES ($1, $2::text::xid8, $3)
ON CONFLICT (name) DO UPDATE SET txid = EXCLUDED.txid, id = EXCLUDED.id, updated_at = clock_timestamp()
WHERE (relay_cursor.txid, relay_cursor.id) < (EXCLUDED.txid, EXCLUDED.id)
"""


@dataclass
class RelayStats:
    published: int = 0
    batches: int = 0


class OutboxRelay:
    def __init__(self, dsn: str, bootstrap: str, name: str = "main", batch_size: int = 5000,
                 poll_interval: float = 1.0) -> None:
        self.dsn = dsn
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
        finally:
            await conn.close()

    async def _relay(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        wake = asyncio.Event()
        await conn.add_listener("spice_outbox", lambda *_: wake.set())
        # Not the idempotent producer: with hand-built batches it was seen (on a fresh broker) to have
        # a whole batch acknowledged yet absent. Order and completeness come from sending one batch
        # per partition at a time and saving the cursor only after every acknowledgement; a retried
        # batch can then only repeat rows (at-least-once), never reorder or drop them.
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=False, linger_ms=2,
            max_batch_size=256 * 1024, max_request_size=8 * 1024 * 1024,
        )
        await producer.start()
        try:
            row = await conn.fetchrow("SELECT txid::text AS txid, id FROM relay_cursor WHERE name = $1",
                                      self.name)
            cursor = (row["txid"], row["id"]) if row else ("0", 0)
            while not stop.is_set():
                wake.clear()
                # One snapshot for the scan and the horizon: what the scan sees and what xmin
                # promises must describe the same moment.
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    rows = await conn.fetch(FETCH, cursor[0], cursor[1], self.batch_size)
                # The ready rows are a prefix (ordered by txid, one horizon): stop at the first
                # row that is not, never step over it.
                ready = list(itertools.takewhile(lambda r: r["ready"], rows))
                if ready:
                    try:
                        await self._publish(producer, ready)
                    except KafkaError as exc:
                        # Nothing is marked: the same rows go again from the same cursor (at-least-once;
                        # consumers deduplicate), after a pause that lets the broker recover.
                        log.warning("publishing %d rows failed, retrying: %r", len(ready), exc)
                        self._partitions.clear()
                        await _wait(stop, 0.5)
                        continue
                    cursor = (ready[-1]["txid"], ready[-1]["id"])
                    # Saved only after the broker acknowledged every row: a crash before this line
                    # republishes the batch (at-least-once; consumers deduplicate by command/event id).
                    await conn.execute(SAVE_CURSOR, self.name, cursor[0], cursor[1])
                if len(ready) == self.batch_size:
                    continue
                if len(rows) > len(ready):
                    await _wait(stop, 0.002)  # rows behind an open transaction: look again shortly
                else:
                    await _wait_any(stop, wake, self.poll_interval)  # NOTIFY, or poll as a fallback
        finally:
            await producer.stop()

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
