"""Replay and reconciliation throughput against a running stack (`./spice.sh up`), baselines in the same run.

Run: .venv/bin/python -m bench.replay [N] [--json]
Makes a database of N instances (bulks of 10,000), waits until the search projection has every event, then
times, in this process on the stack's stores: the documents replay (every class and instance rebuilt from
its newest event beside the old ones and swapped in, then what was committed meanwhile applied again), the
search rebuild (fresh indices, alias swap), and a reconciliation report over every object. Baseline for
search: the same N instance documents (as the projection indexed them, read back first) bulk-indexed
straight into a scratch index with the same mapping (elasticsearch's async_bulk). The three timed steps
run in turn three times; the medians are the figures, every sample is in the JSON line.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from statistics import median
from typing import Any

import aiohttp
from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_bulk, async_scan

from bench.instances import item_database, wait_final
from shared.adapters.search import indices
from shared.application.reconcile import reconcile
from shared.application.replay import run_replay
from shared.bootstrap import Needs, open_stores
from shared.config import load
from shared.domain.commands import Command, CommandType
from shared.domain.status import StatusUpdate
from shared.processes import tune_gc
from shared.tokens import INTERNAL_HEADER, internal_token

BULK = 10_000
ROUNDS = 3


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


async def raw_bulk(es: AsyncElasticsearch, namespace: str, documents: list[tuple[str, dict[str, Any]]]) -> float:
    """Seconds to bulk-index the documents (id, source) into a scratch index of the same mapping (the
    baseline), dropped afterwards."""
    scratch = f"{namespace}-bench-scratch-{uuid.uuid4().hex[:6]}"
    await indices.create_index(es, scratch, indices.INSTANCES)
    try:
        actions = ({"_index": scratch, "_id": doc_id, "_source": source} for doc_id, source in documents)
        t0 = time.perf_counter()
        await async_bulk(es, actions, chunk_size=2000)
        return time.perf_counter() - t0
    finally:
        await es.indices.delete(index=scratch, ignore_unavailable=True)


async def main(n: int, as_json: bool) -> None:
    tune_gc()  # as the worker, which runs the replay, does
    settings = load()
    db = await make_database(n)
    stores = await open_stores(settings, Needs(pool=(1, 4), archive=True, search_timeout=300))
    assert stores.search is not None and stores.archive is not None
    search = stores.search_index()
    assert search is not None
    command = Command(command_type=CommandType.APPROVE_REPLAY, aggregate_id=str(uuid.uuid4()), db_name=db,
                      actor=settings.admin_user)

    async def report(update: StatusUpdate) -> None:
        pass

    documents_s: list[float] = []
    search_s: list[float] = []
    raw_s: list[float] = []
    try:
        # The baseline's documents: exactly those the projection indexed (read before anything is timed).
        indexed = [(hit["_id"], hit["_source"]) async for hit in async_scan(
            stores.search, index=indices.alias(settings.namespace, db, indices.INSTANCES), size=2000)]
        assert len(indexed) == n, len(indexed)
        # Each figure beside its baseline under the same load: the three run in turn, ROUNDS times.
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            result = await run_replay(command, ["documents"], stores.events, stores.docs, None, report)
            documents_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await search.rebuild(db)
            search_s.append(time.perf_counter() - t0)
            raw_s.append(await raw_bulk(stores.search, settings.namespace, indexed))
        t0 = time.perf_counter()
        checked = await reconcile(db, stores.events, stores.docs, search, stores.archive)
        reconcile_s = time.perf_counter() - t0
        assert not checked.drift, checked.drift[:5]
    finally:
        await stores.close()
    events = result["events"]
    documents, searched, raw = median(documents_s), median(search_s), median(raw_s)
    figures = {"bench": "replay", "n": n, "events": events, "rounds": ROUNDS,
               "documents_events_per_s": events / documents, "documents_seconds": documents,
               "search_events_per_s": (n + 1) / searched, "raw_bulk_docs_per_s": n / raw,
               "search_ratio": ((n + 1) / searched) / (n / raw),
               "documents_seconds_each": documents_s, "search_seconds_each": search_s, "raw_seconds_each": raw_s,
               "reconcile_seconds": reconcile_s, "reconcile_objects": checked.checked}
    print(f"documents replay  {figures['documents_events_per_s']:9.0f} events/s ({documents:.1f}s for {events})")
    print(f"search rebuild    {figures['search_events_per_s']:9.0f} events/s  ({figures['search_ratio']:.2f}x raw bulk "
          f"{figures['raw_bulk_docs_per_s']:.0f} docs/s)")
    print(f"reconcile report  {reconcile_s:9.1f} s over {checked.checked} objects")
    if as_json:
        print(json.dumps(figures))


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[1:] if a != "--json"]
    asyncio.run(main(numbers[0] if numbers else 20_000, "--json" in sys.argv))
