"""Partial instance updates keep what they leave out: links, relationships and required properties of
the merged state are checked, on the PostgreSQL document store end to end and on the TerminusDB FAKE."""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from shared.adapters.postgres.command_log import PostgresCommandLog
from shared.adapters.postgres.document_store import PostgresDocumentStore
from shared.adapters.postgres.event_store import PostgresEventStore
from shared.adapters.postgres.pool import Pool
from shared.adapters.terminusdb import TerminusDocumentStore
from shared.application.contexts import ContextReader
from shared.domain.commands import Command, CommandType
from shared.domain.decide_instances import decide_instances
from shared.domain.events import EventType
from shared.ports import DocumentStore
from tests.contracts.document_store import class_doc, db_doc, instance_doc
from tests.fake_terminusdb import FakeTerminusDB
from tests.stack import Stack

MAKER = {"id": "Maker", "properties": [{"name": "title", "type": "string", "required": True}]}
GADGET = {"id": "Gadget",
          "properties": [{"name": "name", "type": "string", "required": True},
                         {"name": "stock", "type": "integer"},
                         {"name": "maker", "type": "link", "target": "Maker"}],
          "relationships": [{"predicate": "parts", "target": "Maker", "cardinality": "n:m"}]}


async def test_a_partial_update_keeps_the_links_and_required_properties_it_leaves_out(stack: Stack) -> None:
    db = await stack.new_database()
    for body in (MAKER, GADGET):
        assert (await stack.run("POST", f"/api/v1/ontology/{db}/async/create", body))["status"] == "COMPLETED"
    base = f"/api/v1/instances/{db}/async"
    for iid in ("m1", "m2"):
        made = await stack.run("POST", f"{base}/Maker/create", {"data": {"instance_id": iid, "title": iid}})
        assert made["status"] == "COMPLETED", made
    made = await stack.run("POST", f"{base}/Gadget/create", {"data": {
        "instance_id": "g1", "name": "Widget", "maker": "m1", "parts": ["m1", "m2"]}})
    assert made["status"] == "COMPLETED", made

    # Leaves out the link, the relationship list and the required name.
    done = await stack.run("PUT", f"{base}/Gadget/g1/update", {"data": {"stock": 4}, "expected_version": 1})
    assert done["status"] == "COMPLETED", done
    code, doc = await stack.request("GET", f"/api/v1/instances/{db}/Gadget/g1")
    assert code == 200, doc
    assert doc["version"] == 2 and doc["stock"] == 4
    assert doc["maker"] == "m1" and doc["parts"] == ["m1", "m2"] and doc["name"] == "Widget"

    # The merged state is still checked: a link to a missing instance fails, naming it.
    bad = await stack.run("PUT", f"{base}/Gadget/g1/update", {"data": {"maker": "ghost"}})
    assert bad["status"] == "FAILED" and bad["result"]["error"]["code"] == "validation_failed", bad
    assert "ghost" in bad["result"]["error"]["message"]
    # Clearing a required property through an update fails too.
    cleared = await stack.run("PUT", f"{base}/Gadget/g1/update", {"data": {"name": None}})
    assert cleared["status"] == "FAILED" and "'name' is required" in cleared["result"]["error"]["message"]


@pytest.fixture(params=["postgres", "terminusdb-fake"])
async def docs(request: pytest.FixtureRequest, pool: Pool) -> AsyncIterator[DocumentStore]:
    if request.param == "postgres":
        yield PostgresDocumentStore(pool)
        return
    fake = FakeTerminusDB()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    store = TerminusDocumentStore(f"http://admin:root@127.0.0.1:{server.port}")
    try:
        yield store
    finally:
        await store.close()
        await server.close()
    assert fake.violations == []


def _class(spec: dict[str, Any]) -> dict[str, Any]:
    return class_doc(spec["id"], 1, properties=spec["properties"], relationships=spec.get("relationships", []),
                     label=spec["id"], parent_class=None, abstract=False)


async def test_an_update_is_decided_on_its_merged_state_on_both_document_stores(
        docs: DocumentStore, pool: Pool) -> None:
    db = f"db-{uuid.uuid4().hex[:8]}"
    await docs.put_database(db_doc(db, 1))
    for spec in (MAKER, GADGET):
        await docs.put_class(db, _class(spec))
    await docs.put_instances(db, [instance_doc("m1", "Maker", 1, title="M")])
    await docs.put_instances(db, [instance_doc("g1", "Gadget", 1, name="Widget", maker="m1", parts=["m1"])])
    contexts = ContextReader(PostgresCommandLog(pool), PostgresEventStore(pool), docs)

    def update(data: dict[str, Any]) -> Command:
        return Command(command_type=CommandType.UPDATE_INSTANCE,
                       aggregate_id="g1", db_name=db, actor="alice", expected_version=1,
                       payload={"class_id": "Gadget", "data": data})

    partial = update({"stock": 4})
    context = await contexts.for_instances(partial)
    assert context.linked == {"m1": "Maker"}
    [event] = decide_instances(partial, context)
    assert event.event_type is EventType.INSTANCE_UPDATED, event.data
    assert event.data["data"] == {"name": "Widget", "stock": 4, "maker": "m1", "parts": ["m1"]}

    dangling = update({"parts": ["m1", "nope"]})
    [failed] = decide_instances(dangling, await contexts.for_instances(dangling))
    assert failed.failed and "nope" in failed.data["error"]["message"]
