"""Instances per second end to end against a running stack (`./spice.sh up`), with a same-run baseline.

Run: .venv/bin/python -m bench.instances [BULK_N] [SINGLE_N] [CONCURRENCY] [--json]
Prints: a bulk create of BULK_N instances (one command, submit -> COMPLETED), SINGLE_N single
creates at CONCURRENCY (submit -> every one COMPLETED), and as the baseline the archive alone:
BULK_N conditional puts straight to the configured archive (S3 or directory) at the executor's
concurrency, since archiving every event is the part of the path no other command has.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from rich.progress import Progress

from shared.adapters.archive import open_archive
from shared.application.archiving import ARCHIVE_CONCURRENCY
from shared.channels import user_channel
from shared.config import load


async def wait_final(http: aiohttp.ClientSession, base: str, command_id: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with http.get(f"{base}/api/v1/commands/{command_id}") as resp:
            body = await resp.json()
        if body.get("status") in ("COMPLETED", "FAILED"):
            return body  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise SystemExit(f"{command_id} not final after {timeout}s")


async def singles(http: aiohttp.ClientSession, base: str, db: str, n: int, concurrency: int) -> float:
    """n single creates, at most `concurrency` in flight; completion seen on the user's Redis channel
    (polling the status API from every client would be the load being measured)."""
    settings = load()
    client = aioredis.Redis.from_url(settings.redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(user_channel(settings, settings.admin_user))
    loop = asyncio.get_running_loop()
    # A command may finish before its submitter registers: both sides go through this one dict.
    finals: dict[str, asyncio.Future[str]] = {}

    async def listen() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is None:
                continue
            body = json.loads(message["data"])
            if body["status"] in ("COMPLETED", "FAILED"):
                future = finals.setdefault(body["command_id"], loop.create_future())
                if not future.done():
                    future.set_result(body["status"])

    listener = asyncio.create_task(listen())
    gate = asyncio.Semaphore(concurrency)
    with Progress() as progress:
        task = progress.add_task("single creates", total=n)

        async def one(i: int) -> None:
            async with gate:
                async with http.post(f"{base}/api/v1/instances/{db}/async/Item/create",
                                     json={"data": {"instance_id": f"s{i}", "title": f"single {i}", "n": i}}
                                     ) as resp:
                    command_id = (await resp.json())["command_id"]
                future = finals.setdefault(command_id, loop.create_future())
                assert await asyncio.wait_for(future, 120) == "COMPLETED"
                progress.advance(task)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        rate = n / (time.perf_counter() - t0)
    listener.cancel()
    await pubsub.aclose()
    await client.aclose()
    return rate


async def archive_baseline(n: int) -> float:
    archive = await open_archive(load())
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    gate = asyncio.Semaphore(ARCHIVE_CONCURRENCY)

    async def put(i: int) -> None:
        async with gate:
            await archive.put_once(f"{prefix}/C/i{i}/0000000001/{uuid.uuid4()}.json", b'{"bench": true}' * 20)

    t0 = time.perf_counter()
    await asyncio.gather(*(put(i) for i in range(n)))
    elapsed = time.perf_counter() - t0
    await archive.close()
    return n / elapsed


async def item_database(http: aiohttp.ClientSession, base: str) -> str:
    """A new database with one class, Item {title (required), n (integer ≥ 0)}, both created and COMPLETED."""
    db = f"bench-{uuid.uuid4().hex[:8]}"
    async with http.post(f"{base}/api/v1/database/create", json={"name": db}) as resp:
        await wait_final(http, base, (await resp.json())["command_id"])
    cls = {"id": "Item", "properties": [{"name": "title", "type": "string", "required": True},
                                        {"name": "n", "type": "integer", "constraints": {"min": 0}}]}
    async with http.post(f"{base}/api/v1/ontology/{db}/async/create", json=cls) as resp:
        await wait_final(http, base, (await resp.json())["command_id"])
    return db


async def main(bulk_n: int, single_n: int, concurrency: int, as_json: bool = False) -> None:
    settings = load()
    base = f"http://{settings.web_host}:{settings.web_port}"
    token = (settings.home / "admin.token").read_text().strip()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        db = await item_database(http, base)

        items = [{"title": f"item {i}", "n": i} for i in range(bulk_n)]
        t0 = time.perf_counter()
        async with http.post(f"{base}/api/v1/instances/{db}/async/Item/bulk-create",
                             json={"instances": items}) as resp:
            bulk_id = (await resp.json())["command_id"]
        bulk = await wait_final(http, base, bulk_id)
        bulk_rate = bulk_n / (time.perf_counter() - t0)
        assert bulk["status"] == "COMPLETED", bulk

        single_rate = await singles(http, base, db, single_n, concurrency)
    baseline = await archive_baseline(bulk_n)
    print(f"archive baseline ({'S3 ' + settings.s3_endpoint if settings.s3_endpoint else 'directory'}): "
          f"{baseline:8.0f} puts/s")
    print(f"bulk create of {bulk_n:>6}:            {bulk_rate:8.0f} instances/s  "
          f"({bulk_rate / baseline:4.2f}x baseline)")
    print(f"{single_n} single creates at {concurrency:>3}:   {single_rate:8.0f} instances/s  "
          f"({single_rate / baseline:4.2f}x baseline)")
    if as_json:
        print(json.dumps({"bench": "instances", "bulk_n": bulk_n, "single_n": single_n, "concurrency": concurrency,
                          "archive_puts_per_s": baseline, "bulk_per_s": bulk_rate,
                          "bulk_ratio": bulk_rate / baseline, "single_per_s": single_rate,
                          "single_ratio": single_rate / baseline}))


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[1:] if a != "--json"]
    bulk_n, single_n, concurrency = numbers + [10_000, 500, 50][len(numbers):]
    asyncio.run(main(bulk_n, single_n, concurrency, as_json="--json" in sys.argv[1:]))
