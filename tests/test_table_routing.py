"""Faust table routing with two workers: /status/{id} answers the same whichever worker is asked."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from typing import Any

import aiohttp

from tests.stack import Process, Stack

TABLE = "command_status"


HEADERS: dict[str, str] = {}  # the worker's internal credential, set by the test


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    try:
        async with http.get(url, headers=HEADERS, timeout=aiohttp.ClientTimeout(total=10)) as resp:
            return resp.status, await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return 0, repr(exc)


async def owners(http: aiohttp.ClientSession, worker: str) -> dict[str, list[int]]:
    """Which worker URL owns which partitions of the command_status changelog, as `worker` sees it."""
    code, body = await get_json(http, f"{worker}/partitions/{TABLE}")
    if code != 200 or not isinstance(body, dict):
        return {}
    split: dict[str, list[int]] = {}
    for url, topics in body.items():
        split[url.rstrip("/")] = sorted(p for parts in topics.values() for p in parts)
    return split


async def ready(http: aiohttp.ClientSession, worker: str) -> int:
    """The number of partitions the worker reports on /ready, 0 while it is not ready."""
    code, body = await get_json(http, f"{worker}/ready")
    return int(body.get("partitions", 0)) if code == 200 and isinstance(body, dict) else 0


async def until(what: str, check: Any, timeout: float, log: Any = None) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})\n{log() if log else ''}")


async def test_status_is_the_same_from_either_worker(stack: Stack) -> None:
    HEADERS.update(stack.internal())
    http = stack.client
    first = stack.settings.worker_url
    # The second worker listens next to the first (SPICE_TEST_WORKER_PORT + 1) unless told otherwise.
    port = int(os.environ.get("SPICE_TEST_WORKER2_PORT", stack.settings.worker_web_port + 1))
    second = f"http://{stack.settings.worker_host}:{port}"
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} is taken (set SPICE_TEST_WORKER2_PORT)"
    solo = await until("the stack's worker ready", lambda: ready(http, first), 180)
    db = await stack.new_database()  # before the second worker joins: the stack is known to work

    other = Process("worker-2", stack.worker.argv, {**stack.worker.env, "SPICE_WORKER_WEB_PORT": str(port)},
                    stack.worker.logs)
    other.start()
    try:
        started = time.monotonic()

        async def split() -> dict[str, list[int]] | None:
            # Both ready, and both agree that each of them owns part of the status table.
            if not (await ready(http, first) and await ready(http, second)):
                return None
            seen = [await owners(http, first), await owners(http, second)]
            ok = all(set(s) == {first, second} and all(s.values()) for s in seen) and seen[0] == seen[1]
            return seen[0] if ok else None

        assignment = await until("partitions split between the workers", split, 240, other.log_tail)
        print(f"\nrouting: second worker joined and partitions split in {time.monotonic() - started:.1f}s: "
              f"{assignment}")

        # Submit until several commands have their status on each worker's partitions.
        placed: dict[str, list[str]] = {first: [], second: []}
        for i in range(60):
            if min(len(ids) for ids in placed.values()) >= 3:
                break
            command_id = await stack.submit("POST", f"/api/v1/ontology/{db}/async/create",
                                            {"id": f"Routed{i}", "properties": [{"name": "n", "type": "integer"}]})
            code, owner = await get_json(http, f"{first}/partitions/{TABLE}/{command_id}")
            assert code == 200, owner
            code2, owner2 = await get_json(http, f"{second}/partitions/{TABLE}/{command_id}")
            assert (code2, owner2) == (code, owner)  # both workers route the key to the same owner
            placed[str(owner).rstrip("/")].append(command_id)
        assert min(len(ids) for ids in placed.values()) >= 3, placed

        for owner, ids in placed.items():
            for command_id in ids:
                done = await stack.wait(command_id, timeout=120)
                assert done["status"] == "COMPLETED", done

                async def same(command_id: str = command_id) -> tuple[Any, Any] | None:
                    a = await get_json(http, f"{first}/status/{command_id}")
                    b = await get_json(http, f"{second}/status/{command_id}")
                    return (a, b) if a == b and a[0] == 200 and a[1]["status"] == "COMPLETED" else None

                (code, body), _ = await until(f"one answer for {command_id} (owner {owner})", same, 60)
                assert body["command_id"] == command_id and body["status"] == "COMPLETED"
                assert body["history"][-1]["status"] == "COMPLETED"  # the table's own record
    finally:
        stopping = time.monotonic()
        other.stop(signal.SIGTERM, timeout=60)

    # The stack's worker takes every partition back, and the stack keeps working for later tests.
    async def alone() -> bool:
        return await ready(http, first) == solo and set(await owners(http, first)) == {first}

    await until("the stack's worker owning every partition again", alone, 240, stack.worker.log_tail)
    print(f"routing: rebalanced back to one worker in {time.monotonic() - stopping:.1f}s")
    await stack.wait_healthy()
    settled = time.monotonic()
    command_id = await stack.submit("POST", f"/api/v1/ontology/{db}/async/create", {"id": "AfterRouting"})
    done = await stack.wait(command_id)
    assert done["status"] == "COMPLETED", done

    async def in_table() -> bool:  # the status agent folds again, not only the event store answers
        code, body = await get_json(http, f"{first}/status/{command_id}")
        return code == 200 and body["status"] == "COMPLETED"

    await until("the status table updated after the rebalance", in_table, 120, stack.worker.log_tail)
    print(f"routing: a command after the rebalance COMPLETED in the table in {time.monotonic() - settled:.1f}s")


async def test_the_workers_pages_ask_for_the_internal_credential(stack: Stack) -> None:
    worker = stack.settings.worker_url
    db = await stack.new_database()
    command_id = await stack.submit("POST", f"/api/v1/ontology/{db}/async/create", {"id": "Guarded"})
    assert (await stack.wait(command_id))["status"] == "COMPLETED"
    for path in (f"/status/{command_id}", "/projection/lag", f"/partitions/{TABLE}",
                 f"/partitions/{TABLE}/{command_id}"):
        for headers in ({}, {"X-Spice-Internal": "guess"}, stack.auth("alice")):
            async with stack.client.get(f"{worker}{path}", headers=headers) as resp:
                assert resp.status == 401, (path, headers, resp.status)
                assert "alice" not in await resp.text()
        for _ in range(100):  # the table is fed from the status topic: it may trail the API's COMPLETED a little
            async with stack.client.get(f"{worker}{path}", headers=stack.internal()) as resp:
                if resp.status == 200:
                    break
            await asyncio.sleep(0.1)
        assert resp.status == 200, (path, resp.status)
    for path in (f"/router/{TABLE}/", f"/table/{TABLE}/", "/stats/", "/graph/"):
        async with stack.client.get(f"{worker}{path}") as resp:
            assert resp.status == 404, (path, resp.status)  # Faust's own pages are off
