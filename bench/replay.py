"""Replay and reconciliation throughput against a running stack (`./spice.sh up`), baselines in the same run.

Run: .venv/bin/python -m bench.replay [N] [--json]
Makes a database of N instances (bulks of 10,000), waits until the search projection has every event, then
times, in this process on the stack's stores: the documents replay (every class and instance rebuilt from
its newest event beside the old ones and swapped in, then what was committed meanwhile applied again), the
search rebuild (fresh indices, alias swap), and a reconciliation report over every object. Baseline for
search: the same N instance documents bulk-indexed straight into a scratch index with the same mapping
(elasticsearch's async_bulk).
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any

import aiohttp
from elasticsearch.helpers import async_bulk

from bench.instances import item_database, wait_final
from shared.adapters.search import indices
from shared.application.reconcile import reconcile
from shared.application.replay import run_replay
from shared.bootstrap import Needs, open_stores
from shared.config import load
from shared.domain.commands import Command, CommandType
from shared.domain.status import StatusUpdate
from shared.tokens import INTERNAL_HEADER, internal_token

BULK = 10_000


async def make_database(n: int) -> str:
    settings = load()
    base = f"http://{settings.web_host}:{settings.web_port}"
    token = (settings.home / "admin.token").read_text().strip()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        db = await item_database(http, base)
        for start in range(0, n, BULK):
            items = [{"instance_id": f"i{i:07d}", "title": f"item {i}", "n": i}
                     for i in range(start, min(n, start + BULK))]
            async with http.post(f"{base}/api/v1/instances/{db}/async/Item/bulk-create",
                                 json={"instances": items}) as resp:
                done = await wait_final(http, base, (await resp.json())["command_id"])
            assert done["status"] == "COMPLETED", done
        for _ in range(1200):  # until the projection has committed every event
            async with http.get(f"{settings.worker_url}/projection/lag",
                                headers={INTERNAL_HEADER: internal_token(settings)}) as resp:
                if resp.status == 200 and (await resp.json())["lag"] == 0:
                    return db
            await asyncio.sleep(0.5)
    raise SystemExit("the projection did not catch up")


async def main(n: int, as_json: bool) -> None:
    settings = load()
    db = await make_database(n)
    stores = await open_stores(settings, Needs(pool=(1, 4), archive=True, search_timeout=300))
    assert stores.search is not None and stores.archive is not None
    search = stores.search_index()
    command = Command(command_type=CommandType.APPROVE_REPLAY, aggregate_id=str(uuid.uuid4()), db_name=db,
                      actor=settings.admin_user)

    async def report(update: StatusUpdate) -> None:
        pass

    try:
        t0 = time.perf_counter()
        result = await run_replay(command, ["documents"], stores.events, stores.docs, None, report)
        documents_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        assert search is not None
        await search.rebuild(db)
        search_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        checked = await reconcile(db, stores.events, stores.docs, search, stores.archive)
        reconcile_s = time.perf_counter() - t0
        assert not checked.drift, checked.drift[:5]

        sources: list[dict[str, Any]] = [
            {k: v for k, v in (await stores.search.get(index=indices.alias(settings.namespace, db, indices.INSTANCES),
                                                     id="i0000000"))["_source"].items()}]
        scratch = f"{settings.namespace}-bench-scratch-{uuid.uuid4().hex[:6]}"
        await indices.create_index(stores.search, scratch, indices.INSTANCES)
        try:
            template = sources[0]
            actions = ({"_index": scratch, "_id": f"i{i:07d}", "_source": {**template, "instance_id": f"i{i:07d}"}}
                       for i in range(n))
            t0 = time.perf_counter()
            await async_bulk(stores.search, actions, chunk_size=2000)
            raw_s = time.perf_counter() - t0
        finally:
            await stores.search.indices.delete(index=scratch, ignore_unavailable=True)
    finally:
        await stores.close()
    events = result["events"]
    figures = {"bench": "replay", "n": n, "events": events,
               "documents_events_per_s": events / documents_s, "documents_seconds": documents_s,
               "search_events_per_s": (n + 1) / search_s, "raw_bulk_docs_per_s": n / raw_s,
               "search_ratio": ((n + 1) / search_s) / (n / raw_s),
               "reconcile_seconds": reconcile_s, "reconcile_objects": checked.checked}
    print(f"documents replay  {figures['documents_events_per_s']:9.0f} events/s ({documents_s:.1f}s for {events})")
    print(f"search rebuild    {figures['search_events_per_s']:9.0f} events/s  ({figures['search_ratio']:.2f}x raw bulk "
          f"{figures['raw_bulk_docs_per_s']:.0f} docs/s)")
    print(f"reconcile report  {reconcile_s:9.1f} s over {checked.checked} objects")
    if as_json:
        print(json.dumps(figures))


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[1:] if a != "--json"]
    asyncio.run(main(numbers[0] if numbers else 20_000, "--json" in sys.argv))
