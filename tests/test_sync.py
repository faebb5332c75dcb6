"""Sync wrappers: wait for a command, 200 with the result or 408 with a hint."""
from __future__ import annotations

import uuid

from shared.adapters.postgres.command_log import PostgresCommandLog
from shared.adapters.postgres.pool import Pool
from shared.domain.commands import Command, CommandType
from tests.stack import Stack, record_only
from tests.test_write_path import PERSON


async def test_sync_create_update_delete(stack: Stack) -> None:
    db = await stack.new_database()
    code, body = await stack.request("POST", f"/api/v1/ontology/{db}/sync/create?timeout=30", PERSON)
    assert code == 200, body
    assert body["status"] == "success" and body["message"]
    data = body["data"]
    assert data["class_id"] == "Person" and data["execution_time"] < 30
    assert data["result"]["result"]["version"] == 1
    code, body = await stack.request("PUT", f"/api/v1/ontology/{db}/sync/Person", {"description": "x"})
    assert code == 200 and body["data"]["result"]["result"]["version"] == 2
    code, body = await stack.request("DELETE", f"/api/v1/ontology/{db}/sync/Person?poll_interval=0.1")
    assert code == 200 and body["data"]["result"]["result"]["event_type"] == "ONTOLOGY_CLASS_DELETED"


async def test_wait_on_a_finished_command(stack: Stack) -> None:
    db = await stack.new_database()
    command_id = await stack.submit("POST", f"/api/v1/ontology/{db}/async/create", PERSON)
    await stack.wait(command_id)
    code, body = await stack.request("GET", f"/api/v1/ontology/{db}/sync/command/{command_id}/wait?timeout=5")
    assert code == 200 and body["status"] == "success"
    history = body["data"]["progress_history"]
    assert [h["status"] for h in history] == ["PENDING", "PROCESSING", "COMPLETED"]
    assert history[0]["elapsed_time"] == 0.0 and history[-1]["elapsed_time"] >= 0


async def test_sync_timeout_answers_408_with_a_hint(stack: Stack, pool: Pool) -> None:
    db = await stack.new_database()
    # A parent whose create is recorded but will never run (no outbox row): the child waits for it.
    ghost = Command(command_type=CommandType.CREATE_ONTOLOGY_CLASS, aggregate_id="Ghost", db_name=db,
                    actor="tester", payload={"id": "Ghost"})
    await record_only(pool, ghost)
    assert await PostgresCommandLog(pool).pending_creates(db, ["Ghost"]) == {"Ghost"}
    code, body = await stack.request("POST", f"/api/v1/ontology/{db}/sync/create?timeout=1&poll_interval=0.2",
                                     {"id": "Child", "parent_class": "Ghost"})
    assert code == 408, body
    detail = body["detail"]
    command_id = detail["command_id"]
    assert "timed out" in detail["message"] and f"/async/command/{command_id}/status" in detail["hint"]
    final = await stack.wait(command_id, timeout=30)  # the agent gives up on the dependency
    assert final["status"] == "FAILED" and final["result"]["error"]["code"] == "dependency_timeout"
    assert "RETRYING" in [h["status"] for h in final["result"]["history"]]
    uuid.UUID(command_id)
