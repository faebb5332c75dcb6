"""The DocumentStore contract."""
from __future__ import annotations

import uuid
from typing import Any

import pytest

from shared.ports import DocumentStore


def db_doc(name: str, version: int) -> dict[str, Any]:
    return {"name": name, "description": "d", "version": version, "source_command_id": "c", "event_id": "e"}


def class_doc(class_id: str, version: int, **extra: Any) -> dict[str, Any]:
    return {"id": class_id, "class_id": class_id, "version": version, "properties": [], **extra}


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
