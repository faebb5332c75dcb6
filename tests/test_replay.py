"""Replays under two-admin approval: requested by one admin, approved by another (never the requester, unless
the bootstrap administrator), rebuilt from the event store as the approval command, completed as an event."""
from __future__ import annotations

import asyncio
import json
from typing import Any

from shared.adapters.postgres.pool import Pool
from tests.stack import Stack


async def replay_state(stack: Stack, replay_id: str, until: str, user: str = "alice") -> dict[str, Any]:
    body: dict[str, Any] = {}
    for _ in range(300):
        code, body = await stack.request("GET", f"/api/v1/admin/replays/{replay_id}", user=user)
        assert code == 200, body
        if body["status"] == until:
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"replay not {until}: {body}")


async def database_with_bob_as_second_admin(stack: Stack) -> str:
    db = await stack.new_database()
    assert (await stack.run("POST", f"/api/v1/database/{db}/grants", {"user": "bob", "role": "admin"}))[
        "status"] == "COMPLETED"
    await stack.run("POST", f"/api/v1/ontology/{db}/async/create",
                    {"id": "Item", "properties": [{"name": "n", "type": "integer"}]})
    for i in range(1, 4):
        await stack.run("POST", f"/api/v1/instances/{db}/async/Item/create", {"data": {"instance_id": f"i{i}", "n": i}})
    return db


async def test_requested_approved_by_another_admin_rebuilt_and_completed(stack: Stack, pool: Pool) -> None:
    db = await database_with_bob_as_second_admin(stack)
    # A document changed behind the system's back: the replay puts it back as the events say.
    await pool.execute("UPDATE docs.instances SET doc = jsonb_set(doc, '{data,n}', '22')"
                       " WHERE db_name = $1 AND instance_id = 'i2'", db)
    code, asked = await stack.request("POST", "/api/v1/admin/replays",
                                      {"db_name": db, "targets": ["documents", "search"], "reason": "drill"})
    assert code == 202 and asked["status"] == "AWAITING_APPROVAL", asked
    replay_id = asked["replay_id"]
    state = await replay_state(stack, replay_id, "AWAITING_APPROVAL")
    assert state["requested_by"] == "alice" and state["targets"] == ["documents", "search"]
    assert (await stack.request("GET", f"/api/v1/instances/{db}/Item/i2"))[1]["n"] == 22  # nothing rebuilt yet

    for user in ("alice", "mallory"):  # the requester, and a user who is not an admin there
        code, refused = await stack.request("POST", f"/api/v1/admin/replays/{replay_id}/approve", user=user)
        assert code == 403 and refused["detail"]["message"], (user, refused)
    code, approved = await stack.request("POST", f"/api/v1/admin/replays/{replay_id}/approve", user="bob")
    assert code == 202 and approved["status"] == "APPROVED", approved
    done = await stack.wait(approved["command_id"], user="bob")
    assert done["status"] == "COMPLETED", done
    result = done["result"]["result"]
    assert result["objects"] == 4 and result["events"] >= 4 and len(result["checksum"]) == 64  # class + 3 instances

    state = await replay_state(stack, replay_id, "COMPLETED")
    assert state["approved_by"] == "bob" and state["command_id"] == approved["command_id"]
    assert state["result"]["checksum"] == result["checksum"]
    code, i2 = await stack.request("GET", f"/api/v1/instances/{db}/Item/i2")
    assert code == 200 and i2["n"] == 2
    code, report = await stack.request("GET", f"/api/v1/admin/reconcile/{db}")
    assert report["checksums"]["documents"] == report["checksums"]["events"] == result["checksum"]
    events = await pool.fetch("SELECT event_type FROM events WHERE aggregate_type = 'replay' AND aggregate_id = $1 "
                              "ORDER BY version", replay_id)
    assert [e["event_type"] for e in events] == ["REPLAY_REQUESTED", "REPLAY_APPROVED", "REPLAY_COMPLETED"]
    code, again = await stack.request("POST", f"/api/v1/admin/replays/{replay_id}/approve", user="bob")
    assert code == 409 and again["detail"]["message"]


async def test_rejected_and_the_bootstrap_administrator(stack: Stack) -> None:
    db = await database_with_bob_as_second_admin(stack)
    code, asked = await stack.request("POST", "/api/v1/admin/replays",
                                      {"db_name": db, "targets": ["search"], "reason": "not now"})
    assert code == 202
    code, rejected = await stack.request("POST", f"/api/v1/admin/replays/{asked['replay_id']}/reject", user="bob")
    assert code == 202 and rejected["status"] == "REJECTED"
    state = await replay_state(stack, asked["replay_id"], "REJECTED")
    assert state["approved_by"] is None
    code, late = await stack.request("POST", f"/api/v1/admin/replays/{asked['replay_id']}/approve", user="bob")
    assert code == 409, late

    # The bootstrap administrator may approve a replay it requested itself.
    code, own = await stack.request("POST", "/api/v1/admin/replays",
                                    {"db_name": db, "targets": ["search"], "reason": "ops"}, user="admin")
    assert code == 202
    code, approved = await stack.request("POST", f"/api/v1/admin/replays/{own['replay_id']}/approve", user="admin")
    assert code == 202, approved
    assert (await stack.wait(approved["command_id"], user="admin"))["status"] == "COMPLETED"
    await replay_state(stack, own["replay_id"], "COMPLETED", user="admin")

    for body in ({"db_name": db, "targets": [], "reason": "x"}, {"db_name": db, "targets": ["tables"], "reason": "x"},
                 {"db_name": "Bad Name", "targets": ["search"], "reason": "x"}):
        assert (await stack.request("POST", "/api/v1/admin/replays", body))[0] == 422
    assert (await stack.request("POST", "/api/v1/admin/replays", {"db_name": db, "targets": ["search"],
                                                                   "reason": "x"}, user="mallory"))[0] == 403
    assert (await stack.request("GET", "/api/v1/admin/replays/00000000-0000-0000-0000-000000000000"))[0] == 404


async def test_the_command_line_requests_approves_and_follows(stack: Stack) -> None:
    from tests.test_cli import spice

    db = await database_with_bob_as_second_admin(stack)
    code, out = await spice("replay", "--as", "alice", "request", db, "--targets", "documents", "--reason", "cli")
    assert code == 0, out
    replay_id = json.loads(out)["replay_id"]
    code, out = await spice("replay", "--as", "alice", "approve", replay_id)
    assert code == 1 and "different admin" in out
    code, out = await spice("replay", "--as", "bob", "approve", replay_id)
    assert code == 0, out
    assert '"COMPLETED"' in out and '"checksum"' in out
    state = await replay_state(stack, replay_id, "COMPLETED")
    assert state["targets"] == ["documents"]
    code, out = await spice("replay", "status", replay_id)
    assert code == 0 and json.loads(out)["status"] == "COMPLETED"
