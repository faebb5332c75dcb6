"""Latency of one command at a time against a running stack (`./spice.sh up`), with a baseline.

Run: .venv/bin/python -m bench.latency [N]
Prints submit latency, submit→COMPLETED latency (seen on the command's Redis channel) and, as the
same-run baseline, the round trip of a bare HTTP GET /health on the same server.
"""
from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid

import aiohttp
import redis.asyncio as aioredis

from shared.channels import user_channel
from shared.config import load


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


async def main(n: int) -> None:
    settings = load()
    base = f"http://{settings.web_host}:{settings.web_port}"
    redis = aioredis.Redis.from_url(settings.redis_url)
    pubsub = redis.pubsub()
    await pubsub.subscribe(user_channel(settings, settings.admin_user))
    token = (settings.home / "admin.token").read_text().strip()
    submit: list[float] = []
    done: list[float] = []
    health: list[float] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        db = f"bench-{uuid.uuid4().hex[:8]}"
        async with http.post(f"{base}/api/v1/database/create", json={"name": db}) as resp:
            assert resp.status == 202, await resp.text()
        await asyncio.sleep(1)
        for i in range(n):
            t0 = time.perf_counter()
            async with http.get(f"{base}/health") as resp:
                await resp.read()
            health.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            async with http.post(f"{base}/api/v1/ontology/{db}/async/create", json={"id": f"C{i}"}) as resp:
                command_id = (await resp.json())["command_id"]
            submit.append(time.perf_counter() - t0)
            deadline = time.perf_counter() + 10
            while True:
                # None also comes back at once for a (skipped) subscribe confirmation: loop on time.
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is None:
                    if time.perf_counter() > deadline:
                        raise SystemExit(f"no update for {command_id} within 10 s")
                    continue
                body = json.loads(message["data"])
                if body["command_id"] == command_id and body["status"] in ("COMPLETED", "FAILED"):
                    break
            done.append(time.perf_counter() - t0)
    await pubsub.aclose()
    await redis.aclose()
    base_p50 = pct(health, 50)
    print(f"{n} sequential commands")
    print(f"baseline GET /health        p50 {base_p50:7.2f} ms  p99 {pct(health, 99):7.2f} ms")
    for name, values in (("submit (202)", submit), ("submit -> COMPLETED", done)):
        print(f"{name:27} p50 {pct(values, 50):7.2f} ms  p99 {pct(values, 99):7.2f} ms  "
              f"mean {statistics.mean(values) * 1000:7.2f} ms  ({pct(values, 50) / base_p50:5.1f}x baseline p50)")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
