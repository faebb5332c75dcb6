"""WebSocket push latency and fan-out against a running stack (`./spice.sh up`).

Run: .venv/bin/python -m bench.ws_latency [COMMANDS] [CLIENTS]
1. COMPLETED in the agent (the status entry's timestamp) → `command_update` at a WebSocket client,
   p50/p99 over COMMANDS commands; same-run baseline: a bare Redis publish → subscriber round trip.
2. CLIENTS concurrent WebSocket clients on one web process, all of the same user, while commands
   complete: how many got every update, and the fan-out latency p99.
"""
from __future__ import annotations

import asyncio
import sys
import time
import uuid
from datetime import datetime

import aiohttp
import redis.asyncio as aioredis

from shared.config import load


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


def age(stamp: str) -> float:
    return time.time() - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


async def redis_baseline(url: str, n: int) -> list[float]:
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.subscribe("bench-baseline")
    await pubsub.get_message(timeout=1)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await client.publish("bench-baseline", b"x")
        while await pubsub.get_message(ignore_subscribe_messages=True, timeout=1) is None:
            pass
        out.append(time.perf_counter() - t0)
    await pubsub.aclose()
    await client.aclose()
    return out


async def main(commands: int, clients: int) -> None:
    settings = load()
    base = f"http://{settings.web_host}:{settings.web_port}"
    headers = {"Authorization": "Bearer " + (settings.home / "admin.token").read_text().strip()}
    baseline = await redis_baseline(settings.redis_url, 500)
    # limit=0: one connection per WebSocket client (the default pool stops at 100).
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=0)) as http:
        db = f"wsbench-{uuid.uuid4().hex[:6]}"
        async with http.post(f"{base}/api/v1/database/create", json={"name": db}) as resp:
            assert resp.status == 202
        await asyncio.sleep(1)
        latencies: list[float] = []
        async with http.ws_connect(f"{base}/ws/commands") as ws:
            await ws.receive_json()
            pending: set[str] = set()
            sem = asyncio.Semaphore(8)

            async def submit(i: int) -> None:
                async with sem, http.post(f"{base}/api/v1/ontology/{db}/async/create", json={"id": f"L{i}"}) as r:
                    pending.add((await r.json())["command_id"])

            sender = asyncio.gather(*(submit(i) for i in range(commands)))
            done = 0
            async with asyncio.timeout(300):
                while done < commands:
                    msg = await ws.receive_json()
                    if msg.get("type") == "command_update" and msg["data"]["status"] == "COMPLETED":
                        latencies.append(age(msg["data"]["updated_at"]))
                        done += 1
            await sender
        print(f"agent COMPLETED -> WebSocket client, {commands} commands: p50 {pct(latencies, 50):6.2f} ms  "
              f"p99 {pct(latencies, 99):6.2f} ms   (baseline Redis pub->sub p50 {pct(baseline, 50):.2f} ms, "
              f"{pct(latencies, 50) / pct(baseline, 50):.1f}x)")

        sockets = [await http.ws_connect(f"{base}/ws/commands") for _ in range(clients)]
        for s in sockets:
            await s.receive_json()
        rounds = 20
        fan: list[float] = []
        complete = 0

        async def drain(s: aiohttp.ClientWebSocketResponse) -> int:
            got = 0
            try:
                async with asyncio.timeout(60):
                    while got < rounds:
                        msg = await s.receive_json()
                        if msg.get("type") == "command_update" and msg["data"]["status"] == "COMPLETED":
                            fan.append(age(msg["data"]["updated_at"]))
                            got += 1
            except TimeoutError:
                pass
            return got

        readers = [asyncio.create_task(drain(s)) for s in sockets]
        for i in range(rounds):
            async with http.post(f"{base}/api/v1/ontology/{db}/async/create", json={"id": f"F{i}"}) as r:
                assert r.status == 202
            await asyncio.sleep(0.05)
        counts = await asyncio.gather(*readers)
        complete = sum(1 for c in counts if c == rounds)
        async with http.get(f"{base}/ws/stats") as r:
            stats = await r.json()
        for s in sockets:
            await s.close()
        print(f"{clients} concurrent clients on one web process: {complete}/{clients} got all {rounds} updates, "
              f"fan-out p50 {pct(fan, 50):.1f} ms p99 {pct(fan, 99):.1f} ms; stats {stats}")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(args[0] if args else 1000, args[1] if len(args) > 1 else 1000))

