"""Instances end to end on the real services: archive object, document and event agree; bulk; redelivery."""
from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer

from shared.adapters.postgres.pool import Pool
from shared.config import MAX_MESSAGE_BYTES, Settings
from shared.ports import EventArchive
from tests.stack import Stack

COMPANY = {"id": "Company", "label": {"en": "Company", "ko": "회사"},
           "properties": [{"name": "title", "type": "string", "required": True}]}
AGENT = {"id": "Agent", "abstract": True,
         "properties": [{"name": "name", "type": "string", "required": True, "constraints": {"min_length": 2}}]}
PERSON = {"id": "Person", "parent_class": "Agent",
          "properties": [{"name": "age", "type": "integer", "constraints": {"min": 0, "max": 150}},
                         {"name": "email", "type": "string", "constraints": {"pattern": "[^@]+@[^@]+"}},
                         {"name": "born", "type": "date"},
                         {"name": "employer", "type": "link", "target": "Company"}]}


async def ontology(stack: Stack) -> str:
    db = await stack.new_database()
    for body in (COMPANY, AGENT, PERSON):
        done = await stack.run("POST", f"/api/v1/ontology/{db}/async/create", body)
        assert done["status"] == "COMPLETED", done
    return db


async def create(stack: Stack, db: str, class_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return await stack.run("POST", f"/api/v1/instances/{db}/async/{class_id}/create", {"data": data})


async def test_create_archives_writes_document_and_event_with_one_identity(
        stack: Stack, pool: Pool, archive: EventArchive) -> None:
    db = await ontology(stack)
    assert (await create(stack, db, "Company", {"instance_id": "acme", "title": "Acme"}))["status"] == "COMPLETED"
    done = await create(stack, db, "Person", {"name": "Ada", "age": 36, "employer": "acme"})
    assert done["status"] == "COMPLETED", done
    result = done["result"]["result"]
    iid = result["instance_id"]
    code, doc = await stack.request("GET", f"/api/v1/instances/{db}/Person/{iid}")
    assert code == 200, doc
    assert doc["name"] == "Ada" and doc["data"]["age"] == 36 and doc["class_id"] == "Person"
    assert doc["version"] == 1 and doc["created_by"] == "alice" and doc["updated_by"] == "alice"
    assert doc["source_command_id"] == done["command_id"]
    event = await pool.fetchrow("SELECT event_id, version, command_id, data FROM events WHERE command_id = $1",
                                uuid.UUID(done["command_id"]))
    assert str(event["event_id"]) == doc["event_id"] == result["event_id"]
    key = doc["archive_uri"].split("/", 3)[3] if doc["archive_uri"].startswith("s3://") else None
    keys = await archive.keys(f"{db}/Person/{iid}/")
    assert len(keys) == 1 and (key is None or keys == [key])
    archived = json.loads((await archive.get(keys[0])) or b"{}")
    assert archived["event_id"] == doc["event_id"] and archived["command_id"] == done["command_id"]
    assert archived["version"] == 1 and archived["data"]["data"]["name"] == "Ada"
    assert event["data"]["archive_uri"] == doc["archive_uri"]


async def test_update_delete_history_and_provenance(stack: Stack, archive: EventArchive) -> None:
    db = await ontology(stack)
    await create(stack, db, "Company", {"instance_id": "c1", "title": "One"})
    base = f"/api/v1/instances/{db}/async/Company/c1"
    updated = await stack.run("PUT", f"{base}/update", {"data": {"title": "Uno"}}, user="alice")
    assert updated["status"] == "COMPLETED", updated
    stale = await stack.run("PUT", f"{base}/update", {"data": {"title": "x"}, "expected_version": 1})
    assert stale["status"] == "FAILED" and stale["result"]["error"]["code"] == "conflict"
    code, doc = await stack.request("GET", f"/api/v1/instances/{db}/Company/c1")
    assert doc["title"] == "Uno" and doc["version"] == 2
    code, v1 = await stack.request("GET", f"/api/v1/instances/{db}/Company/c1?version=1")
    assert code == 200 and v1["title"] == "One"
    deleted = await stack.run("DELETE", f"{base}/delete?expected_version=2")
    assert deleted["status"] == "COMPLETED", deleted
    code, gone = await stack.request("GET", f"/api/v1/instances/{db}/Company/c1")
    assert code == 404, gone
    code, history = await stack.request("GET", f"/api/v1/instances/{db}/Company/c1/history")
    assert [h["event_type"] for h in history["items"]] == ["INSTANCE_CREATED", "INSTANCE_UPDATED",
                                                           "INSTANCE_DELETED"]
    assert all(h["actor"] == "alice" and h["archive_uri"] for h in history["items"])
    code, prov = await stack.request("GET", f"/api/v1/instances/{db}/Company/c1/provenance")
    assert prov["deleted"] is True and prov["version"] == 3 and len(prov["changes"]) == 3
    assert prov["source_command_id"] == deleted["command_id"]
    assert len(await archive.keys(f"{db}/Company/c1/")) == 3


async def test_validation_failure_lists_every_problem_and_writes_nothing(
        stack: Stack, pool: Pool, archive: EventArchive) -> None:
    db = await ontology(stack)
    done = await create(stack, db, "Person", {"instance_id": "bad", "name": "A", "age": -1, "email": "no",
                                              "born": "someday", "employer": "ghost", "extra": 1})
    assert done["status"] == "FAILED", done
    error = done["result"]["error"]
    assert error["code"] == "validation_failed"
    assert sorted(p["field"] for p in error["problems"]) == ["age", "born", "email", "employer", "extra", "name"]
    code, _ = await stack.request("GET", f"/api/v1/instances/{db}/Person/bad")
    assert code == 404
    assert await archive.keys(f"{db}/Person/bad/") == []
    versions = await pool.fetchval("SELECT count(*) FROM events WHERE db_name = $1 AND aggregate_id = 'bad'"
                                   " AND version IS NOT NULL", db)
    assert versions == 0
    abstract = await create(stack, db, "Agent", {"name": "Bo"})
    assert abstract["result"]["error"]["code"] == "abstract_class"


async def test_bad_requests_get_4xx_and_record_nothing(stack: Stack, pool: Pool) -> None:
    db = await ontology(stack)
    before = await pool.fetchval("SELECT count(*) FROM commands WHERE db_name = $1", db)
    cases = [
        ("POST", f"/api/v1/instances/{db}/async/Nope/create", {"data": {}}, 404),
        ("POST", "/api/v1/instances/no-such-db/async/Person/create", {"data": {}}, 404),
        ("POST", f"/api/v1/instances/{db}/async/Person/create", {"data": "x"}, 422),
        ("POST", f"/api/v1/instances/{db}/async/Person/create", {"data": {"instance_id": "a b"}}, 422),
        ("POST", f"/api/v1/instances/{db}/async/Person/create", {"data": {"version": 3}}, 422),
        ("PUT", f"/api/v1/instances/{db}/async/Person/nobody/update", {"data": {"age": 1}}, 404),
        ("DELETE", f"/api/v1/instances/{db}/async/Person/nobody/delete", None, 404),
        ("PUT", f"/api/v1/instances/{db}/async/Person/nobody/update", {"data": {}, "expected_version": True}, 422),
        ("PUT", f"/api/v1/instances/{db}/async/Person/nobody/update?expected_version=99999999999",
         {"data": {}}, 422),
        ("DELETE", f"/api/v1/instances/{db}/async/Person/nobody/delete", {"expected_version": False}, 422),
        ("DELETE", f"/api/v1/instances/{db}/async/Person/nobody/delete", {"expected_version": 2**31}, 422),
        ("POST", f"/api/v1/instances/{db}/async/Person/bulk-create", {"instances": []}, 422),
        ("POST", f"/api/v1/instances/{db}/async/Person/bulk-create",
         {"instances": [{"instance_id": "d"}, {"instance_id": "d"}]}, 422),
        ("POST", f"/api/v1/instances/{db}/async/Person/bulk-create", {"instances": [{}] * 10_001}, 422),
    ]
    for method, path, body, status in cases:
        code, answer = await stack.request(method, path, json=body)
        assert code == status, (path, body if not isinstance(body, dict) or len(str(body)) < 200 else "", answer)
        assert answer["detail"]["message"]
    # Within the HTTP body limit, but more than one Kafka message carries once every instance is given
    # its generated id: refused at submission (413 naming the limit), never stalling the relay.
    code, answer = await stack.request("POST", f"/api/v1/instances/{db}/async/Person/bulk-create",
                                       json={"instances": [{"name": "x" * 1_640}] * 10_000})
    assert code == 413 and f"carries at most {MAX_MESSAGE_BYTES}" in answer["detail"]["message"], answer
    code, _ = await stack.request("POST", f"/api/v1/instances/{db}/async/Person/create", json={"data": {}},
                                  user="mallory")
    assert code == 403
    assert await pool.fetchval("SELECT count(*) FROM commands WHERE db_name = $1", db) == before


async def test_bulk_create_of_ten_thousand_reports_progress_and_archives_each_once(
        stack: Stack, pool: Pool, archive: EventArchive) -> None:
    db = await ontology(stack)
    # About 2.3 MB: more than Kafka's default 1 MiB message, which the broker and topics are sized beyond.
    items = [{"instance_id": f"co{i:05d}", "title": f"Company {i} " + "x" * 200} for i in range(10_000)]
    command_id = await stack.submit("POST", f"/api/v1/instances/{db}/async/Company/bulk-create",
                                    {"instances": items})
    done = await stack.wait(command_id, timeout=300)
    assert done["status"] == "COMPLETED", done
    assert done["result"]["result"]["count"] == 10_000
    progress = [h["progress"] for h in done["result"]["history"] if h["status"] == "PROCESSING"]
    assert len(progress) >= 5 and progress == sorted(progress), progress
    assert await pool.fetchval("SELECT count(*) FROM events WHERE command_id = $1", uuid.UUID(command_id)) == 10_000
    keys = await archive.keys(f"{db}/Company/")
    assert len(keys) == 10_000 and len({k.split("/")[2] for k in keys}) == 10_000
    code, page = await stack.request("GET", f"/api/v1/instances/{db}/Company?limit=50&offset=9990")
    assert page["total"] == 10_000 and [i["instance_id"] for i in page["items"]] == [
        f"co{i:05d}" for i in range(9990, 10_000)]


async def test_redelivered_instance_command_changes_nothing(
        stack: Stack, pool: Pool, settings: Settings, archive: EventArchive) -> None:
    db = await ontology(stack)
    done = await create(stack, db, "Company", {"instance_id": "once", "title": "Once"})
    row = await pool.fetchrow("SELECT topic, key, value FROM outbox WHERE command_id = $1",
                              uuid.UUID(done["command_id"]))
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for _ in range(2):
            await producer.send_and_wait(row["topic"], row["value"].encode(), key=row["key"].encode())
    finally:
        await producer.stop()
    # Same key and partition: once this later command is done, the duplicates were consumed.
    later = await stack.run("PUT", f"/api/v1/instances/{db}/async/Company/once/update", {"data": {"title": "T"}})
    assert later["status"] == "COMPLETED", later
    events = await pool.fetch("SELECT version FROM events WHERE db_name = $1 AND aggregate_id = 'once'"
                              " ORDER BY version", db)
    assert [e["version"] for e in events] == [1, 2]
    assert len(await archive.keys(f"{db}/Company/once/")) == 2
    code, doc = await stack.request("GET", f"/api/v1/instances/{db}/Company/once")
    assert doc["version"] == 2 and doc["title"] == "T"


async def test_a_class_with_instances_cannot_be_deleted(stack: Stack) -> None:
    db = await ontology(stack)
    await create(stack, db, "Company", {"instance_id": "keep", "title": "Kept"})
    refused = await stack.run("DELETE", f"/api/v1/ontology/{db}/async/Company")
    assert refused["status"] == "FAILED" and refused["result"]["error"]["code"] == "in_use", refused
    assert "1 instance(s)" in refused["result"]["error"]["message"]


async def test_an_instance_others_link_to_cannot_be_deleted_until_they_unlink(stack: Stack) -> None:
    """Deleting a linked instance would leave dangling links (TerminusDB refuses the delete itself): the
    command fails `in_use` naming who links to it, writes nothing, and goes through once the link is gone."""
    db = await ontology(stack)
    await create(stack, db, "Company", {"instance_id": "acme", "title": "Acme"})
    await create(stack, db, "Person", {"instance_id": "ann", "name": "Ann", "employer": "acme"})
    refused = await stack.run("DELETE", f"/api/v1/instances/{db}/async/Company/acme/delete")
    assert refused["status"] == "FAILED" and refused["result"]["error"]["code"] == "in_use", refused
    assert refused["result"]["error"]["linked_from"] == ["ann"]
    code, doc = await stack.request("GET", f"/api/v1/instances/{db}/Company/acme")
    assert code == 200 and doc["version"] == 1
    unlinked = await stack.run("PUT", f"/api/v1/instances/{db}/async/Person/ann/update",
                               {"data": {"employer": None}})
    assert unlinked["status"] == "COMPLETED", unlinked
    deleted = await stack.run("DELETE", f"/api/v1/instances/{db}/async/Company/acme/delete")
    assert deleted["status"] == "COMPLETED", deleted


async def test_a_link_to_an_instance_submitted_just_before_waits_for_it(stack: Stack) -> None:
    db = await ontology(stack)
    first = await stack.submit("POST", f"/api/v1/instances/{db}/async/Company/create",
                               {"data": {"instance_id": "newco", "title": "New"}})
    second = await stack.submit("POST", f"/api/v1/instances/{db}/async/Person/create",
                                {"data": {"name": "Eve", "employer": "newco"}})
    assert (await stack.wait(first))["status"] == "COMPLETED"
    done = await stack.wait(second)
    assert done["status"] == "COMPLETED", done


async def test_instance_commands_wait_out_an_s3_outage(stack: Stack, settings: Settings,
                                                       archive: EventArchive) -> None:
    from shared.stack import s3

    assert s3.enabled(settings), "this test stops the local S3 server: run it with the default SPICE_S3_ENDPOINT"
    db = await ontology(stack)
    s3.stop(settings)
    try:
        command_id = await stack.submit("POST", f"/api/v1/instances/{db}/async/Company/create",
                                        {"data": {"instance_id": "outage", "title": "Waits"}})
        deadline = asyncio.get_running_loop().time() + 30
        statuses: list[str] = []
        while "RETRYING" not in statuses and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
            statuses = [h["status"] for h in (await stack.status(command_id))["result"]["history"]]
        assert "RETRYING" in statuses, statuses
    finally:
        await s3.start(settings)
    done = await stack.wait(command_id, timeout=60)
    assert done["status"] == "COMPLETED", done
    assert len(await archive.keys(f"{db}/Company/outage/")) == 1
