"""TerminusDB as the document store at scale, beside the PostgreSQL store in the same run.

Run: .venv/bin/python -m bench.terminusdb_scale TERMINUSDB_URL [SEQUENTIAL] [CONCURRENT] [BULK] [--json]
(e.g. http://admin:root@127.0.0.1:6363; defaults 200 200 1000). Needs the services (`./spice.sh
services up`) and a TerminusDB server; the stacks are the benchmark's own (bench/own_stack.py), one per
store, run one after the other. For each store: SEQUENTIAL class creates in one database, each waited
for (mean of the first and of the last ten); CONCURRENT class creates in one database submitted at once
(time until every one is final, heard on the user's Redis channel; how many COMPLETED); a bulk create
of BULK instances; how many 5xx answers the worker's log reports.
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

from bench.instances import wait_final
from bench.own_stack import own_processes
from shared.channels import user_channel
from shared.config import Settings
from shared.tokens import issue

PROPERTIES = [{"name": "title", "type": "string"}, {"name": "n", "type": "integer"}]


async def create_class(http: aiohttp.ClientSession, base: str, db: str, class_id: str) -> None:
    """One class create, submitted and waited for (the status API polled every 50 ms)."""
    async with http.post(f"{base}/api/v1/ontology/{db}/async/create",
                         json={"id": class_id, "properties": PROPERTIES}) as resp:
        command_id = (await resp.json())["command_id"]
    done = await wait_final(http, base, command_id, timeout=600)
    assert done["status"] == "COMPLETED", done


async def sequential(http: aiohttp.ClientSession, base: str, db: str, n: int) -> list[float]:
    took: list[float] = []
    for i in range(n):
        t0 = time.perf_counter()
        await create_class(http, base, db, f"Seq{i}")
        took.append(time.perf_counter() - t0)
    return took


async def concurrent(http: aiohttp.ClientSession, base: str, db: str, n: int, settings: Settings
                     ) -> tuple[float, int]:
    """n creates submitted at once; their final statuses heard on the user's Redis channel (polling 200
    commands' status would be the load measured, and the status API reads the document store)."""
    client = aioredis.Redis.from_url(settings.redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(user_channel(settings, settings.admin_user))
    finals: dict[str, str] = {}
    t0 = time.perf_counter()

    async def submit(i: int) -> str:
        async with http.post(f"{base}/api/v1/ontology/{db}/async/create",
                             json={"id": f"Par{i}", "properties": PROPERTIES}) as resp:
            return str((await resp.json())["command_id"])

    ids = set(await asyncio.gather(*(submit(i) for i in range(n))))
    deadline = time.monotonic() + 1800
    while ids - finals.keys() and time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        if message is not None:
            body = json.loads(message["data"])
            if body["status"] in ("COMPLETED", "FAILED"):
                finals[body["command_id"]] = body["status"]
    took = time.perf_counter() - t0
    await pubsub.aclose()
    await client.aclose()
    return took, sum(1 for c in ids if finals.get(c) == "COMPLETED")


async def bulk(http: aiohttp.ClientSession, base: str, db: str, n: int) -> float:
    await create_class(http, base, db, "Item")
    t0 = time.perf_counter()
    async with http.post(f"{base}/api/v1/instances/{db}/async/Item/bulk-create",
                         json={"instances": [{"title": f"item {i}", "n": i} for i in range(n)]}) as resp:
        command_id = (await resp.json())["command_id"]
    done = await wait_final(http, base, command_id, timeout=1800)
    assert done["status"] == "COMPLETED", done
    return n / (time.perf_counter() - t0)


async def database(http: aiohttp.ClientSession, base: str) -> str:
    db = f"scale-{uuid.uuid4().hex[:8]}"
    async with http.post(f"{base}/api/v1/database/create", json={"name": db}) as resp:
        done = await wait_final(http, base, (await resp.json())["command_id"])
    assert done["status"] == "COMPLETED", done
    return db


async def one_store(env: dict[str, str], seq_n: int, par_n: int, bulk_n: int) -> dict[str, Any]:
    async with own_processes(env) as running:
        settings = running.settings
        base = f"http://{settings.web_host}:{settings.web_port}"
        token = issue(settings, settings.admin_user)
        timeout = aiohttp.ClientTimeout(total=1800)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}, timeout=timeout) as http:
            took = await sequential(http, base, await database(http, base), seq_n)
            par_s, completed = await concurrent(http, base, await database(http, base), par_n, settings)
            bulk_rate = await bulk(http, base, await database(http, base), bulk_n)
        log = (running.home / "worker.log").read_text(errors="replace")
    return {"first10_s": sum(took[:10]) / 10, "last10_s": sum(took[-10:]) / 10,
            "growth": (sum(took[-10:]) / sum(took[:10])), "concurrent_s": par_s, "concurrent_completed": completed,
            "bulk_per_s": bulk_rate, "server_5xx_logged": sum(log.count(f"answered {c}") for c in range(500, 600))}


async def main(url: str, seq_n: int, par_n: int, bulk_n: int, as_json: bool) -> None:
    pg = await one_store({}, seq_n, par_n, bulk_n)
    tdb = await one_store({"SPICE_TERMINUSDB_URL": url}, seq_n, par_n, bulk_n)
    for name, got in (("postgres", pg), ("terminusdb", tdb)):
        print(f"{name:>10}: {seq_n} sequential creates first10 {got['first10_s']:.3f}s last10 "
              f"{got['last10_s']:.3f}s ({got['growth']:.2f}x); {par_n} concurrent: {got['concurrent_completed']} "
              f"COMPLETED in {got['concurrent_s']:.1f}s; bulk {bulk_n}: {got['bulk_per_s']:.0f}/s; "
              f"5xx logged {got['server_5xx_logged']}")
    print(f"concurrent vs postgres: {tdb['concurrent_s'] / pg['concurrent_s']:.2f}x the time; bulk "
          f"{tdb['bulk_per_s'] / pg['bulk_per_s']:.2f}x the rate")
    if as_json:
        print(json.dumps({"bench": "terminusdb_scale", "sequential": seq_n, "concurrent": par_n, "bulk": bulk_n,
                          "postgres": pg, "terminusdb": tdb,
                          "concurrent_time_ratio": tdb["concurrent_s"] / pg["concurrent_s"],
                          "bulk_ratio": tdb["bulk_per_s"] / pg["bulk_per_s"]}))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if not args:
        raise SystemExit(__doc__)
    numbers = [int(a) for a in args[1:]] + [200, 200, 1000][len(args) - 1:]
    asyncio.run(main(args[0], numbers[0], numbers[1], numbers[2], "--json" in sys.argv))
