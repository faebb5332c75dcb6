"""The DocumentStore contract."""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.ports import DocumentStore, Restored


def db_doc(name: str, version: int) -> dict[str, Any]:
    return {"name": name, "description": "d", "version": version, "source_command_id": "c", "event_id": "e"}


def class_doc(class_id: str, version: int, **extra: Any) -> dict[str, Any]:
    return {"id": class_id, "class_id": class_id, "version": version, "properties": [], **extra}


def instance_doc(instance_id: str, class_id: str, version: int, **data: Any) -> dict[str, Any]:
    return {"instance_id": instance_id, "class_id": class_id, "data": data, "version": version,
            "source_command_id": str(uuid.uuid4()), "event_id": str(uuid.uuid4()),
            "created_by": "alice", "created_at": "2026-01-01T00:00:00Z", "updated_by": "bob",
            "updated_at": "2026-01-02T00:00:00Z", "archive_uri": f"s3://bucket/{instance_id}/{version}"}


class DocumentStoreContract:
    @pytest.fixture
    def store(self) -> DocumentStore:
        raise NotImplementedError

    @pytest.fixture
    def name(self) -> str:
        return f"db-{uuid.uuid4().hex[:8]}"

    async def test_database_lifecycle(self, store: DocumentStore, name: str) -> None:
        assert await store.database(name) is None
        await store.put_database(db_doc(name, 1))
        assert (await store.database(name))["version"] == 1  # type: ignore[index]
        assert name in [d["name"] for d in await store.databases()]
        await store.delete_database(name, 2)
        assert await store.database(name) is None
        assert name not in [d["name"] for d in await store.databases()]

    async def test_older_write_never_overwrites_newer(self, store: DocumentStore, name: str) -> None:
        await store.put_database(db_doc(name, 1))
        await store.put_class(name, class_doc("Person", 2, label="new"))
        await store.put_class(name, class_doc("Person", 1, label="old"))
        assert (await store.get_class(name, "Person"))["label"] == "new"  # type: ignore[index]
        await store.delete_class(name, "Person", 3)
        await store.put_class(name, class_doc("Person", 2, label="resurrected?"))
        assert await store.get_class(name, "Person") is None

    async def test_classes_listed_and_dropped_with_database(self, store: DocumentStore, name: str) -> None:
        await store.put_database(db_doc(name, 1))
        for i, cid in enumerate(["B", "A"]):
            await store.put_class(name, class_doc(cid, i + 1))
        assert [c["class_id"] for c in await store.classes(name)] == ["A", "B"]
        await store.delete_database(name, 2)
        assert await store.classes(name) == []

    async def test_reapplying_the_same_version_is_a_no_op(self, store: DocumentStore, name: str) -> None:
        await store.put_database(db_doc(name, 1))
        doc = class_doc("Thing", 1, label="x")
        await store.put_class(name, doc)
        await store.put_class(name, doc)
        assert await store.get_class(name, "Thing") == doc

    async def _with_class(self, store: DocumentStore, name: str, *class_ids: str) -> None:
        await store.put_database(db_doc(name, 1))
        for cid in class_ids:
            await store.put_class(name, class_doc(cid, 1, properties=[
                {"name": "name", "type": "string", "required": False, "constraints": {}},
                {"name": "age", "type": "integer", "required": False, "constraints": {}}]))

    async def test_instance_lifecycle(self, store: DocumentStore, name: str) -> None:
        await self._with_class(store, name, "Person")
        assert await store.get_instance(name, "p1") is None
        doc = instance_doc("p1", "Person", 1, name="Ada", age=36)
        await store.put_instances(name, [doc])
        assert await store.get_instance(name, "p1") == doc
        newer = instance_doc("p1", "Person", 2, name="Ada L.", age=36)
        await store.put_instances(name, [newer])
        await store.put_instances(name, [doc])  # a redelivered older write
        assert await store.get_instance(name, "p1") == newer
        await store.delete_instance(name, "p1", 3)
        assert await store.get_instance(name, "p1") is None
        await store.put_instances(name, [newer])  # an older write never resurrects it
        assert await store.get_instance(name, "p1") is None
        assert await store.instance_classes(name, ["p1"]) == {}

    async def test_instances_paged_per_class(self, store: DocumentStore, name: str) -> None:
        await self._with_class(store, name, "Person", "Company")
        await store.put_instances(name, [instance_doc(f"p{i}", "Person", 1, name=f"n{i}") for i in range(5)]
                                  + [instance_doc("c1", "Company", 1, name="Acme")])
        total, page = await store.instances(name, "Person", 2, 1)
        assert total == 5
        assert [d["instance_id"] for d in page] == ["p1", "p2"]
        assert await store.count_instances(name, "Company") == 1
        assert await store.instance_classes(name, ["p0", "c1", "zz"]) == {"p0": "Person", "c1": "Company"}

    async def test_instances_dropped_with_database(self, store: DocumentStore, name: str) -> None:
        await self._with_class(store, name, "Person")
        await store.put_instances(name, [instance_doc("p1", "Person", 1, name="x")])
        await store.delete_database(name, 2)
        assert await store.get_instance(name, "p1") is None
        assert await store.instances(name, "Person", 10, 0) == (0, [])

    async def test_referrers_are_the_live_instances_linking_to_one(self, store: DocumentStore, name: str) -> None:
        await store.put_database(db_doc(name, 1))
        await store.put_class(name, class_doc("Company", 1, properties=[
            {"name": "name", "type": "string", "required": False, "constraints": {}}]))
        await store.put_class(name, class_doc("Person", 1, properties=[
            {"name": "employer", "type": "link", "target": "Company", "required": False, "constraints": {}}],
            relationships=[{"predicate": "clients", "target": "Company", "cardinality": "n:m"}]))
        await store.put_instances(name, [instance_doc("c1", "Company", 1, name="c2"), instance_doc("c2", "Company", 1)])
        await store.put_instances(name, [instance_doc("p1", "Person", 1, employer="c1"),
                                         instance_doc("p2", "Person", 1, clients=["c2", "c1"]),
                                         instance_doc("p3", "Person", 1)])
        slots = [("Person", "employer"), ("Person", "clients")]
        assert await store.referrers(name, "c1", slots, 10) == ["p1", "p2"]
        assert await store.referrers(name, "c2", slots, 10) == ["p2"]  # c1's name "c2" is no link
        assert await store.referrers(name, "c1", slots, 1) == ["p1"]
        await store.put_instances(name, [instance_doc("p1", "Person", 2)])  # the link taken out
        await store.delete_instance(name, "p2", 2)
        assert await store.referrers(name, "c1", slots, 10) == []
        assert await store.referrers(name, "nobody", slots, 10) == []

    async def test_held_versions_include_tombstones(self, store: DocumentStore, name: str) -> None:
        await self._with_class(store, name, "Person", "Gone")
        await store.put_instances(name, [instance_doc("p1", "Person", 3, name="x")])
        await store.delete_instance(name, "p1", 4)
        await store.put_instances(name, [instance_doc("p2", "Person", 1, name="y")])
        await store.delete_class(name, "Gone", 2)
        assert await store.held_versions(name, "instance", ["p1", "p2", "nope"]) == {"p1": 4, "p2": 1}
        assert await store.held_versions(name, "ontology_class", ["Person", "Gone", "Nope"]) == {"Person": 1,
                                                                                               "Gone": 2}
        assert await store.held_versions(name, "database", [name, "no-such-db"]) == {name: 1}
        await store.put_grant({"db_name": name, "user": "ann", "role": "reader", "version": 5})
        assert await store.held_versions(name, "grant", ["ann", "bo"]) == {"ann": 5}

    async def test_restore_puts_back_what_the_events_say_whatever_the_store_holds(self, store: DocumentStore,
                                                                                 name: str) -> None:
        """The repair's and the replay's write: unconditional, so a record claiming a higher version than
        the events goes back to the events' version, a stray one becomes its tombstone, a lost one returns."""
        await self._with_class(store, name, "Person")
        await store.put_instances(name, [instance_doc("p1", "Person", 7, name="drifted"),
                                         instance_doc("p2", "Person", 1, name="stray")])
        await store.restore(name, "instance", [
            ("p1", 2, instance_doc("p1", "Person", 2, name="right")), ("p2", 1, None),
            ("p3", 1, instance_doc("p3", "Person", 1, name="lost"))])
        p1 = await store.get_instance(name, "p1")
        assert p1 is not None and (p1["version"], p1["data"]["name"]) == (2, "right")
        assert await store.get_instance(name, "p2") is None
        assert (await store.get_instance(name, "p3") or {}).get("version") == 1
        assert await store.held_versions(name, "instance", ["p1", "p2", "p3"]) == {"p1": 2, "p2": 1, "p3": 1}
        assert [i for i, _, _ in [x async for x in store.versions(name, "instance")]] == ["p1", "p3"]
        await store.restore(name, "class", [("Person", 1, class_doc("Person", 1, label="Restored", properties=[
            {"name": "name", "type": "string", "required": False, "constraints": {}},
            {"name": "age", "type": "integer", "required": False, "constraints": {}}]))])
        assert (await store.get_class(name, "Person") or {}).get("label") == "Restored"

    async def test_versions_come_in_the_order_python_sorts_the_ids(self, store: DocumentStore, name: str) -> None:
        """Reconciliation merges them with the events' ids by comparing strings: the same order, byte for
        byte, live ones only."""
        await self._with_class(store, name, "Person")
        ids = ["b", "B", "a10", "a9", "_x", "z-1", "z.1", "\u00e9", "Z"]
        await store.put_instances(name, [instance_doc(i, "Person", 1, name=i) for i in ids])
        await store.delete_instance(name, "a9", 2)
        assert [i async for i, _, _ in store.versions(name, "instance")] == sorted(set(ids) - {"a9"})

    async def test_replace_leaves_exactly_what_it_was_given(self, store: DocumentStore, name: str) -> None:
        """The replay's rebuild: every instance of the database becomes what the items say, a drifted one
        included, a deleted one its tombstone, and one the items do not name is gone; another database's
        instances are untouched."""
        other = f"{name}-other"
        await self._with_class(store, name, "Person")
        await self._with_class(store, other, "Person")
        await store.put_instances(name, [instance_doc("p1", "Person", 7, name="drifted"),
                                         instance_doc("p2", "Person", 1, name="deleted later"),
                                         instance_doc("p9", "Person", 1, name="no event")])
        await store.put_instances(other, [instance_doc("p1", "Person", 1, name="elsewhere")])

        async def items() -> AsyncIterator[Restored]:
            for item in [("p1", 2, instance_doc("p1", "Person", 2, name="right")), ("p2", 2, None),
                         ("p3", 1, instance_doc("p3", "Person", 1, name="lost"))]:
                yield item

        await store.replace(name, "instance", items())
        assert [(i, v, d["data"]["name"]) async for i, v, d in store.versions(name, "instance")] == [
            ("p1", 2, "right"), ("p3", 1, "lost")]
        assert await store.held_versions(name, "instance", ["p2"]) == {"p2": 2}  # a tombstone at its version
        await store.put_instances(name, [instance_doc("p2", "Person", 1, name="older write")])
        assert await store.get_instance(name, "p2") is None  # an older write does not resurrect it
        assert (await store.get_instance(other, "p1") or {}).get("data", {}).get("name") == "elsewhere"

    async def test_a_database_created_again_gets_its_creators_grant(self, store: DocumentStore, name: str) -> None:
        creator = {"db_name": name, "user": "ann", "role": "admin", "version": 0}
        await store.put_grant(creator)
        await store.put_database(db_doc(name, 1))
        await store.delete_database(name, 2)
        assert await store.grant(name, "ann") is None
        await store.put_grant({**creator, "user": "bo"})  # created again, by someone else, as apply does it
        await store.put_database(db_doc(name, 3))
        assert (await store.grant(name, "bo"))["role"] == "admin"  # type: ignore[index]
        assert await store.grant(name, "ann") is None

    async def test_a_description_outside_the_basic_plane_round_trips(self, store: DocumentStore, name: str) -> None:
        # A fuzzed request's description (U+4488A) once made TerminusDB 12.0.6 answer 500 on database create.
        doc = {**db_doc(name, 1), "description": "\U0004488a 😀 사람"}
        await store.put_database(doc)
        assert (await store.database(name))["description"] == doc["description"]  # type: ignore[index]
