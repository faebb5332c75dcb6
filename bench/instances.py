"""Instances per second end to end against a running stack (`./spice.sh up`), with a same-run baseline.

Run: .venv/bin/python -m bench.instances [BULK_N] [SINGLE_N] [CONCURRENCY]
Prints: a bulk create of BULK_N instances (one command, submit -> COMPLETED), SINGLE_N single
creates at CONCURRENCY (submit -> every one COMPLETED), and as the baseline the archive alone:
BULK_N conditional puts straight to the configured archive (S3 or directory) at the executor's
concurrency, since archiving every event is the part of the path no other command has.
"""
from __future__ import annotations

import asyncio
import sys
import time
import uuid
from typing import Any

import aiohttp
from rich.progress import Progress

from shared.adapters.archive import open_archive
from shared.application.instances import ARCHIVE_CONCURRENCY
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


async def main(bulk_n: int, single_n: int, concurrency: int) -> None:
    settings = load()
    base = f"http://{settings.web_host}:{settings.web_port}"
    token = (settings.home / "admin.token").read_text().strip()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        db = f"bench-{uuid.uuid4().hex[:8]}"
        async with http.post(f"{base}/api/v1/database/create", json={"name": db}) as resp:
            await wait_final(http, base, (await resp.json())["command_id"])
        cls = {"id": "Item", "properties": [{"name": "title", "type": "string", "required": True},
                                            {"name": "n", "type": "integer", "constraints": {"min": 0}}]}
        async with http.post(f"{base}/api/v1/ontology/{db}/async/create", json=cls) as resp:
            await wait_final(http, base, (await resp.json())["command_id"])

        items = [{"title": f"item {i}", "n": i} for i in range(bulk_n)]
        t0 = time.perf_counter()
        async with http.post(f"{base}/api/v1/instances/{db}/async/Item/bulk-create",
                             json={"instances": items}) as resp:
            bulk_id = (await resp.json())["command_id"]
        bulk = await wait_final(http, base, bulk_id)
        bulk_rate = bulk_n / (time.perf_counter() - t0)
        assert bulk["status"] == "COMPLETED", bulk

        gate = asyncio.Semaphore(concurrency)
        with Progress() as progress:
            task = progress.add_task("single creates", total=single_n)

            async def one(i: int) -> None:
                async with gate:
                    async with http.post(f"{base}/api/v1/instances/{db}/async/Item/create",
                                         json={"data": {"title": f"single {i}", "n": i}}) as resp:
                        command_id = (await resp.json())["command_id"]
                    done = await wait_final(http, base, command_id)
                    assert done["status"] == "COMPLETED", done
                    progress.advance(task)

            t0 = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(single_n)))
            single_rate = single_n / (time.perf_counter() - t0)
    baseline = await archive_baseline(bulk_n)
    print(f"archive baseline ({'S3 ' + settings.s3_endpoint if settings.s3_endpoint else 'directory'}): "
          f"{baseline:8.0f} puts/s")
    print(f"bulk create of {bulk_n:>6}:            {bulk_rate:8.0f} instances/s  "
          f"({bulk_rate / baseline:4.2f}x baseline)")
    print(f"{single_n} single creates at {concurrency:>3}:   {single_rate:8.0f} instances/s  "
          f"({single_rate / baseline:4.2f}x baseline)")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(*(args + [10_000, 500, 50][len(args):])))
