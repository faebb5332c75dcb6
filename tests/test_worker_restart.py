"""A worker stopped (SIGTERM) or killed (SIGKILL) with commands in flight: after a restart every command
ends COMPLETED or FAILED exactly once, and the command_status table holds every key it held before."""
from __future__ import annotations

import asyncio
import signal
import uuid
from typing import Any

import pytest

from shared.adapters.postgres.pool import Pool
from tests.stack import Stack


async def table_entry(stack: Stack, command_id: str) -> dict[str, Any] | None:
    async with stack.client.get(f"{stack.settings.worker_url}/status/{command_id}", headers=stack.internal()) as resp:
        return await resp.json() if resp.status == 200 else None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_worker_restart_with_commands_in_flight(stack: Stack, pool: Pool, sig: int) -> None:
    db = await stack.new_database()
    ids = [await stack.submit("POST", f"/api/v1/ontology/{db}/async/create",
                              {"id": f"C{i}", "properties": [{"name": "n", "type": "integer"}]})
           for i in range(40)]
    before: dict[str, dict[str, Any] | None] = {}
    for _ in range(200):  # until some are in the status table (the rest still in flight), at most ~10 s
        await asyncio.sleep(0.05)
        before = {cid: await table_entry(stack, cid) for cid in ids[:10]}
        if any(before.values()):
            break
    before.update({cid: await table_entry(stack, cid) for cid in ids[10:]})
    stack.worker.stop(sig)
    # Submissions keep working while no worker runs: they wait in PostgreSQL and Kafka.
    ids += [await stack.submit("POST", f"/api/v1/ontology/{db}/async/create", {"id": f"Late{i}"})
            for i in range(10)]
    stack.worker.start()
    await stack.wait_worker_ready()
    finals = [await stack.wait(cid, timeout=120) for cid in ids]
    assert {f["status"] for f in finals} == {"COMPLETED"}, [f for f in finals if f["status"] != "COMPLETED"]
    for final in finals:
        statuses = [h["status"] for h in final["result"]["history"]]
        assert statuses.count("COMPLETED") == 1, statuses
    counts = await pool.fetch("SELECT command_id, count(*) AS n FROM events WHERE command_id = ANY($1::uuid[])"
                              " GROUP BY command_id", [uuid.UUID(c) for c in ids])
    assert len(counts) == len(ids) and {r["n"] for r in counts} == {1}
    # Read through the API, so the check holds whichever document store the stack runs on.
    code, listed = await stack.request("GET", f"/api/v1/ontology/{db}/classes?limit=1000")
    assert code == 200 and listed["total"] == len(ids) and {c["version"] for c in listed["items"]} == {1}
    held = {cid: rec for cid, rec in before.items() if rec is not None}
    assert held, "the snapshot before the restart should hold some keys"
    for cid, old in held.items():
        new = await table_entry(stack, cid)
        assert new is not None, f"{cid} lost from command_status"
        assert new["history"][:len(old["history"])] == old["history"], cid
