"""GET /api/v1/commands/{id}/trace: command → events → objects at those versions → archive → search."""
from __future__ import annotations

import asyncio
import uuid
from typing import Any

from tests.stack import Stack


async def _trace(stack: Stack, command_id: str, user: str = "alice") -> tuple[int, dict[str, Any]]:
    return await stack.request("GET", f"/api/v1/commands/{command_id}/trace", user=user)


async def test_an_instance_update_is_traced_to_its_archive_and_search_versions(stack: Stack) -> None:
    db = await stack.new_database()
    await stack.run("POST", f"/api/v1/ontology/{db}/async/create",
                    {"id": "Note", "properties": [{"name": "text", "type": "string"}]})
    await stack.run("POST", f"/api/v1/instances/{db}/async/Note/create", {"data": {"instance_id": "n1", "text": "a"}})
    update = await stack.run("PUT", f"/api/v1/instances/{db}/async/Note/n1/update", {"data": {"text": "b"}})
    assert update["status"] == "COMPLETED"
    body: dict[str, Any] = {}
    for _ in range(600):  # the search index follows the event topics (behind a loaded suite, by many seconds)
        code, body = await _trace(stack, update["command_id"])
        assert code == 200, body
        if body["objects"][0]["search_version"] == 2:
            break
        await asyncio.sleep(0.2)
    assert body["command"]["command_id"] == update["command_id"] and body["command"]["actor"] == "alice"
    assert body["command"]["payload"]["data"] == {"text": "b"}
    assert body["status"] == "COMPLETED"
    [event] = body["events"]
    assert event["event_type"] == "INSTANCE_UPDATED" and event["aggregate_id"] == "n1" and event["version"] == 2
    assert isinstance(event["position"], int)
    [obj] = body["objects"]
    assert obj["version"] == 2 and obj["state"]["data"] == {"text": "b"}
    assert obj["archive_uri"].startswith("s3://") and obj["archive_uri"].endswith(f"/{event['event_id']}.json")
    assert obj["search_version"] == 2, body


async def test_a_class_command_a_failure_and_the_read_rights(stack: Stack) -> None:
    db = await stack.new_database()
    created = await stack.run("POST", f"/api/v1/ontology/{db}/async/create", {"id": "Thing"})
    code, body = await _trace(stack, created["command_id"])
    assert code == 200 and body["events"][0]["event_type"] == "ONTOLOGY_CLASS_CREATED"
    assert body["objects"][0]["archive_uri"] is None  # schema events live in the event store only
    failed = await stack.run("PUT", f"/api/v1/ontology/{db}/async/Thing", {"description": "x", "expected_version": 9})
    code, body = await _trace(stack, failed["command_id"])
    assert code == 200 and body["status"] == "FAILED"
    assert [e["event_type"] for e in body["events"]] == ["COMMAND_FAILED"] and body["objects"] == []
    code, body = await _trace(stack, created["command_id"], user="mallory")
    assert code == 403 and body["detail"]["message"]
    for unknown in (str(uuid.uuid4()), "not-a-uuid"):
        code, body = await _trace(stack, unknown)
        assert code == 404 and body["detail"]["message"]
