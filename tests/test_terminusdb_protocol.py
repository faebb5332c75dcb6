"""The TerminusDB adapter against a FAKE TerminusDB (in-process, in-memory): contract and exact requests."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestServer

from shared.adapters.document_stores import open_document_store
from shared.adapters.postgres.document_store import PostgresDocumentStore
from shared.adapters.postgres.pool import Pool
from shared.adapters.terminusdb import TerminusDocumentStore, TerminusError, writer
from shared.adapters.terminusdb import document_store as terminus_document_store
from shared.config import Settings
from shared.ports import DocumentStore
from tests.contracts.document_store import DocumentStoreContract, class_doc, db_doc, instance_doc
from tests.fake_terminusdb import FakeTerminusDB


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeTerminusDB, str]]:
    fake = FakeTerminusDB()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    yield fake, f"http://admin:root@127.0.0.1:{server.port}"
    await server.close()
    assert fake.violations == []


@pytest.fixture
async def terminus(fake: tuple[FakeTerminusDB, str]) -> AsyncIterator[TerminusDocumentStore]:
    store = TerminusDocumentStore(fake[1])
    yield store
    await store.close()


class TestTerminusDocumentStoreOnFake(DocumentStoreContract):
    @pytest.fixture
    def store(self, terminus: TerminusDocumentStore) -> DocumentStore:
        return terminus

    @pytest.fixture(autouse=True)
    def small_pages(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Pages of three records: every listing of the contract crosses page boundaries."""
        monkeypatch.setattr(terminus_document_store, "VERSIONS_PAGE", 3)


def _writes(fake: FakeTerminusDB, graph_type: str) -> list[dict[str, Any]]:
    return [r for r in fake.requests if r["method"] in ("POST", "PUT", "DELETE") and r["path"].startswith(
        "/api/document/") and r["query"].get("graph_type") == graph_type]


PERSON = class_doc("Person", 1, label={"en": "Person", "ko": "사람"}, description="A human", abstract=True,
                   properties=[{"name": "name", "type": "string", "required": True, "label": {"en": "Name"}},
                               {"name": "born", "type": "date", "required": False}],
                   updated_by="alice", source_command_id="cmd-person")
EMPLOYEE = class_doc("Employee", 1, label="Employee", parent_class="Person",
                     properties=[{"name": "salary", "type": "decimal", "required": False},
                                 {"name": "hired", "type": "datetime", "required": True},
                                 {"name": "active", "type": "boolean", "required": False},
                                 {"name": "level", "type": "integer", "required": False},
                                 {"name": "manager", "type": "link", "target": "Employee", "required": False}],
                     relationships=[{"predicate": "works_for", "target": "Company", "cardinality": "n:m"},
                                    {"predicate": "mentor", "target": "Person", "cardinality": "n:1"}],
                     updated_by="bob", source_command_id="cmd-employee")
COMPANY = class_doc("Company", 1, updated_by="bob", source_command_id="cmd-company")


async def _ontology(store: TerminusDocumentStore, name: str) -> None:
    await store.put_database({**db_doc(name, 1), "updated_by": "alice", "source_command_id": "cmd-db"})
    for doc in (PERSON, COMPANY, EMPLOYEE):
        await store.put_class(name, doc)


async def test_class_schema_documents(fake: tuple[FakeTerminusDB, str], terminus: TerminusDocumentStore) -> None:
    server, _ = fake
    await _ontology(terminus, "hr")
    assert "Employee" not in server.dbs["hr"].schema  # recorded; its schema document waits for the next commit
    await terminus.flush("hr")
    written = [r for r in _writes(server, "schema") if any(d["@id"] == "Employee" for d in r["body"])]
    assert len(written) == 1  # the three classes in one schema commit, naming their commands
    assert written[0]["method"] == "PUT"
    assert written[0]["query"] == {"author": "spice-harvester", "message": "cmd-company cmd-employee cmd-person",
                                   "graph_type": "schema", "create": "true"}
    assert [d for d in written[0]["body"] if d["@id"] == "Employee"] == [{
        "@type": "Class", "@id": "Employee", "@inherits": ["Person"],
        "salary": {"@type": "Optional", "@class": "xsd:decimal"},
        "hired": "xsd:dateTime",
        "active": {"@type": "Optional", "@class": "xsd:boolean"},
        "level": {"@type": "Optional", "@class": "xsd:integer"},
        "manager": {"@type": "Optional", "@class": "Employee"},
        "works_for": {"@type": "Set", "@class": "Company"},
        "mentor": {"@type": "Optional", "@class": "Person"},
        "@documentation": {"@label": "Employee"},
    }]
    person = server.dbs["hr"].schema["Person"]
    assert person["@abstract"] == []
    assert person["name"] == "xsd:string"
    assert person["born"] == {"@type": "Optional", "@class": "xsd:date"}
    assert person["version"] == {"@type": "Optional", "@class": "xsd:integer"}  # provenance on root classes
    assert person["@documentation"] == [
        {"@language": "en", "@label": "Person", "@comment": "A human", "@properties": {"name": {"@label": "Name"}}},
        {"@language": "ko", "@label": "사람", "@comment": "A human"}]
    # spice's own class document comes back exactly as stored
    assert await terminus.get_class("hr", "Employee") == EMPLOYEE


async def test_commits_carry_user_and_command(fake: tuple[FakeTerminusDB, str],
                                              terminus: TerminusDocumentStore) -> None:
    server, _ = fake
    await _ontology(terminus, "hr")
    await terminus.put_instances("hr", [{**instance_doc("c1", "Company", 1), "updated_by": "carol"}])
    log = await terminus.client.log("hr")  # TerminusDB's own log, newest first
    assert (log[0]["author"], log[0]["message"]) == ("carol", server.commits("hr")[-1].message)
    authored = {(c["author"], c["message"]) for c in log}
    assert {("bob", "cmd-employee"), ("alice", "cmd-person"), ("bob", "cmd-company")} <= authored
    catalog = {(c.author, c.message) for c in server.commits("SpiceCatalog")}
    assert ("alice", "cmd-db") in catalog


async def test_instance_documents_and_links(fake: tuple[FakeTerminusDB, str],
                                            terminus: TerminusDocumentStore) -> None:
    server, _ = fake
    await _ontology(terminus, "hr")
    boss = instance_doc("e:0", "Employee", 1, name="Boss", hired="2026-01-01T09:00:00Z")
    worker = instance_doc("e1", "Employee", 1, name="Ada", hired="2026-01-02T09:00:00Z", salary=10.5,
                          active=True, level=3, manager="e:0")
    await terminus.put_instances("hr", [boss, worker])
    stored = server.dbs["hr"].instances["Employee/e1"]
    assert stored == {
        "@type": "Employee", "@id": "Employee/e1", "name": "Ada", "hired": "2026-01-02T09:00:00Z", "salary": 10.5,
        "active": True, "level": 3, "manager": {"@ref": "Employee/e%3A0"},
        **{k: worker[k] for k in ("version", "source_command_id", "event_id", "created_by", "created_at",
                                  "updated_by", "updated_at", "archive_uri")}}
    assert "Employee/e%3A0" in server.dbs["hr"].instances  # ids are percent-encoded after the class prefix
    put = [r for r in _writes(server, "instance") if r["body"] and r["body"][0].get("@id") == "Employee/e%3A0"]
    assert len(put) == 1 and put[0]["query"]["create"] == "true"  # one commit for the whole batch
    assert {d["@type"] for d in put[0]["body"]} == {"Employee", "SpiceInstanceRecord"}
    assert await terminus.get_instance("hr", "e:0") == boss
    assert await terminus.instance_classes("hr", ["e:0", "e1"]) == {"e:0": "Employee", "e1": "Employee"}


async def test_terminusdb_refusals_surface(terminus: TerminusDocumentStore) -> None:
    await _ontology(terminus, "hr")
    with pytest.raises(TerminusError) as refused:  # an abstract class cannot have instances
        await terminus.put_instances("hr", [instance_doc("p1", "Person", 1, name="x")])
    assert refused.value.error_type == "api:SchemaCheckFailure"
    assert await terminus.get_instance("hr", "p1") is None


async def test_competing_write_between_read_and_write_is_not_lost(fake: tuple[FakeTerminusDB, str],
                                                                  terminus: TerminusDocumentStore) -> None:
    server, url = fake
    await terminus.put_database(db_doc("race", 1))
    await terminus.put_class("race", class_doc("Thing", 1, label="v1"))
    other = TerminusDocumentStore(url)

    async def newer_writer() -> None:  # lands after our snapshot, before our write
        await other.put_class("race", class_doc("Thing", 3, label="v3"))

    server.before_write = newer_writer
    await terminus.put_class("race", class_doc("Thing", 2, label="v2"))
    await other.close()
    assert (await terminus.get_class("race", "Thing"))["label"] == "v3"  # type: ignore[index]
    # our write was refused as stale (api:DataVersionMismatch), re-read, and then skipped as older
    record_writes = [r for r in _writes(server, "instance")
                     if any(d.get("@id") == "SpiceClassRecord/Thing" for d in r["body"] or [])]
    assert [r["headers"].get("TerminusDB-Data-Version") is not None for r in record_writes] == [True] * 3
    await terminus.flush("race")
    assert server.dbs["race"].schema["Thing"]["@documentation"] == {"@label": "v3"}


async def test_concurrent_writers_share_commits_and_never_conflict(fake: tuple[FakeTerminusDB, str],
                                                                   terminus: TerminusDocumentStore) -> None:
    """Many commands of one database at once (a pipeline batch): their writes queue behind one writer
    and land in a few commits, none refused for a stale data version."""
    server, _ = fake
    await terminus.put_database(db_doc("many", 1))
    await terminus.put_class("many", class_doc("Seed", 1))
    before, sent = len(server.commits("many")), len(server.requests)
    await asyncio.gather(*(terminus.put_class("many", class_doc(f"C{i}", 1)) for i in range(60)))
    assert [c["class_id"] for c in await terminus.classes("many")] == sorted(["Seed"] + [f"C{i}" for i in range(60)])
    commits = len(server.commits("many")) - before
    assert commits < 60, f"{commits} commits for 60 classes"
    writes = [r for r in server.requests[sent:] if r["method"] in ("PUT", "POST", "DELETE")
              and r["path"] == "/api/document/admin/many"]
    assert len(writes) == commits  # every write request landed: none was refused and sent again


async def test_new_classes_share_one_schema_commit_before_their_first_instance(
        fake: tuple[FakeTerminusDB, str], terminus: TerminusDocumentStore) -> None:
    """A schema commit costs TerminusDB the whole schema, so class creates write their records only and
    their schema documents go together, in one commit, ahead of the first instance write."""
    server, _ = fake
    await _ontology(terminus, "hr")

    def to_hr(graph_type: str) -> list[dict[str, Any]]:
        return [r for r in _writes(server, graph_type) if r["path"] == "/api/document/admin/hr"]

    assert len(to_hr("schema")) == 1  # only the install of spice's own record classes
    await terminus.put_instances("hr", [instance_doc("c1", "Company", 1)])
    schema, instance = to_hr("schema")[1:], to_hr("instance")
    assert len(schema) == 1 and {d["@id"] for d in schema[0]["body"]} == {"Person", "Company", "Employee"}
    assert instance[-1]["body"][0]["@id"] == "Company/c1"  # after the schema commit
    assert server.requests.index(schema[0]) < server.requests.index(instance[-1])


async def test_schema_documents_left_unwritten_are_read_back_and_written(
        fake: tuple[FakeTerminusDB, str], terminus: TerminusDocumentStore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that stopped before writing them: the next writer finds the classes recorded with no
    schema document and writes them with its first commit; an idle writer writes them by itself."""
    server, url = fake
    await _ontology(terminus, "hr")
    await terminus.close()  # gone without flushing
    later = TerminusDocumentStore(url)
    await later.put_instances("hr", [instance_doc("c1", "Company", 1)])
    assert {"Person", "Company", "Employee"} <= set(server.dbs["hr"].schema)
    monkeypatch.setattr(writer, "FLUSH_AFTER", 0.05)
    await later.put_class("hr", class_doc("Idle", 1))
    assert "Idle" not in server.dbs["hr"].schema
    for _ in range(100):
        if "Idle" in server.dbs["hr"].schema:
            break
        await asyncio.sleep(0.02)
    assert "Idle" in server.dbs["hr"].schema
    await later.close()


async def test_concurrent_reads_of_one_document_share_a_request(fake: tuple[FakeTerminusDB, str],
                                                                 terminus: TerminusDocumentStore) -> None:
    server, _ = fake
    await terminus.put_database(db_doc("reads", 1))
    sent = len(server.requests)
    found = await asyncio.gather(*(terminus.database("reads") for _ in range(50)))
    assert all(f is not None and f["name"] == "reads" for f in found)
    gets = [r for r in server.requests[sent:] if r["method"] == "GET"]
    assert len(gets) == 1
    await terminus.delete_database("reads", 2)
    assert await terminus.database("reads") is None  # asked after the write: a request of its own


async def test_one_refused_write_fails_alone_and_the_batch_commits(terminus: TerminusDocumentStore) -> None:
    await _ontology(terminus, "hr")
    good = [instance_doc(f"c{i}", "Company", 1) for i in range(5)]
    results = await asyncio.gather(
        *(terminus.put_instances("hr", [doc]) for doc in good[:3]),
        terminus.put_instances("hr", [instance_doc("p1", "Person", 1, name="abstract")]),
        *(terminus.put_instances("hr", [doc]) for doc in good[3:]), return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["NoneType"] * 3 + ["TerminusError"] + ["NoneType"] * 2
    assert await terminus.count_instances("hr", "Company") == 5
    assert await terminus.get_instance("hr", "p1") is None


async def test_terminusdb_giving_up_its_commit_retries_is_retried(fake: tuple[FakeTerminusDB, str],
                                                                  terminus: TerminusDocumentStore) -> None:
    server, _ = fake
    await terminus.put_database(db_doc("busy", 1))
    server.give_up_commits = 3
    await terminus.put_class("busy", class_doc("Thing", 1, label="x"))
    assert (await terminus.get_class("busy", "Thing"))["label"] == "x"  # type: ignore[index]
    assert server.give_up_commits == 0


async def test_the_unapplied_sweep_asks_terminusdb_which_versions_it_holds(
        pool: Pool, terminus: TerminusDocumentStore) -> None:
    """With TerminusDB as the document store, an event appended whose document was never written (the
    worker stopped in between) is found by comparing with the versions TerminusDB holds, and its command
    queued again; each event is looked at once, and a written one queues nothing."""
    from shared.adapters.postgres.event_store import PostgresEventStore
    from shared.adapters.postgres.redelivery import requeue_unapplied_commands, start_of_last_hour
    from shared.domain.commands import Command, CommandType, utcnow
    from shared.domain.events import Event, EventType
    from tests.stack import record_only

    db = f"db-{uuid.uuid4().hex[:8]}"
    await terminus.put_database(db_doc(db, 1))
    async with pool.acquire() as conn:
        assert await start_of_last_hour(conn) <= await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")
        start = await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")  # other tests' events before
    commands = [Command(command_type=CommandType.CREATE_ONTOLOGY_CLASS, aggregate_id=c, db_name=db, actor="t",
                        payload={"id": c}) for c in ("Written", "Lost")]
    for command in commands:
        await record_only(pool, command)
        await PostgresEventStore(pool).append(Event(
            event_id=uuid.uuid4(), event_type=EventType.ONTOLOGY_CLASS_CREATED, aggregate_type=command.aggregate_type,
            aggregate_id=command.aggregate_id, db_name=db, version=1, command_id=command.command_id, actor="t",
            occurred_at=utcnow(), data=class_doc(command.aggregate_id, 1)), "t")
    await terminus.put_class(db, class_doc("Written", 1))
    queued = "SELECT count(*) FROM outbox WHERE command_id = $1"
    async with pool.acquire() as conn:
        assert await requeue_unapplied_commands(conn, terminus, start, 8, lambda c: "t") == (0, start)  # too new
        count, checked = await requeue_unapplied_commands(conn, terminus, start, 0, lambda c: "t")
        assert count == 1 and checked > start
        assert await requeue_unapplied_commands(conn, terminus, checked, 0, lambda c: "t") == (0, checked)
    assert [await pool.fetchval(queued, c.command_id) for c in commands] == [0, 1]


async def test_grants_live_in_the_catalog_and_go_with_the_database(terminus: TerminusDocumentStore) -> None:
    await terminus.put_database(db_doc("g", 1))
    grant = {"db_name": "g", "user": "ann@example.com", "role": "reader", "version": 1, "updated_by": "admin",
             "source_command_id": "cmd-g"}
    await terminus.put_grant(grant)
    await terminus.put_grant({**grant, "user": "bo", "role": None})
    assert await terminus.grant("g", "ann@example.com") == grant
    assert [g["user"] for g in await terminus.grants("g")] == ["ann@example.com"]
    await terminus.delete_database("g", 2)
    # a GET of the deleted grant answers 200 with "Status: 404" in the body: still None
    assert await terminus.grant("g", "ann@example.com") is None
    await terminus.put_grant(grant)  # a replayed grant does not reappear for a dropped database
    assert await terminus.grants("g") == []


async def test_wrong_password_is_refused(fake: tuple[FakeTerminusDB, str]) -> None:
    store = TerminusDocumentStore(fake[1].replace("root", "wrong"))
    with pytest.raises(TerminusError) as refused:
        await store.put_database(db_doc("x", 1))
    await store.close()
    assert refused.value.status == 401
    assert refused.value.error_type == "api:IncorrectAuthenticationError"


async def test_open_document_store_picks_by_settings() -> None:
    pool = cast(Pool, object())
    assert isinstance(open_document_store(replace(Settings(), terminusdb_url=""), pool), PostgresDocumentStore)
    store = open_document_store(replace(Settings(), terminusdb_url="http://admin:secret@127.0.0.1:6363"), pool)
    assert isinstance(store, TerminusDocumentStore)
    assert (store.client.user, store.client.password) == ("admin", "secret")
    assert store.client.base == "http://127.0.0.1:6363" and store.client.org == "admin"
    assert (store.catalog, store.db_prefix) == ("SpiceCatalog", "")
    apart = open_document_store(replace(Settings(), terminusdb_url="http://admin:x@127.0.0.1:6363",
                                        terminusdb_catalog="StagingCatalog", terminusdb_prefix="staging_"), pool)
    assert isinstance(apart, TerminusDocumentStore)
    assert (apart.catalog, apart.terminus_db("sales")) == ("StagingCatalog", "staging_sales")


async def test_the_fake_refuses_what_the_reference_says_terminusdb_refuses(
        fake: tuple[FakeTerminusDB, str], terminus: TerminusDocumentStore) -> None:
    server, _ = fake
    await terminus.put_database(db_doc("strict", 1))
    client = terminus.client
    with pytest.raises(TerminusError) as missing:  # author and message are required on writes
        await client.request("PUT", "document/admin/strict", params={"author": "a", "graph_type": "schema"},
                             body=[{"@type": "Class", "@id": "X"}])
    assert missing.value.error_type == "api:MissingParameter"
    with pytest.raises(TerminusError) as stale:
        await client.replace("strict", [{"@type": "Class", "@id": "X"}], author="a", message="m",
                             graph_type="schema", data_version="branch:0000000000")
    assert stale.value.error_type == "api:DataVersionMismatch"
    with pytest.raises(TerminusError) as unknown:
        await client.replace("strict", [{"@type": "Class", "@id": "X", "p": "NoSuchClass"}], author="a",
                             message="m", graph_type="schema")
    assert unknown.value.error_type == "api:SchemaCheckFailure"
    with pytest.raises(TerminusError):
        await client.request("GET", "document/admin/strict", params={"typo": "1"})
    assert server.violations == ["GET /api/document/admin/strict: undocumented parameter 'typo'"]
    server.violations.clear()
