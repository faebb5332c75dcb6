"""Write-path throughput and latency against a running stack (`./spice.sh up`), with same-run baselines.

Run: .venv/bin/python -m bench.write_path [N] [CONCURRENCY]
System: N ontology-class commands over HTTP at CONCURRENCY → accepted/s, submit p50/p99,
submit→COMPLETED p50/p99 (seen on Redis), end-to-end commands/s, relay rows/s.
Baselines in the same run: a raw aiokafka produce loop (msgs/s) and a bare Faust agent forwarding
between two topics on the same broker (events/s).
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import aiohttp
import asyncpg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.channels import user_channel
from shared.config import load
from shared.stack import kafka


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


async def raw_produce(bootstrap: str, topic: str, n: int) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    t0 = time.perf_counter()
    futures = [await producer.send(topic, b'{"n": %d}' % i, key=b"k%d" % (i % 64)) for i in range(n)]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - t0
    await producer.stop()
    return n / elapsed


async def faust_forwarder(n: int) -> float:
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    s = load()
    await kafka.ensure_topics(s, [f"{prefix}-in", f"{prefix}-out"], 4)
    env = {**os.environ, "BENCH_PREFIX": prefix}
    proc = subprocess.Popen(  # noqa: ASYNC220 — started once, before timing
        [sys.executable, "-m", "faust", "-A", "bench.forwarder", "worker", "-l", "warn"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    consumer = AIOKafkaConsumer(f"{prefix}-out", bootstrap_servers=s.kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        # Warm up: one message through before timing.
        producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, linger_ms=5)
        await producer.start()
        await producer.send_and_wait(f"{prefix}-in", b"warm", key=b"w")
        async with asyncio.timeout(120):
            while not any((await consumer.getmany(timeout_ms=500)).values()):
                pass
        t0 = time.perf_counter()
        futures = [await producer.send(f"{prefix}-in", b"x" * 200, key=b"k%d" % (i % 64)) for i in range(n)]
        await asyncio.gather(*futures)
        await producer.stop()
        got = 0
        async with asyncio.timeout(300):
            while got < n:
                batch = await consumer.getmany(timeout_ms=500)
                got += sum(len(v) for v in batch.values())
        return n / (time.perf_counter() - t0)
    finally:
        await consumer.stop()
        proc.terminate()
        proc.wait(30)


async def system(n: int, concurrency: int) -> dict[str, float]:
    s = load()
    base = f"http://{s.web_host}:{s.web_port}"
    token = (s.home / "admin.token").read_text().strip()
    client = aioredis.Redis.from_url(s.redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(user_channel(s, s.admin_user))
    submitted: dict[str, float] = {}
    completed: dict[str, float] = {}
    submit_lat: list[float] = []
    rejected = 0

    async def listen() -> None:
        while len(completed) < n:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is None:
                continue
            body = json.loads(message["data"])
            if body["status"] in ("COMPLETED", "FAILED") and body["command_id"] not in completed:
                completed[body["command_id"]] = time.perf_counter()

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}, connector=connector) as http:
        db = f"wp-{uuid.uuid4().hex[:6]}"
        async with http.post(f"{base}/api/v1/database/create", json={"name": db}) as resp:
            assert resp.status == 202
        await asyncio.sleep(1)
        listener = asyncio.create_task(listen())
        queue = list(range(n))

        async def worker() -> None:
            nonlocal rejected
            while queue:
                i = queue.pop()
                t0 = time.perf_counter()
                async with http.post(f"{base}/api/v1/ontology/{db}/async/create", json={"id": f"C{i}"}) as resp:
                    body = await resp.json()
                t1 = time.perf_counter()
                if resp.status != 202:
                    rejected += 1
                    continue
                submit_lat.append(t1 - t0)
                submitted[body["command_id"]] = t0

        t_start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        t_submitted = time.perf_counter()
        async with asyncio.timeout(600):
            await listener
        t_done = time.perf_counter()
    await pubsub.aclose()
    await client.aclose()
    conn = await asyncpg.connect(s.pg_dsn)
    row = await conn.fetchrow(
        "SELECT count(*) AS n, extract(epoch FROM max(published_at) - min(created_at)) AS span FROM outbox "
        "WHERE created_at >= now() - make_interval(secs => $1)", t_done - t_start + 1)
    await conn.close()
    e2e = [completed[c] - submitted[c] for c in submitted if c in completed]
    return {"accepted": len(submitted), "rejected": rejected,
            "accepted_per_s": len(submitted) / (t_submitted - t_start),
            "submit_p50": pct(submit_lat, 50), "submit_p99": pct(submit_lat, 99),
            "e2e_p50": pct(e2e, 50), "e2e_p99": pct(e2e, 99), "completed_per_s": n / (t_done - t_start),
            "relay_rows_per_s": float(row["n"]) / max(float(row["span"] or 1), 1e-6)}


async def main(n: int, concurrency: int) -> None:
    s = load()
    topic = f"bench-raw-{uuid.uuid4().hex[:6]}"
    await kafka.ensure_topics(s, [topic], 4)
    raw = await raw_produce(s.kafka_bootstrap, topic, 20000)
    forwarder = await faust_forwarder(5000)
    result = await system(n, concurrency)
    print(f"baseline raw aiokafka produce      {raw:10.0f} msgs/s")
    print(f"baseline bare Faust forwarder      {forwarder:10.0f} events/s")
    print(f"system, {n} commands at concurrency {concurrency}: accepted {result['accepted']:.0f}, "
          f"rejected {result['rejected']:.0f}")
    print(f"  accepted                         {result['accepted_per_s']:10.0f} commands/s "
          f"({result['accepted_per_s'] / raw:.3f}x raw produce)")
    print(f"  submit latency                   p50 {result['submit_p50']:.1f} ms  p99 {result['submit_p99']:.1f} ms")
    print(f"  submit -> COMPLETED              p50 {result['e2e_p50']:.1f} ms  p99 {result['e2e_p99']:.1f} ms")
    print(f"  end to end                       {result['completed_per_s']:10.0f} commands/s "
          f"({result['completed_per_s'] / forwarder:.3f}x Faust forwarder)")
    print(f"  relay                            {result['relay_rows_per_s']:10.0f} rows/s "
          f"({result['relay_rows_per_s'] / raw:.3f}x raw produce)")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(args[0] if args else 2000, args[1] if len(args) > 1 else 100))
