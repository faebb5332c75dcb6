"""The ontology write path end to end: HTTP → PostgreSQL → relay → Kafka → Faust agent → stores."""
from __future__ import annotations

import asyncio

from shared.adapters.postgres.pool import Pool
from tests.stack import Stack

PERSON = {"id": "Person", "label": {"en": "Person", "ko": "사람"}, "description": "A human",
          "properties": [{"name": "name", "type": "string", "label": "Name", "required": True},
                         {"name": "age", "type": "integer", "constraints": {"min": 0}},
                         {"name": "born", "type": "date"}]}


async def test_create_class_completes_with_one_event(stack: Stack, pool: Pool) -> None:
    db = await stack.new_database()
    code, accepted = await stack.request("POST", f"/api/v1/ontology/{db}/async/create", PERSON)
    assert code == 202 and accepted["status"] == "PENDING" and accepted["result"]["message"]
    command_id = accepted["command_id"]
    done = await stack.wait(command_id)
    assert done["status"] == "COMPLETED", done
    result = done["result"]
    assert result["command_type"] == "CREATE_ONTOLOGY_CLASS" and result["aggregate_id"] == "Person"
    assert result["progress"] == 100 and result["result"]["version"] == 1
    # The status table is fed through Kafka and may trail the event store by a moment; the API
    # answers COMPLETED from the event store meanwhile, and the full history once the table has it.
    for _ in range(100):
        history = [h["status"] for h in (await stack.status(command_id))["result"]["history"]]
        if history == ["PENDING", "PROCESSING", "COMPLETED"]:
            break
        await asyncio.sleep(0.1)
    assert history == ["PENDING", "PROCESSING", "COMPLETED"]
    assert all(h["timestamp"].endswith("Z") for h in result["history"])

    code, cls = await stack.request("GET", f"/api/v1/ontology/{db}/classes/Person")
    assert code == 200
    assert cls["version"] == 1 and cls["source_command_id"] == command_id
    assert cls["label"] == {"en": "Person", "ko": "사람"} and cls["created_by"] == cls["updated_by"]
    events = await pool.fetch("SELECT event_type, event_id, version FROM events WHERE command_id = $1",
                              __import__("uuid").UUID(command_id))
    assert [(e["event_type"], e["version"]) for e in events] == [("ONTOLOGY_CLASS_CREATED", 1)]
    assert str(events[0]["event_id"]) == cls["event_id"] == result["result"]["event_id"]

    code, same = await stack.request("GET", f"/api/v1/ontology/{db}/async/command/{command_id}/status")
    assert code == 200 and same["status"] == "COMPLETED"


async def test_update_delete_and_history(stack: Stack) -> None:
    db = await stack.new_database()
    assert (await stack.run("POST", f"/api/v1/ontology/{db}/async/create", PERSON))["status"] == "COMPLETED"
    updated = await stack.run("PUT", f"/api/v1/ontology/{db}/async/Person",
                              {"description": "Someone", "expected_version": 1})
    assert updated["status"] == "COMPLETED", updated
    code, cls = await stack.request("GET", f"/api/v1/ontology/{db}/classes/Person")
    assert cls["version"] == 2 and cls["description"] == "Someone" and len(cls["properties"]) == 3
    code, old = await stack.request("GET", f"/api/v1/ontology/{db}/classes/Person?version=1")
    assert code == 200 and old["description"] == "A human"
    deleted = await stack.run("DELETE", f"/api/v1/ontology/{db}/async/Person?expected_version=2")
    assert deleted["status"] == "COMPLETED", deleted
    code, gone = await stack.request("GET", f"/api/v1/ontology/{db}/classes/Person")
    assert code == 404 and gone["detail"]["message"]
    code, history = await stack.request("GET", f"/api/v1/ontology/{db}/classes/Person/history")
    assert code == 200
    assert [(h["version"], h["event_type"]) for h in history["items"]] == [
        (1, "ONTOLOGY_CLASS_CREATED"), (2, "ONTOLOGY_CLASS_UPDATED"), (3, "ONTOLOGY_CLASS_DELETED")]
    assert all(h["actor"] and h["command_id"] and h["event_id"] and h["timestamp"] for h in history["items"])


async def test_stale_expected_version_fails_with_conflict(stack: Stack) -> None:
    db = await stack.new_database()
    await stack.run("POST", f"/api/v1/ontology/{db}/async/create", PERSON)
    stale = await stack.run("PUT", f"/api/v1/ontology/{db}/async/Person",
                            {"description": "late", "expected_version": 5})
    assert stale["status"] == "FAILED"
    assert stale["result"]["error"]["code"] == "conflict"
    assert "version" in stale["result"]["error"]["message"]
    code, cls = await stack.request("GET", f"/api/v1/ontology/{db}/classes/Person")
    assert cls["version"] == 1 and cls["description"] == "A human"


async def test_delete_of_unknown_class_fails_with_reason(stack: Stack) -> None:
    db = await stack.new_database()
    failed = await stack.run("DELETE", f"/api/v1/ontology/{db}/async/Nobody")
    assert failed["status"] == "FAILED"
    assert "does not exist" in failed["result"]["error"]["message"]


async def test_child_class_submitted_right_after_its_parent(stack: Stack) -> None:
    db = await stack.new_database()
    parent = await stack.submit("POST", f"/api/v1/ontology/{db}/async/create", PERSON)
    child = await stack.submit("POST", f"/api/v1/ontology/{db}/async/create",
                               {"id": "Employee", "parent_class": "Person",
                                "properties": [{"name": "boss", "type": "link", "target": "Person"}]})
    assert (await stack.wait(parent))["status"] == "COMPLETED"
    done = await stack.wait(child)
    assert done["status"] == "COMPLETED", done
    in_use = await stack.run("DELETE", f"/api/v1/ontology/{db}/async/Person")
    assert in_use["status"] == "FAILED" and "Employee" in in_use["result"]["error"]["message"]


async def test_database_list_and_delete(stack: Stack) -> None:
    db = await stack.new_database()
    code, listing = await stack.request("GET", "/api/v1/database/list")
    assert code == 200 and db in listing["databases"]
    done = await stack.run("DELETE", f"/api/v1/database/{db}")
    assert done["status"] == "COMPLETED", done
    code, listing = await stack.request("GET", "/api/v1/database/list")
    assert db not in listing["databases"]
    code, _ = await stack.request("GET", f"/api/v1/ontology/{db}/classes")
    assert code == 404


async def test_a_status_history_does_not_name_the_worker(stack: Stack) -> None:
    """Which host and process ran a command is the operator's business (the worker's log), not a user's."""
    import socket

    db = await stack.new_database()
    done = await stack.run("POST", f"/api/v1/ontology/{db}/async/create", {"id": "Anon"})
    messages = " ".join(h["message"] for h in done["result"]["history"])
    assert "Processing started" in messages, done
    assert stack.worker.proc is not None
    assert socket.gethostname() not in messages and f":{stack.worker.proc.pid}" not in messages, messages
