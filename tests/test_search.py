"""The search read model on real Elasticsearch: projector order-safety, the live agent, rebuild, search API."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from elasticsearch import AsyncElasticsearch

from shared.adapters.postgres.event_store import PostgresEventStore
from shared.adapters.postgres.pool import Pool
from shared.adapters.search import indices
from shared.adapters.search.projector import Projector
from shared.adapters.search.rebuild import rebuild
from shared.config import Settings
from shared.domain.commands import AggregateType
from shared.domain.events import Event, EventType
from shared.stack import elasticsearch as es_stack
from tests.stack import Stack

PERSON = {"id": "Person", "label": {"en": "Person", "ko": "사람"}, "description": "A human being",
          "properties": [{"name": "name", "type": "string", "required": True},
                         {"name": "age", "type": "integer"},
                         {"name": "score", "type": "decimal"},
                         {"name": "active", "type": "boolean"},
                         {"name": "born", "type": "date"}]}
COMPANY = {"id": "Company", "label": {"en": "Company", "ko": "회사"},
           "properties": [{"name": "name", "type": "string", "required": True},
                          {"name": "founded", "type": "integer"}]}
PLAIN = {"id": "Gadget", "label": "Gadget thing", "properties": [{"name": "name", "type": "string"}]}


@pytest.fixture(scope="session")
async def es(settings: Settings) -> AsyncIterator[AsyncElasticsearch]:
    """Elasticsearch through the stack module (started here when it is not running yet)."""
    await es_stack.start(settings)
    client = indices.client(settings)
    yield client
    await indices.drop_namespace(client, settings.namespace)  # a shared node: leave no indices behind
    await client.close()


def event(event_type: str, aggregate_id: str, db: str, version: int | None, data: dict[str, Any]) -> Event:
    kind = {"DATABASE": "database", "ONTOLOGY": "ontology_class", "INSTANCE": "instance",
            "COMMAND": "instance"}[event_type.split("_")[0]]
    return Event(event_id=uuid.uuid4(), event_type=EventType(event_type), aggregate_type=AggregateType(kind),
                 aggregate_id=aggregate_id, db_name=db, version=version, command_id=uuid.uuid4(), actor="alice",
                 data=data)


def person(iid: str, version: int, **props: Any) -> dict[str, Any]:
    return {"instance_id": iid, "class_id": "Person", "data": props, "version": version}


async def get(es: AsyncElasticsearch, namespace: str, db: str, iid: str) -> dict[str, Any] | None:
    resp = await es.options(ignore_status=404).get(index=indices.alias(namespace, db, indices.INSTANCES), id=iid)
    return dict(resp.body) if resp.body.get("found") else None


async def snapshot(es: AsyncElasticsearch, namespace: str, db: str) -> dict[tuple[str, str], Any]:
    """Every document of both indices: (kind, id) → (version, source)."""
    out: dict[tuple[str, str], Any] = {}
    for kind in indices.KINDS:
        name = indices.alias(namespace, db, kind)
        await es.indices.refresh(index=name)
        resp = await es.search(index=name, query={"match_all": {}}, size=5000, version=True)
        for hit in resp["hits"]["hits"]:
            out[(kind, hit["_id"])] = (hit["_version"], hit["_source"])
    return out


async def new_projected_db(es: AsyncElasticsearch, settings: Settings) -> tuple[Projector, str]:
    projector = Projector(es, settings.namespace, refresh=True)
    db = f"p-{uuid.uuid4().hex[:10]}"
    await projector.apply([event("DATABASE_CREATED", db, db, 1, {"name": db}),
                           event("ONTOLOGY_CLASS_CREATED", "Person", db, 1, {**PERSON, "class_id": "Person"})])
    return projector, db


async def test_projector_create_update_delete_and_failed_commands(es: AsyncElasticsearch, settings: Settings) -> None:
    projector, db = await new_projected_db(es, settings)
    stats = await projector.apply([event("INSTANCE_CREATED", "p1", db, 1, person("p1", 1, name="Ada", age=36)),
                                   event("COMMAND_FAILED", "p1", db, None, {"error": "nope"})])
    assert (stats.indexed, stats.skipped) == (1, 1)
    doc = await get(es, settings.namespace, db, "p1")
    assert doc is not None and doc["_version"] == 1
    assert doc["_source"]["data"] == {"name": "Ada", "age": 36} and doc["_source"]["i"] == {"age": 36}
    await projector.apply([event("INSTANCE_UPDATED", "p1", db, 2, person("p1", 2, name="Ada L", age=37))])
    doc = await get(es, settings.namespace, db, "p1")
    assert doc is not None and doc["_version"] == 2 and doc["_source"]["data"]["age"] == 37
    stats = await projector.apply([event("INSTANCE_DELETED", "p1", db, 3, {"instance_id": "p1", "deleted": True})])
    assert stats.deleted == 1 and await get(es, settings.namespace, db, "p1") is None


async def test_versions_stream_in_the_order_python_sorts_the_ids(es: AsyncElasticsearch, settings: Settings,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Reconciliation merges the index with the events by comparing ids: the same order, page after page
    (pages of two here), every document with its version and source; nothing for an unknown database."""
    from shared.adapters.search import versions

    monkeypatch.setattr(versions, "PAGE", 2)
    projector, db = await new_projected_db(es, settings)
    ids = ["b", "B", "a10", "a9", "_x", "z-1", "z.1", "\u00e9", "Z"]
    await projector.apply([event("INSTANCE_CREATED", i, db, 1, person(i, 1, name=i)) for i in ids])
    await projector.apply([event("INSTANCE_UPDATED", "a9", db, 2, person("a9", 2, name="nine"))])
    await es.indices.refresh(index=indices.alias(settings.namespace, db, indices.INSTANCES))
    index = versions.ElasticsearchSearchIndex(es, settings.namespace, cast(PostgresEventStore, None))
    found = [(i, v, source["data"]["name"]) async for i, v, source in index.versions(db, "instance")]
    assert found == [(i, 2 if i == "a9" else 1, "nine" if i == "a9" else i) for i in sorted(ids)]
    assert [x async for x in index.versions(f"{db}-unknown", "instance")] == []


async def test_out_of_order_older_events_are_ignored(es: AsyncElasticsearch, settings: Settings) -> None:
    projector, db = await new_projected_db(es, settings)
    await projector.apply([event("INSTANCE_UPDATED", "p1", db, 2, person("p1", 2, name="new"))])
    stats = await projector.apply([event("INSTANCE_CREATED", "p1", db, 1, person("p1", 1, name="old"))])
    assert stats.stale == 1 and stats.indexed == 0
    doc = await get(es, settings.namespace, db, "p1")
    assert doc is not None and doc["_version"] == 2 and doc["_source"]["data"]["name"] == "new"
    # A delete seen before the create it follows: the late create must not resurrect the document.
    await projector.apply([event("INSTANCE_DELETED", "p2", db, 2, {"instance_id": "p2", "deleted": True})])
    stats = await projector.apply([event("INSTANCE_CREATED", "p2", db, 1, person("p2", 1, name="ghost"))])
    assert stats.stale == 1 and await get(es, settings.namespace, db, "p2") is None
    # Within one batch the newest version wins whatever the order.
    stats = await projector.apply([event("INSTANCE_UPDATED", "p3", db, 3, person("p3", 3, name="v3")),
                                   event("INSTANCE_CREATED", "p3", db, 1, person("p3", 1, name="v1"))])
    assert stats.superseded == 1
    doc = await get(es, settings.namespace, db, "p3")
    assert doc is not None and doc["_source"]["data"]["name"] == "v3"


async def test_redelivery_changes_nothing(es: AsyncElasticsearch, settings: Settings) -> None:
    projector, db = await new_projected_db(es, settings)
    batch = [event("INSTANCE_CREATED", f"p{i}", db, 1, person(f"p{i}", 1, name=f"n{i}", age=i)) for i in range(20)]
    batch += [event("INSTANCE_UPDATED", "p0", db, 2, person("p0", 2, name="changed")),
              event("INSTANCE_DELETED", "p1", db, 2, {"instance_id": "p1", "deleted": True})]
    await projector.apply(batch)
    before = await snapshot(es, settings.namespace, db)
    stats = await projector.apply(batch)
    # p1's create is superseded by its delete in the batch, p0's create by its update; the rest are refused.
    assert (stats.applied, stats.superseded, stats.stale) == (0, 2, len(batch) - 2)
    assert await snapshot(es, settings.namespace, db) == before


async def test_database_deleted_drops_its_indices(es: AsyncElasticsearch, settings: Settings) -> None:
    projector, db = await new_projected_db(es, settings)
    await projector.apply([event("INSTANCE_CREATED", "p1", db, 1, person("p1", 1, name="x"))])
    await projector.apply([event("DATABASE_DELETED", db, db, 2, {"deleted": True})])
    for kind in indices.KINDS:
        assert not await es.indices.exists_alias(name=indices.alias(settings.namespace, db, kind))


# -- end to end: HTTP commands → agents → events → projection agent → Elasticsearch → search API --

async def run_ok(stack: Stack, method: str, path: str, body: Any = None) -> dict[str, Any]:
    done = await stack.run(method, path, body)
    assert done["status"] == "COMPLETED", done
    return done


async def search(stack: Stack, path: str, user: str | None = "alice") -> tuple[int, Any]:
    return await stack.request("GET", path, user=user)


async def until(predicate: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(0.3)
    raise AssertionError(f"{what} not reached in {timeout}s (last: {last})")


@pytest.fixture(scope="module")
async def people(es: AsyncElasticsearch, stack: Stack) -> str:
    """A database with classes and 30 people, 10 companies, one update and one delete, all projected."""
    db = await stack.new_database()
    for body in (PERSON, COMPANY, PLAIN):
        await run_ok(stack, "POST", f"/api/v1/ontology/{db}/async/create", body)
    rows = [{"instance_id": f"person{i:02d}", "name": f"Person {i:02d} {'Kim' if i % 3 == 0 else 'Lee'}",
             "age": 20 + i, "score": i / 4, "active": i % 2 == 0, "born": f"19{70 + i}-01-15"} for i in range(30)]
    await run_ok(stack, "POST", f"/api/v1/instances/{db}/async/Person/bulk-create", {"instances": rows})
    companies = [{"instance_id": f"company{i}", "name": f"Company {i} Kim", "founded": 1990 + i} for i in range(10)]
    await run_ok(stack, "POST", f"/api/v1/instances/{db}/async/Company/bulk-create", {"instances": companies})
    await run_ok(stack, "PUT", f"/api/v1/instances/{db}/async/Person/person00/update",
                 {"data": {"name": "Renamed Park"}})
    await run_ok(stack, "DELETE", f"/api/v1/instances/{db}/async/Person/person01/delete")

    async def projected() -> bool:
        code, body = await search(stack, f"/api/v1/search/{db}?limit=1")
        if code != 200 or body["total"] != 39:
            return False
        code, one = await search(stack, f"/api/v1/search/{db}?name=Renamed%20Park")
        return code == 200 and one["total"] == 1 and one["items"][0]["version"] == 2

    await until(projected, "the live projection of the test database")
    return db


async def test_live_projection_create_update_delete(stack: Stack, people: str) -> None:
    code, body = await search(stack, f"/api/v1/search/{people}?q=Renamed")
    assert code == 200 and body["total"] == 1
    item = body["items"][0]
    assert item["instance_id"] == "person00" and item["name"] == "Renamed Park" and item["version"] == 2
    assert item["data"]["age"] == 20 and item["source_command_id"] and item["event_id"]
    assert item["created_by"] == "alice" and item["updated_by"] == "alice"
    code, body = await search(stack, f"/api/v1/search/{people}?q=person01")
    assert code == 200 and body["total"] == 0  # deleted
    assert (await search(stack, f"/api/v1/search/{people}/classes?q=Gadget"))[1]["total"] == 1


async def test_search_filters_sort_paging_and_counts(stack: Stack, people: str) -> None:
    base = f"/api/v1/search/{people}"
    code, body = await search(stack, f"{base}?q=kim")
    assert code == 200 and body["counts"] == {"Person": 9, "Company": 10} and body["total"] == 19
    code, body = await search(stack, f"{base}?q=kim&class_id=Person")
    assert body["total"] == 9 and body["counts"] == {"Person": 9, "Company": 10}
    assert {i["class_id"] for i in body["items"]} == {"Person"}
    code, body = await search(stack, f"{base}?class_id=Person&age__gte=40&age__lt=45&sort=-age")
    assert code == 200 and [i["age"] for i in body["items"]] == [44, 43, 42, 41, 40]
    code, body = await search(stack, f"{base}?class_id=Person&active=true&score__gt=6.5&sort=score")
    assert [i["instance_id"] for i in body["items"]] == ["person28"]
    code, body = await search(stack, f"{base}?born__lt=1975-01-01&sort=born")
    assert [i["instance_id"] for i in body["items"]] == ["person00", "person02", "person03", "person04"]
    code, body = await search(stack, f"{base}?age=21&age=22&age=23")
    assert {i["instance_id"] for i in body["items"]} == {"person02", "person03"}  # person01 is deleted
    code, body = await search(stack, f"{base}?name=Company%203%20Kim")
    assert [i["instance_id"] for i in body["items"]] == ["company3"]
    pages = []
    for offset in (0, 7, 14, 21, 28):
        code, body = await search(stack, f"{base}?class_id=Person&sort=instance_id&limit=7&offset={offset}")
        assert code == 200 and body["total"] == 29 and body["limit"] == 7 and body["offset"] == offset
        pages += [i["instance_id"] for i in body["items"]]
    assert pages == sorted(f"person{i:02d}" for i in range(30) if i != 1)
    code, body = await search(stack, f"{base}?sort=-founded&limit=2")
    assert [i["instance_id"] for i in body["items"]] == ["company9", "company8"]


async def test_search_bad_parameters_and_access(stack: Stack, people: str) -> None:
    base = f"/api/v1/search/{people}"
    for query, status in (("nope=1", 400), ("age__near=3", 400), ("age=abc", 422), ("limit=0", 422),
                          ("offset=-1", 422), ("sort=unknown", 400), ("class_id=Nope", 400),
                          ("active=maybe", 422), ("born__gte=notadate", 422), ("limit=1000&offset=9500", 422)):
        code, body = await search(stack, f"{base}?{query}")
        assert code == status, (query, code, body)
        assert body["detail"]["message"]
    code, body = await search(stack, "/api/v1/search/no-such-db-here?q=x")
    assert code == 404 and body["detail"]["message"]
    code, body = await search(stack, f"{base}?q=x", user="mallory")
    assert code == 403
    code, body = await search(stack, f"{base}/classes", user="mallory")
    assert code == 403
    code, _ = await search(stack, f"{base}?q=x", user=None)
    assert code == 401


async def test_class_search_by_label_in_either_language(stack: Stack, people: str) -> None:
    base = f"/api/v1/search/{people}/classes"
    for q, expected in (("사람", "Person"), ("회사", "Company"), ("Person", "Person"), ("compa", "Company"),
                        ("human", "Person"), ("gadget", "Gadget")):
        code, body = await search(stack, f"{base}?q={q}")
        assert code == 200 and body["items"], (q, body)
        assert body["items"][0]["class_id"] == expected, (q, body["items"])
        assert body["items"][0]["version"] == 1
    code, body = await search(stack, f"{base}?limit=2")
    assert body["total"] == 3 and [c["class_id"] for c in body["items"]] == ["Company", "Gadget"]
    assert body["items"][0]["label"] == {"en": "Company", "ko": "회사"}


async def test_rebuild_equals_live_index(es: AsyncElasticsearch, stack: Stack, people: str,
                                         pool: Pool, settings: Settings) -> None:
    live = await snapshot(es, settings.namespace, people)
    assert len(live) == 39 + 3
    old = {kind: await indices.behind(es, indices.alias(settings.namespace, people, kind)) for kind in indices.KINDS}
    seen: list[int] = []
    result = await rebuild(es, PostgresEventStore(pool), settings.namespace, people,
                           progress=lambda done, total: seen.append(done))
    assert result.exists and seen and result.stats.failed == 0
    for kind in indices.KINDS:
        now = await indices.behind(es, indices.alias(settings.namespace, people, kind))
        assert now == [result.indices[kind]] and now != old[kind]
        for name in old[kind]:
            assert not await es.indices.exists(index=name)
    rebuilt = await snapshot(es, settings.namespace, people)
    assert rebuilt.keys() == live.keys()
    for key in live:
        assert rebuilt[key] == live[key], key
    code, body = await search(stack, f"/api/v1/search/{people}?q=kim")
    assert code == 200 and body["total"] == 19  # search answers from the swapped indices


async def test_projection_lag_page(stack: Stack, settings: Settings, people: str) -> None:
    async def settled() -> Any:
        async with stack.client.get(f"{settings.worker_url}/projection/lag", headers=stack.internal()) as resp:
            body = await resp.json()
        return body if resp.status == 200 and body["lag"] == 0 else None

    body = await until(settled, "projection lag 0")
    assert set(body["topics"]) == {settings.topic(t) for t in ("database-events", "ontology-events",
                                                                "instance-events")}
    assert body["worker"]["indexed"] > 0 and body["worker"]["dead_lettered"] == 0


async def test_live_projection_loses_nothing_when_a_database_arrives_last(
        es: AsyncElasticsearch, stack: Stack, settings: Settings, pool: Pool) -> None:
    """The worst order across a database's three event topics: every instance event first, then the class,
    then the database. Each event is in the event store first, as the relay guarantees."""
    from aiokafka import AIOKafkaProducer

    db = f"w-{uuid.uuid4().hex[:10]}"
    n = 300
    instances = [event("INSTANCE_CREATED", f"p{i}", db, 1,
                       person(f"p{i}", 1, name=f"P {i}", age=i, born=f"19{50 + i % 50}-01-0{1 + i % 9}"))
                 for i in range(n)]
    cls = event("ONTOLOGY_CLASS_CREATED", "Person", db, 1, {**PERSON, "class_id": "Person"})
    created = event("DATABASE_CREATED", db, db, 1, {"name": db})
    store = PostgresEventStore(pool)
    await store.append_many([created, cls, *instances], settings.topic("instance-events"))
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for topic, batch in (("instance-events", instances), ("ontology-events", [cls]),
                             ("database-events", [created])):
            for e in batch:
                await producer.send(settings.topic(topic), json.dumps(e.to_message()).encode(),
                                    key=f"{db}/{e.aggregate_id}".encode())
            await producer.flush()
    finally:
        await producer.stop()
    people, classes = indices.alias(settings.namespace, db, indices.INSTANCES), indices.alias(
        settings.namespace, db, indices.CLASSES)
    counts: tuple[int, int] = (0, 0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and counts != (n, 1):
        await asyncio.sleep(0.3)
        await es.indices.refresh(index=f"{people},{classes}", ignore_unavailable=True)
        counts = (await _count(es, people), await _count(es, classes))
    assert counts == (n, 1)
    # Typed by the class although its event came after them: dates are dates, ranges find them.
    found = await es.count(index=people, query={"range": {"t.born": {"lt": "1960-01-01"}}})
    assert found["count"] == sum(1 for i in range(n) if 50 + i % 50 < 60)


async def _count(es: AsyncElasticsearch, name: str) -> int:
    resp = await es.options(ignore_status=404).count(index=name)
    return int(resp.body.get("count", 0))
