"""Projection throughput into Elasticsearch: live through Kafka and the Faust agent, during a rebuild, and raw.

Run: .venv/bin/python -m bench.projection [N] [--json]   (PostgreSQL, Kafka, Elasticsearch must run: ./spice.sh up)
Own namespace, PostgreSQL database and worker (on a free port), removed afterwards. Measures:
- live: N instance events produced to `<ns>-instance-events` → the projection agent of a real worker →
  all N searchable (`_count`), events/s; projection lag (events behind, sampled every 0.2 s) p50/p99/max;
- rebuild: the same N events read from the event store in global order into fresh indices, events/s;
- raw: Projector.apply on batches of 500 in this process (no Kafka), events/s: the ceiling.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer

from shared.adapters.postgres.event_store import PostgresEventStore
from shared.adapters.postgres.pool import create_pool, migrate
from shared.adapters.search import indices
from shared.adapters.search.lag import projection_lag
from shared.adapters.search.projector import Projector
from shared.adapters.search.rebuild import rebuild
from shared.config import TOPICS, Settings
from shared.domain.commands import AggregateType
from shared.domain.events import Event, EventType
from shared.stack import kafka, postgres

ROOT = Path(__file__).resolve().parent.parent
PERSON = {"id": "Person", "class_id": "Person", "label": {"en": "Person", "ko": "사람"}, "version": 1,
          "properties": [{"name": "name", "type": "string"}, {"name": "age", "type": "integer"},
                         {"name": "score", "type": "decimal"}, {"name": "born", "type": "date"}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[int], p: float) -> int:
    ordered = sorted(values) or [0]
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def events_for(db: str, n: int) -> list[Event]:
    def ev(kind: str, agg_type: str, agg: str, version: int, data: dict[str, Any]) -> Event:
        return Event(event_id=uuid.uuid4(), event_type=EventType(kind), aggregate_type=AggregateType(agg_type),
                     aggregate_id=agg, db_name=db, version=version, command_id=uuid.uuid4(), actor="bench",
                     data=data)

    out = [ev("DATABASE_CREATED", "database", db, 1, {"name": db}),
           ev("ONTOLOGY_CLASS_CREATED", "ontology_class", "Person", 1, PERSON)]
    for i in range(n):
        iid = f"p{i:07d}"
        out.append(ev("INSTANCE_CREATED", "instance", iid, 1, {
            "instance_id": iid, "class_id": "Person", "version": 1,
            "data": {"name": f"Person {i} {'Kim' if i % 3 else 'Lee'}", "age": i % 90, "score": i / 7,
                     "born": f"{1950 + i % 60}-0{1 + i % 9}-1{i % 10}"}}))
    return out


async def count(es: Any, name: str) -> int:
    resp = await es.options(ignore_status=404).count(index=name)
    return int(resp.body.get("count", 0))


async def live(settings: Settings, env: dict[str, str], events: list[Event], db: str, es: Any) -> dict[str, Any]:
    log = open(f"/tmp/{settings.namespace}-worker.log", "wb")  # noqa: SIM115, ASYNC230 — the child's log
    worker = subprocess.Popen(  # noqa: ASYNC220 — started once, before timing
        [sys.executable, "-m", "faust", "-A", "agents.worker", "worker", "-l", "info"],
        env={**os.environ, **env}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                if worker.poll() is not None:
                    raise RuntimeError(f"bench worker exited: see /tmp/{settings.namespace}-worker.log")
                try:
                    async with http.get(f"{settings.worker_url}/ready") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError("bench worker not ready")
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5, acks="all")
        await producer.start()
        alias = indices.alias(settings.namespace, db, indices.INSTANCES)
        n = len(events) - 2
        lags: list[int] = []
        done = asyncio.Event()

        async def sample_lag() -> None:
            # Its own task, every half second: a lag reading opens Kafka clients, too heavy to gate the
            # completion check on (it would also steal the cores the projection runs on).
            while not done.is_set():
                lags.append(int((await projection_lag(settings))["lag"]))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), 0.5)

        try:
            t0 = time.perf_counter()
            sampler = asyncio.create_task(sample_lag())
            for e in events:
                channel = {"database": "database", "ontology_class": "ontology", "instance": "instance"}
                topic = settings.topic(f"{channel[e.aggregate_type.value]}-events")
                await producer.send(topic, json.dumps(e.to_message()).encode(),
                                    key=f"{e.db_name}/{e.aggregate_id}".encode())
            await producer.flush()
            produced = time.perf_counter() - t0
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                # No forced refresh: the indices refresh every 250 ms by themselves, and forcing one every
                # poll would slow the indexing being measured. Searchable as a user would see it.
                if await count(es, alias) >= n:
                    break
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - t0
            done.set()
            await sampler
        finally:
            done.set()
            await producer.stop()
        return {"events": n, "seconds": elapsed, "rate": n / elapsed, "produce_seconds": produced,
                "lag_p50": pct(lags, 50), "lag_p99": pct(lags, 99), "lag_max": max(lags or [0])}
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()


async def main(n: int, as_json: bool) -> None:
    ns = f"bench{uuid.uuid4().hex[:6]}"
    env = {"SPICE_NAMESPACE": ns, "SPICE_PG_DATABASE": f"bench_{ns}", "SPICE_WORKER_WEB_PORT": str(free_port())}
    os.environ.update(env)
    settings = Settings()
    await postgres.create_database(settings, settings.pg_database)
    await migrate(settings.pg_dsn)
    await kafka.ensure_topics(settings, [settings.topic(t) for t in TOPICS], settings.partitions)
    es = indices.client(settings, timeout=60)
    db = "bench"
    events = events_for(db, n)
    pool = await create_pool(settings.pg_dsn, min_size=1, max_size=4)
    store = PostgresEventStore(pool)
    try:
        for i in range(0, len(events), 1000):  # the same events in the event store, for the rebuild
            await store.append_many(events[i:i + 1000], settings.topic("instance-events"))
        print(f"namespace {ns}, {n} instance events")
        result = await live(settings, env, events, db, es)
        print(f"live (Kafka → Faust agent → bulk): {result['events']} events in {result['seconds']:.1f}s = "
              f"{result['rate']:.0f} events/s (produce took {result['produce_seconds']:.1f}s); "
              f"lag p50 {result['lag_p50']}, p99 {result['lag_p99']}, max {result['lag_max']} events")
        rebuilt = await rebuild(es, store, ns, db)
        print(f"rebuild (event store → fresh indices → alias swap): {rebuilt.events_projected} events in "
              f"{rebuilt.seconds:.1f}s = {rebuilt.rate:.0f} events/s")
        raw_db = "raw"
        projector = Projector(es, ns)
        raw = [e.model_copy(update={"db_name": raw_db}) for e in events]
        t0 = time.perf_counter()
        for i in range(0, len(raw), 500):
            await projector.apply(raw[i:i + 500])
        await es.indices.refresh(index=indices.alias(ns, raw_db, indices.INSTANCES))
        elapsed = time.perf_counter() - t0
        print(f"raw (Projector.apply, batches of 500, no Kafka): {n} events in {elapsed:.1f}s = "
              f"{n / elapsed:.0f} events/s")
        print(f"live / raw = {result['rate'] / (n / elapsed):.3f}")
        if as_json:
            print(json.dumps({"bench": "projection", "events": n, "live_per_s": result["rate"],
                              "live_seconds": result["seconds"], "lag_p50": result["lag_p50"],
                              "lag_p99": result["lag_p99"], "lag_max": result["lag_max"],
                              "rebuild_per_s": rebuilt.rate, "raw_per_s": n / elapsed,
                              "live_ratio": result["rate"] / (n / elapsed)}))
    finally:
        for name in (db, "raw"):
            await indices.drop_database(es, ns, name)
        await es.close()
        await pool.close()
        await postgres.drop_database(settings, settings.pg_database)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--json"]
    asyncio.run(main(int(args[0]) if args else 20000, "--json" in sys.argv[1:]))
