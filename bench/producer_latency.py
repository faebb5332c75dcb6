"""Latency from a command produced straight to Kafka to COMPLETED (seen on Redis), one at a time.

Run against `./spice.sh up`: .venv/bin/python -m bench.producer_latency [N]
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid

import aiohttp
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from shared.channels import user_channel
from shared.config import load
from shared.domain.commands import Command, CommandType


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


async def main(n: int) -> None:
    s = load()
    token = (s.home / "admin.token").read_text().strip()
    client = aioredis.Redis.from_url(s.redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(user_channel(s, s.admin_user))
    db = f"prod-{uuid.uuid4().hex[:6]}"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http, \
            http.post(f"http://{s.web_host}:{s.web_port}/api/v1/database/create", json={"name": db}) as resp:
        assert resp.status == 202
    await asyncio.sleep(1)
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap)
    await producer.start()
    latencies = []
    for i in range(n):
        command = Command(command_type=CommandType.CREATE_ONTOLOGY_CLASS, aggregate_id=f"P{i}", db_name=db,
                          actor="ignored", payload={"id": f"P{i}"})
        t0 = time.perf_counter()
        await producer.send_and_wait(s.topic("ontology-commands"), command.model_dump_json().encode(),
                                     key=f"{db}/P{i}".encode(), headers=[("authorization", f"Bearer {token}".encode())])
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            body = json.loads(message["data"]) if message else {}
            if body.get("command_id") == str(command.command_id) and body.get("status") == "COMPLETED":
                break
        latencies.append(time.perf_counter() - t0)
    await producer.stop()
    await pubsub.aclose()
    await client.aclose()
    print(f"produced -> COMPLETED, {n} commands one at a time: p50 {pct(latencies, 50):.1f} ms  "
          f"p99 {pct(latencies, 99):.1f} ms")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
