"""The document store on TerminusDB: one TerminusDB database per spice database, plus a catalog database."""
from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shared.adapters.terminusdb import woql
from shared.adapters.terminusdb.client import SCHEMA, TerminusClient, TerminusError
from shared.adapters.terminusdb.schema import (
    CATALOG_SCHEMA,
    CLASS_RECORD,
    DATABASE_RECORD,
    DATABASE_SCHEMA,
    GRANT_RECORD,
    INSTANCE_RECORD,
    RESERVED_CLASSES,
    instance_ref,
    key,
)
from shared.adapters.terminusdb.writer import (
    CONFLICTS,
    OPTIMIZE_EVERY,
    SYSTEM_AUTHOR,
    Change,
    DatabaseWriter,
    records_held,
)
from shared.ports import DocumentStore, Restored


@dataclass(frozen=True)
class Record:
    """A spice record as stored: the full spice document (JSON), its version, and whether it is a tombstone."""

    version: int
    deleted: bool
    doc: dict[str, Any]


def _record(raw: dict[str, Any] | None) -> Record | None:
    if raw is None:
        return None
    # Numbers come back as JSON numbers (v10, v11.2+, v12) or strings (v11.0/11.1): int() takes both.
    return Record(int(raw["version"]), raw.get("deleted") in (True, "true"), json.loads(raw["doc"]))


def _commit(doc: dict[str, Any]) -> tuple[str, str]:
    """TerminusDB commit author and message: the acting user and the command, so its log carries provenance."""
    return str(doc.get("updated_by") or SYSTEM_AUTHOR), str(doc.get("source_command_id") or SYSTEM_AUTHOR)


def _deletion(actor: str | None, command_id: str | None, what: str, version: int) -> tuple[str, str]:
    return actor or SYSTEM_AUTHOR, command_id or f"delete {what} (version {version})"


Snapshot = dict[str, Record | None]
Write = Callable[[Snapshot, str | None], Awaitable[None]]


# Above this many ids a catalog snapshot lists the record type once instead of one GET per id.
LIST_THRESHOLD = 50
VERSIONS_PAGE = 1000  # records per page of `versions`


class TerminusDocumentStore(DocumentStore):
    """DocumentStore on TerminusDB's HTTP document API.

    Layout: the spice database `name` is the TerminusDB database `{db_prefix}{name}` holding the
    classes as schema documents and the instances as typed documents, next to SpiceClassRecord /
    SpiceInstanceRecord documents that keep spice's full documents (version, provenance,
    tombstones). The catalog database (default "SpiceCatalog": upper case, so no spice database name
    can take it) holds one SpiceDatabase document per spice database and the SpiceGrant documents.
    """

    def __init__(self, url: str, *, org: str = "admin", catalog: str = "SpiceCatalog", db_prefix: str = "",
                 user: str | None = None, password: str | None = None, max_attempts: int = 30) -> None:
        self.client = TerminusClient(url, org=org, user=user, password=password)
        self.catalog = catalog
        self.db_prefix = db_prefix
        self.max_attempts = max_attempts
        self._catalog_ready = False
        self._ready: set[str] = set()  # spice databases known to exist with their internal schema
        self._lock = asyncio.Lock()
        self._writers: dict[str, DatabaseWriter] = {}  # TerminusDB database -> its one writer here
        # Catalog writes one at a time here: concurrent ones would only refuse one another's data version.
        self._catalog_writes = asyncio.Lock()
        self._catalog_commits = 0

    async def close(self) -> None:
        for writer in self._writers.values():
            writer.stop()
        await self.client.close()

    def terminus_db(self, name: str) -> str:
        return f"{self.db_prefix}{name}"

    # -- plumbing ---------------------------------------------------------------------------------

    async def _install(self, tdb: str, label: str, comment: str, schema: list[dict[str, Any]],
                       author: str, message: str) -> None:
        """Create the TerminusDB database if needed and install spice's internal classes if missing."""
        await self.client.create_db(tdb, label, comment)
        present = [await self.client.get_document(tdb, cls["@id"], SCHEMA) for cls in schema]
        if any(p is None for p in present):
            await self.client.replace(tdb, schema, author=author, message=message, graph_type=SCHEMA, create=True)

    async def _ensure_catalog(self) -> None:
        if self._catalog_ready:
            return
        async with self._lock:
            if not self._catalog_ready:
                await self._install(self.catalog, "Spice Harvester catalog", "spice databases and grants",
                                    CATALOG_SCHEMA, SYSTEM_AUTHOR, "install the spice catalog schema")
                self._catalog_ready = True

    async def _database_ready(self, name: str, create: bool, author: str, message: str) -> bool:
        """Whether a write into the spice database should go ahead. False when the catalog holds its
        tombstone (an older write for a dropped database changes nothing), or when it does not exist
        and `create` is False; otherwise its TerminusDB database exists with the internal schema."""
        if name in self._ready:
            return True
        await self._ensure_catalog()
        record = _record(await self.client.get_document(self.catalog, f"{DATABASE_RECORD}/{key(name)}"))
        if record is not None and record.deleted:
            return False
        if not create and not await self.client.db_exists(self.terminus_db(name)):
            return False
        await self._install(self.terminus_db(name), name, "", DATABASE_SCHEMA, author, message)
        self._ready.add(name)
        return True

    async def _read(self, tdb: str, doc_id: str) -> Record | None:
        return _record(await self.client.get_document(tdb, doc_id))

    async def _records(self, tdb: str, record_type: str, ids: dict[str, str], field: str) -> Snapshot:
        """logical key -> record for `ids` (logical key -> document id); None where there is none."""
        if len(ids) > LIST_THRESHOLD:
            listed = {str(r[field]): r for r in await self.client.documents(tdb, record_type)}
            return {k: _record(listed.get(k)) for k in ids}
        limit = asyncio.Semaphore(16)

        async def one(doc_id: str) -> Record | None:
            async with limit:
                return await self._read(tdb, doc_id)

        found = await asyncio.gather(*(one(doc_id) for doc_id in ids.values()))
        return dict(zip(ids, found, strict=True))

    async def _conditional(self, tdb: str, record_type: str, ids: dict[str, str], field: str, write: Write) -> None:
        """Version-conditional write as a compare-and-swap on TerminusDB's data version.

        Read-compare-write alone would race: two writers (a redelivery and the next command, or a
        reconciliation run) could both read version 1, and the one writing version 2 could land after
        the one writing version 3. So the data version (the branch head commit) is read with HEAD
        *before* the records, and every write sends it in `TerminusDB-Data-Version`: if any commit
        landed on the branch since the HEAD, TerminusDB refuses with api:DataVersionMismatch and the
        whole read-compare-write runs again on a fresh snapshot. A commit between the HEAD and the
        record reads also fails the write, so a write only lands on exactly the state it compared.
        (A server that sends no data version leaves the write unconditional, the plain race above.)"""
        for attempt in range(self.max_attempts):
            async with self._catalog_writes:
                version = await self.client.data_version(tdb)
                current = await self._records(tdb, record_type, ids, field)
                try:
                    await write(current, version)
                except CONFLICTS:
                    pass
                else:
                    await self._catalog_written()
                    return
            await asyncio.sleep(random.uniform(0, min(0.01 * 2 ** attempt, 0.5)))
        raise TimeoutError(f"TerminusDB {tdb}: gave up after {self.max_attempts} data-version conflicts")

    async def _catalog_written(self) -> None:
        """Roll the catalog's layers up every OPTIMIZE_EVERY writes (each adds one; 700 of them made a
        catalog read 34 ms instead of 22)."""
        self._catalog_commits += 1
        if self._catalog_commits >= OPTIMIZE_EVERY:
            self._catalog_commits = 0
            await self.client.optimize(self.catalog)

    @staticmethod
    def _newer(current: Record | None, version: int) -> bool:
        return current is None or current.version < version

    # -- databases --------------------------------------------------------------------------------

    async def put_database(self, doc: dict[str, Any]) -> None:
        await self._ensure_catalog()
        name, version = doc["name"], doc["version"]
        author, message = _commit(doc)
        record_id = f"{DATABASE_RECORD}/{key(name)}"

        async def write(current: Snapshot, data_version: str | None) -> None:
            if not self._newer(current[name], version):  # never overwrite a newer version
                return
            # No description as TerminusDB's comment: spice's record keeps it, and 12.0.6 answered 500 (a Rust
            # panic on UTF-8) for a description with the pair \ud8d2\udc8a that a fuzzed request sent.
            await self._install(self.terminus_db(name), name, "", DATABASE_SCHEMA,
                                author, message)
            self._ready.add(name)
            await self.client.replace(self.catalog, [{
                "@type": DATABASE_RECORD, "@id": record_id, "name": name, "version": version, "deleted": False,
                "doc": json.dumps(doc)}], author=author, message=message, data_version=data_version)

        await self._conditional(self.catalog, DATABASE_RECORD, {name: record_id}, "name", write)

    async def delete_database(self, name: str, version: int, *, actor: str | None = None,
                              command_id: str | None = None) -> None:
        await self._ensure_catalog()
        author, message = _deletion(actor, command_id, f"database {name}", version)
        record_id = f"{DATABASE_RECORD}/{key(name)}"

        async def write(current: Snapshot, data_version: str | None) -> None:
            record = current[name]
            if not self._newer(record, version):
                return
            self._ready.discard(name)
            self._writers.pop(self.terminus_db(name), None)  # what it knew was of the dropped database
            # Drop first, tombstone last: a crash in between is repaired by the retry (dropping twice is fine).
            await self.client.delete_db(self.terminus_db(name))
            grants = await self.client.query(self.catalog, {"@type": GRANT_RECORD, "db_name": name})
            if grants:
                reply = await self.client.delete(self.catalog, [g["@id"] for g in grants], author=author,
                                                 message=message, data_version=data_version)
                data_version = reply.data_version
            tombstone = {**(record.doc if record else {"name": name}), "deleted": True, "version": version}
            await self.client.replace(self.catalog, [{
                "@type": DATABASE_RECORD, "@id": record_id, "name": name, "version": version, "deleted": True,
                "doc": json.dumps(tombstone)}], author=author, message=message, data_version=data_version)

        await self._conditional(self.catalog, DATABASE_RECORD, {name: record_id}, "name", write)

    async def database(self, name: str) -> dict[str, Any] | None:
        record = await self._read(self.catalog, f"{DATABASE_RECORD}/{key(name)}")
        return record.doc if record and not record.deleted else None

    async def databases(self) -> list[dict[str, Any]]:
        records = [_record(r) for r in await self.client.documents(self.catalog, DATABASE_RECORD)]
        return sorted((r.doc for r in records if r and not r.deleted), key=lambda d: str(d["name"]))

    # -- classes ----------------------------------------------------------------------------------

    def _writer(self, db_name: str) -> DatabaseWriter:
        tdb = self.terminus_db(db_name)
        if tdb not in self._writers:
            self._writers[tdb] = DatabaseWriter(self.client, tdb, self.max_attempts)
        return self._writers[tdb]

    async def _change(self, db_name: str, changes: list[Change], create: bool) -> None:
        """Hand the changes to the database's writer, once the database is there (create: made if missing)."""
        if not await self._database_ready(db_name, create, changes[0].author, changes[0].message):
            return
        try:
            await self._writer(db_name).write(changes)
        except TerminusError:
            self._ready.discard(db_name)
            raise

    async def flush(self, db_name: str) -> None:
        """Write the schema documents of the classes created since the last schema commit now (the writer
        does by itself before any other write, or once idle)."""
        if await self._database_ready(db_name, False, SYSTEM_AUTHOR, SYSTEM_AUTHOR):
            await self._writer(db_name).write([])

    async def put_class(self, db_name: str, doc: dict[str, Any]) -> None:
        class_id, version = doc["class_id"], doc["version"]
        if class_id in RESERVED_CLASSES:
            raise ValueError(f"class id {class_id!r} is reserved by the TerminusDB document store")
        await self._change(db_name, [Change(CLASS_RECORD, class_id, version, doc, *_commit(doc))], create=True)

    async def delete_class(self, db_name: str, class_id: str, version: int, *, actor: str | None = None,
                           command_id: str | None = None) -> None:
        author, message = _deletion(actor, command_id, f"class {class_id}", version)
        await self._change(db_name, [Change(CLASS_RECORD, class_id, version, None, author, message)], create=False)

    async def get_class(self, db_name: str, class_id: str) -> dict[str, Any] | None:
        record = await self._read(self.terminus_db(db_name), f"{CLASS_RECORD}/{key(class_id)}")
        return record.doc if record and not record.deleted else None

    async def classes(self, db_name: str) -> list[dict[str, Any]]:
        records = [_record(r) for r in await self.client.documents(self.terminus_db(db_name), CLASS_RECORD)]
        return sorted((r.doc for r in records if r and not r.deleted), key=lambda d: str(d["class_id"]))

    # -- grants (catalog) -------------------------------------------------------------------------

    async def put_grant(self, doc: dict[str, Any]) -> None:
        await self._ensure_catalog()
        db_name, user, version = doc["db_name"], doc["user"], doc["version"]
        author, message = _commit(doc)
        grant_id, db_id = f"{GRANT_RECORD}/{key(db_name)}+{key(user)}", f"{DATABASE_RECORD}/{key(db_name)}"

        async def write(current: Snapshot, data_version: str | None) -> None:
            database = current["database"]
            # The database was dropped with its grants: a later grant write is of the old database, except
            # the creator's (version 0), which is written just before the database itself is, when a
            # database is created again under its name. (A redelivered create of the old database is not
            # applied again: the pipeline re-applies only an aggregate's newest event.)
            if database is not None and database.deleted and version > 0:
                return
            if not self._newer(current["grant"], version):
                return
            record: dict[str, Any] = {"@type": GRANT_RECORD, "@id": grant_id, "db_name": db_name, "user": user,
                                      "version": version, "deleted": False, "doc": json.dumps(doc)}
            if doc.get("role") is not None:
                record["role"] = doc["role"]
            await self.client.replace(self.catalog, [record], author=author, message=message,
                                      data_version=data_version)

        # Both records come from one snapshot: a database deleted meanwhile fails the write, which re-reads.
        await self._conditional(self.catalog, GRANT_RECORD, {"grant": grant_id, "database": db_id}, "@id", write)

    async def grant(self, db_name: str, user: str) -> dict[str, Any] | None:
        record = await self._read(self.catalog, f"{GRANT_RECORD}/{key(db_name)}+{key(user)}")
        return record.doc if record else None

    async def grants(self, db_name: str) -> list[dict[str, Any]]:
        found = await self.client.query(self.catalog, {"@type": GRANT_RECORD, "db_name": db_name})
        records = [_record(r) for r in found]
        return sorted((r.doc for r in records if r and r.doc.get("role") is not None), key=lambda d: str(d["user"]))

    # -- instances --------------------------------------------------------------------------------

    async def put_instances(self, db_name: str, docs: list[dict[str, Any]]) -> None:
        if docs:
            await self._change(db_name, [Change(INSTANCE_RECORD, doc["instance_id"], doc["version"], doc, *_commit(doc))
                                         for doc in docs], create=True)

    async def delete_instance(self, db_name: str, instance_id: str, version: int, *, actor: str | None = None,
                              command_id: str | None = None) -> None:
        author, message = _deletion(actor, command_id, f"instance {instance_id}", version)
        await self._change(db_name, [Change(INSTANCE_RECORD, instance_id, version, None, author, message)],
                           create=False)

    async def restore(self, db_name: str, kind: str, items: list[Restored]) -> None:
        # Through the database's writer like every write, but unconditional (`force`): a drifted record may
        # claim a higher version than the events. A deleted aggregate becomes a tombstone at its version.
        record_type = CLASS_RECORD if kind == "class" else INSTANCE_RECORD
        changes = [Change(record_type, aggregate_id, version, doc,
                          *(_commit(doc) if doc is not None else
                            _deletion(None, None, f"{kind} {aggregate_id}", version)), force=True)
                   for aggregate_id, version, doc in items]
        if changes:
            await self._change(db_name, changes, create=False)

    async def get_instance(self, db_name: str, instance_id: str) -> dict[str, Any] | None:
        record = await self._read(self.terminus_db(db_name), f"{INSTANCE_RECORD}/{key(instance_id)}")
        return record.doc if record and not record.deleted else None

    async def instances(self, db_name: str, class_id: str, limit: int, offset: int
                        ) -> tuple[int, list[dict[str, Any]]]:
        tdb = self.terminus_db(db_name)
        if not await self.client.db_exists(tdb):
            return 0, []
        total = await self.count_instances(db_name, class_id)
        rows = await self.client.woql(tdb, woql.page_live(class_id, limit, offset)) if total > offset else []
        return total, [json.loads(woql.value(row["Doc"])) for row in rows]

    async def instance_classes(self, db_name: str, instance_ids: list[str]) -> dict[str, str]:
        if not instance_ids:
            return {}
        held = await records_held(self.client, self.terminus_db(db_name), INSTANCE_RECORD, instance_ids)
        return {i: h.class_id for i, h in held.items() if not h.deleted}

    async def count_instances(self, db_name: str, class_id: str) -> int:
        try:
            rows = await self.client.woql(self.terminus_db(db_name), woql.count_live(class_id))
        except TerminusError as exc:
            if exc.status == 404:
                return 0
            raise
        return int(woql.value(rows[0]["Count"])) if rows else 0

    async def versions(self, db_name: str, kind: str) -> AsyncGenerator[tuple[str, int, dict[str, Any]], None]:
        # Page after page by key (never the whole database at once), each as costly as the first.
        record_type, key_field = (CLASS_RECORD, "class_id") if kind == "class" else (INSTANCE_RECORD, "instance_id")
        tdb = self.terminus_db(db_name)
        if not await self.client.db_exists(tdb):
            return
        after: str | None = None
        while True:
            rows = await self.client.woql(tdb, woql.live_page(record_type, key_field, after, VERSIONS_PAGE))
            for row in rows:
                yield str(woql.value(row["Id"])), int(woql.value(row["Version"])), json.loads(woql.value(row["Doc"]))
            if len(rows) < VERSIONS_PAGE:
                return
            after = str(woql.value(rows[-1]["Id"]))

    async def held_versions(self, db_name: str, aggregate_type: str, ids: list[str]) -> dict[str, int]:
        if aggregate_type == "database":
            await self._ensure_catalog()
            found = await self._records(self.catalog, DATABASE_RECORD, {i: f"{DATABASE_RECORD}/{key(i)}" for i in ids},
                                        "name")
        elif aggregate_type == "grant":
            await self._ensure_catalog()
            grants = [await self._read(self.catalog, f"{GRANT_RECORD}/{key(db_name)}+{key(i)}") for i in ids]
            found = dict(zip(ids, grants, strict=True))
        else:
            record_type = CLASS_RECORD if aggregate_type == "ontology_class" else INSTANCE_RECORD
            held = await records_held(self.client, self.terminus_db(db_name), record_type, ids)
            return {i: h.version for i, h in held.items()}
        return {i: r.version for i, r in found.items() if r is not None}

    async def referrers(self, db_name: str, instance_id: str, slots: list[tuple[str, str]], limit: int) -> list[str]:
        # TerminusDB knows every link to a document (it refuses to delete a linked one): ask it, whatever
        # the slots say.
        record = await self._read(self.terminus_db(db_name), f"{INSTANCE_RECORD}/{key(instance_id)}")
        if record is None or record.deleted:
            return []
        target = instance_ref(str(record.doc["class_id"]), instance_id)
        rows = await self.client.woql(self.terminus_db(db_name), woql.linking_to(target, limit + 1))
        found = {woql.instance_of_node(str(woql.value(row["Subject"]))) for row in rows} - {instance_id}
        return sorted(found)[:limit]
