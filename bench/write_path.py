"""Write-path throughput and latency, each figure beside a baseline measured in the same run.

Run: .venv/bin/python -m bench.write_path [N] [CONCURRENCY] [--own-stack] [--relay-rows R] [--json]
System: N ontology-class commands over HTTP at CONCURRENCY → accepted/s, submit p50/p99,
submit→COMPLETED p50/p99 (seen on Redis), end-to-end commands/s. Relay alone: R outbox rows written
with no relay running, then one relay started and timed until every row is published and marked.
Baselines in the same run: a raw aiokafka produce loop (msgs/s; for the relay), a bare aiohttp handler
inserting one row per request in its own transaction on the same PostgreSQL, driven by the same client
at the same concurrency (requests/s; for accepted/s), and a bare Faust agent forwarding between two
topics on the same broker (events/s; for end to end). --json ends with one JSON line of every figure.
Without --own-stack it measures the running `./spice.sh up`; with it, a relay, worker and web view of
its own namespace on the running services (bench/own_stack.py). On a 2-core machine shared with other
work the figures are noisy: compare ratios from one run, not absolute numbers across runs.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from bench.own_stack import ROOT, own_stack
from shared.adapters.outbox_relay import OutboxRelay
from shared.adapters.postgres.pool import migrate
from shared.channels import user_channel
from shared.config import Settings, load
from shared.stack import kafka, postgres
from shared.tokens import issue

# Roughly the size of a recorded class-create command message.
VALUE = json.dumps({"command_type": "CREATE_ONTOLOGY_CLASS", "payload": {"id": "C", "pad": "x" * 300}}).encode()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000 if ordered else 0.0


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    transient=False)


async def raw_produce(bootstrap: str, topic: str, n: int, progress: Progress) -> float:
    task = progress.add_task("baseline: raw aiokafka produce", total=n)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    t0 = time.perf_counter()
    futures = []
    for i in range(n):
        futures.append(await producer.send(topic, VALUE, key=b"k%d" % (i % 64)))
        if i % 1000 == 999:  # the bar moves per thousand sends: per-message updates cost as much as a send
            progress.advance(task, 1000)
    await asyncio.gather(*futures)
    progress.update(task, completed=n)
    elapsed = time.perf_counter() - t0
    await producer.stop()
    return n / elapsed


async def faust_forwarder(s: Settings, n: int, progress: Progress) -> float:
    task = progress.add_task("baseline: bare Faust forwarder", total=n)
    prefix = f"bench{uuid.uuid4().hex[:6]}"
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
                count = sum(len(v) for v in batch.values())
                got += count
                progress.advance(task, count)
        return n / (time.perf_counter() - t0)
    finally:
        await consumer.stop()
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(ROOT / f"{prefix}-forwarder-data", ignore_errors=True)  # Faust's data dir, in cwd


async def relay_alone(s: Settings, rows: int, progress: Progress, **relay_options: Any) -> float:
    """Rows/s of one relay draining a backlog: R rows inserted while no relay runs (own database and
    topic), then a relay started and timed from leadership until every row is published and marked."""
    task = progress.add_task("relay alone: outbox → Kafka", total=rows)
    tag = uuid.uuid4().hex[:6]
    database = f"{s.pg_database}_relaybench_{tag}"
    await postgres.create_database(s, database)
    dsn = s.pg_dsn.rsplit("/", 1)[0] + f"/{database}"
    try:
        await migrate(dsn)
        topic = s.topic(f"bench-relay-{tag}")
        await kafka.ensure_topics(s, [topic], s.partitions)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.copy_records_to_table(
                "outbox", columns=["topic", "key", "value"],
                records=[(topic, f"db/C{i % 500}", VALUE.decode()) for i in range(rows)])
            stop = asyncio.Event()
            relay = OutboxRelay(dsn, s.kafka_bootstrap, name=f"bench-{tag}", **relay_options)
            running = asyncio.create_task(relay.run(stop))
            await asyncio.wait_for(relay.leader.wait(), 30)
            t0 = time.perf_counter()
            left = rows
            async with asyncio.timeout(600):
                while left:
                    await asyncio.sleep(0.02)
                    now = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    progress.advance(task, left - now)
                    left = now
            elapsed = time.perf_counter() - t0
            stop.set()
            await running
        finally:
            await conn.close()
    finally:
        await postgres.drop_database(s, database)
    return rows / elapsed


async def record_finals(pubsub: Any, seen: dict[str, float], expected: Callable[[], int], progress: Progress,
                        task: TaskID) -> None:
    """When each command is first seen COMPLETED or FAILED on Redis, until `expected()` of them are."""
    while len(seen) < expected():
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        if message is None:
            continue
        body = json.loads(message["data"])
        if body["status"] in ("COMPLETED", "FAILED") and body["command_id"] not in seen:
            seen[body["command_id"]] = time.perf_counter()
            progress.advance(task)


@dataclass
class Driven:
    accepted: dict[str, float] = field(default_factory=dict)  # command id (or request number) -> sent at
    latencies: list[float] = field(default_factory=list)  # of the 202s, seconds
    rejected: int = 0


async def drive(http: aiohttp.ClientSession, url: str, body: Callable[[int], Any], n: int, concurrency: int,
                progress: Progress, task: TaskID, rate: float = 0.0) -> Driven:
    """POST n bodies from `concurrency` clients (or open loop at `rate`/s); the same driver for the system
    and its baseline."""
    out = Driven()
    queue = list(range(n))
    paced_from = time.perf_counter()

    async def client() -> None:
        while queue:
            i = queue.pop()
            if rate:  # an open-loop load: request k goes out at k / rate seconds, whatever came back
                await asyncio.sleep(max(0.0, paced_from + (n - 1 - i) / rate - time.perf_counter()))
            t0 = time.perf_counter()
            async with http.post(url, json=body(i)) as resp:
                answer = await resp.json()
            progress.advance(task)
            if resp.status != 202:
                out.rejected += 1
                continue
            out.latencies.append(time.perf_counter() - t0)
            out.accepted[str(answer.get("command_id", i))] = t0

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return out


async def insert_baseline(s: Settings, n: int, concurrency: int, progress: Progress) -> dict[str, float]:
    """A bare aiohttp handler inserting one row per request in its own transaction (bench/insert_server.py,
    its own process and database), driven by the same client at the same concurrency."""
    task = progress.add_task(f"baseline: one insert/request at {concurrency}", total=n)
    database = f"{s.pg_database}_insertbench_{uuid.uuid4().hex[:6]}"
    await postgres.create_database(s, database)
    dsn = s.pg_dsn.rsplit("/", 1)[0] + f"/{database}"
    port = free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 — started once, before timing
        [sys.executable, "-m", "bench.insert_server", str(port), dsn], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        ready = await asyncio.to_thread(proc.stdout.readline)
        assert ready.strip() == b"ready", ready
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            t0 = time.perf_counter()
            driven = await drive(http, f"http://127.0.0.1:{port}/insert", lambda i: {"id": f"C{i}"}, n,
                                 concurrency, progress, task)
            elapsed = time.perf_counter() - t0
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)
        await postgres.drop_database(s, database)
    return {"accepted_per_s": len(driven.accepted) / elapsed, "submit_p50": pct(driven.latencies, 50),
            "submit_p99": pct(driven.latencies, 99)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def system(s: Settings, token: str, n: int, concurrency: int, progress: Progress,
                 wait: bool = True, rate: float = 0.0) -> dict[str, float]:
    base = f"http://{s.web_host}:{s.web_port}"
    submitting = progress.add_task(f"system: submit at concurrency {concurrency}", total=n)
    completing = progress.add_task("system: COMPLETED (seen on Redis)", total=n)
    client = aioredis.Redis.from_url(s.redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(user_channel(s, s.admin_user))
    completed: dict[str, float] = {}
    rejected = 0  # known once submitting is done; the listener stops at n - rejected

    async def listen() -> None:
        await record_finals(pubsub, completed, lambda: n - rejected, progress, completing)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}, connector=connector) as http:
        db = f"wp-{uuid.uuid4().hex[:6]}"
        async with http.post(f"{base}/api/v1/database/create", json={"name": db}) as resp:
            assert resp.status == 202, await resp.text()
        await asyncio.sleep(1)
        listener = asyncio.create_task(listen())
        t_start = time.perf_counter()
        driven = await drive(http, f"{base}/api/v1/ontology/{db}/async/create", lambda i: {"id": f"C{i}"}, n,
                             concurrency, progress, submitting, rate)
        t_submitted = time.perf_counter()
        rejected = driven.rejected
        submit_lat = driven.latencies
        submitted = driven.accepted
        if wait:
            async with asyncio.timeout(900):
                await listener
        else:
            listener.cancel()
        t_done = time.perf_counter()
    await pubsub.aclose()
    await client.aclose()
    e2e = [completed[c] - submitted[c] for c in submitted if c in completed]
    return {"accepted": len(submitted), "rejected": rejected,
            "accepted_per_s": len(submitted) / (t_submitted - t_start),
            "submit_p50": pct(submit_lat, 50), "submit_p99": pct(submit_lat, 99),
            "e2e_p50": pct(e2e, 50), "e2e_p99": pct(e2e, 99), "completed_per_s": len(completed) / (t_done - t_start)}


def line(label: str, value: float, unit: str, baseline: float | None = None, name: str = "") -> str:
    ratio = f"  ({value / baseline:.3f}x {name})" if baseline else ""
    return f"  {label:<32} {value:10.0f} {unit}{ratio}"


async def main(n: int, concurrency: int, relay_rows: int, own: bool, skip_system: bool, wait: bool,
               rate: float, as_json: bool) -> None:
    s = load()
    topic = s.topic(f"bench-raw-{uuid.uuid4().hex[:6]}")
    await kafka.ensure_topics(s, [topic], s.partitions)
    with progress_bar() as progress:
        raw = await raw_produce(s.kafka_bootstrap, topic, max(relay_rows, 20000), progress)
        relay = await relay_alone(s, relay_rows, progress)
        forwarder = result = inserts = None
        if not skip_system:
            forwarder = await faust_forwarder(s, 5000, progress)
            inserts = await insert_baseline(s, n, concurrency, progress)
            if own:
                async with own_stack() as bench:
                    result = await system(bench, issue(bench, bench.admin_user), n, concurrency, progress, wait,
                                          rate)
            else:
                result = await system(s, (s.home / "admin.token").read_text().strip(), n, concurrency, progress,
                                      wait, rate)
    print(f"baselines (same run; {os.cpu_count()} cores shared with everything else on the machine)")
    print(line("raw aiokafka produce", raw, "msgs/s"))
    figures: dict[str, Any] = {"bench": "write_path", "n": n, "concurrency": concurrency, "rate": rate,
                               "raw_produce_per_s": raw, "relay_rows_per_s": relay, "relay_ratio": relay / raw}
    if forwarder and inserts:
        print(line("bare Faust forwarder", forwarder, "events/s"))
        print(line("one insert per request", inserts["accepted_per_s"], "requests/s"))
        print(f"  {'  its latency':<32} p50 {inserts['submit_p50']:.1f} ms  p99 {inserts['submit_p99']:.1f} ms")
        figures.update(forwarder_per_s=forwarder, insert_baseline_per_s=inserts["accepted_per_s"],
                       insert_baseline_p50_ms=inserts["submit_p50"], insert_baseline_p99_ms=inserts["submit_p99"])
    print(f"relay alone, {relay_rows} outbox rows backlog")
    print(line("relay", relay, "rows/s", raw, "raw produce"))
    if result and forwarder and inserts:
        paced = f", paced at {rate:g}/s" if rate else ""
        print(f"system, {n} commands at concurrency {concurrency}{paced}: accepted {result['accepted']:.0f}, "
              f"rejected {result['rejected']:.0f}")
        print(line("accepted", result["accepted_per_s"], "commands/s", inserts["accepted_per_s"],
                   "one insert per request"))
        print(f"  {'submit latency':<32} p50 {result['submit_p50']:.1f} ms  p99 {result['submit_p99']:.1f} ms")
        figures.update(accepted=result["accepted"], rejected=result["rejected"],
                       accepted_per_s=result["accepted_per_s"],
                       accepted_ratio=result["accepted_per_s"] / inserts["accepted_per_s"],
                       submit_p50_ms=result["submit_p50"], submit_p99_ms=result["submit_p99"])
        if wait:
            print(f"  {'submit -> COMPLETED':<32} p50 {result['e2e_p50']:.1f} ms  p99 {result['e2e_p99']:.1f} ms")
            print(line("end to end", result["completed_per_s"], "commands/s", forwarder, "Faust forwarder"))
            figures.update(e2e_p50_ms=result["e2e_p50"], e2e_p99_ms=result["e2e_p99"],
                           completed_per_s=result["completed_per_s"],
                           e2e_ratio=result["completed_per_s"] / forwarder)
    if as_json:
        print(json.dumps(figures))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", nargs="?", type=int, default=2000)
    parser.add_argument("concurrency", nargs="?", type=int, default=100)
    parser.add_argument("--relay-rows", type=int, default=50000)
    parser.add_argument("--own-stack", action="store_true", help="relay, worker, web of a bench namespace")
    parser.add_argument("--relay-only", action="store_true", help="only the relay and its baseline")
    parser.add_argument("--submit-only", action="store_true", help="do not wait for the commands to complete")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="submit at this many commands/s (open loop; e.g. half the measured end-to-end rate)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of every figure")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.concurrency, args.relay_rows, args.own_stack, args.relay_only,
                     not args.submit_only, args.rate, args.json))
