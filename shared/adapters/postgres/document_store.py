"""The embedded document store on PostgreSQL (the local stand-in for TerminusDB)."""
from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from typing import Any

from shared.adapters.group_commit import Coalesced
from shared.adapters.postgres.pool import OnConnection, Pool
from shared.ports import DocumentStore, Restored

_TABLES = {"class": ("docs.classes", "class_id"), "instance": ("docs.instances", "instance_id")}
# The columns of a restored class or instance from (i: id, v: version, x: deleted, d: document as JSON text).
_COLUMNS = {"class": "class_id, version, deleted, doc) SELECT $1, i, v, x, d::jsonb",
            "instance": "instance_id, class_id, version, deleted, doc) "
                        "SELECT $1, i, coalesce(d::jsonb->>'class_id', ''), v, x, d::jsonb"}
_SET = {"class": "version = EXCLUDED.version, deleted = EXCLUDED.deleted, doc = EXCLUDED.doc",
        "instance": "class_id = EXCLUDED.class_id, version = EXCLUDED.version, deleted = EXCLUDED.deleted, "
                    "doc = EXCLUDED.doc"}


def _insert(kind: str) -> str:
    return f"INSERT INTO {_TABLES[kind][0]} (db_name, {_COLUMNS[kind]}"


def _row(kind: str, item: Restored) -> tuple[str, int, bool, str]:
    """A restored aggregate as the row its kind's table holds (a deleted one as its tombstone)."""
    aggregate_id, version, doc = item
    body = doc if doc is not None else {_TABLES[kind][1]: aggregate_id, "deleted": True}
    return aggregate_id, version, doc is None, json.dumps(body)


async def _rows(kind: str, items: AsyncIterable[Restored]) -> AsyncIterator[tuple[str, int, bool, str]]:
    async for item in items:
        yield _row(kind, item)


class PostgresDocumentStore(DocumentStore):
    def __init__(self, pool: Pool | OnConnection) -> None:
        self.pool = pool
        # Coalesced reads: what every command and submission asks (its database, its class, its caller's
        # grant, a database's classes) is one query for all of those asking at once.
        self._databases: Coalesced[str, dict[str, Any]] = Coalesced(self._read_databases)
        self._classes: Coalesced[tuple[str, str], dict[str, Any]] = Coalesced(self._read_classes)
        self._grants: Coalesced[tuple[str, str], dict[str, Any]] = Coalesced(self._read_grants)
        self._class_lists: Coalesced[str, list[dict[str, Any]]] = Coalesced(self._read_class_lists)

    async def put_database(self, doc: dict[str, Any]) -> None:
        # Conditional on the version: a redelivered older write leaves a newer row alone.
        await self.pool.execute(
            """INSERT INTO docs.databases (name, version, deleted, doc) VALUES ($1, $2, false, $3)
               ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, deleted = false, doc = EXCLUDED.doc
               WHERE docs.databases.version < EXCLUDED.version""",
            doc["name"], doc["version"], doc,
        )

    async def delete_database(self, name: str, version: int) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            updated = await conn.execute(
                """UPDATE docs.databases SET deleted = true, version = $2,
                          doc = doc || jsonb_build_object('deleted', true, 'version', $2::int)
                   WHERE name = $1 AND version < $2""",
                name, version,
            )
            if updated != "UPDATE 0":
                await conn.execute("DELETE FROM docs.classes WHERE db_name = $1", name)
                await conn.execute("DELETE FROM docs.grants WHERE db_name = $1", name)
                await conn.execute("DELETE FROM docs.instances WHERE db_name = $1", name)

    async def database(self, name: str) -> dict[str, Any] | None:
        return await self._databases.get(name)

    async def _read_databases(self, names: list[str]) -> dict[str, dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT name, doc FROM docs.databases WHERE name = ANY($1::text[]) AND NOT deleted", names)
        return {r["name"]: r["doc"] for r in rows}

    async def databases(self) -> list[dict[str, Any]]:
        rows = await self.pool.fetch("SELECT doc FROM docs.databases WHERE NOT deleted ORDER BY name")
        return [r["doc"] for r in rows]

    async def put_class(self, db_name: str, doc: dict[str, Any]) -> None:
        await self.pool.execute(
            """INSERT INTO docs.classes (db_name, class_id, version, deleted, doc) VALUES ($1, $2, $3, false, $4)
               ON CONFLICT (db_name, class_id) DO UPDATE
                 SET version = EXCLUDED.version, deleted = false, doc = EXCLUDED.doc
               WHERE docs.classes.version < EXCLUDED.version""",
            db_name, doc["class_id"], doc["version"], doc,
        )

    async def delete_class(self, db_name: str, class_id: str, version: int) -> None:
        # A tombstone, not a row delete: it keeps the version so an older write cannot resurrect it.
        await self.pool.execute(
            """INSERT INTO docs.classes (db_name, class_id, version, deleted, doc)
               VALUES ($1, $2, $3, true, jsonb_build_object('class_id', $2::text, 'deleted', true))
               ON CONFLICT (db_name, class_id) DO UPDATE SET version = EXCLUDED.version, deleted = true
               WHERE docs.classes.version < EXCLUDED.version""",
            db_name, class_id, version,
        )

    async def get_class(self, db_name: str, class_id: str) -> dict[str, Any] | None:
        return await self._classes.get((db_name, class_id))

    async def _read_classes(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        rows = await self.pool.fetch(
            """SELECT c.db_name, c.class_id, c.doc FROM docs.classes c
               JOIN unnest($1::text[], $2::text[]) AS k(d, i) ON c.db_name = k.d AND c.class_id = k.i
               WHERE NOT c.deleted""", [k[0] for k in keys], [k[1] for k in keys])
        return {(r["db_name"], r["class_id"]): r["doc"] for r in rows}

    async def classes(self, db_name: str) -> list[dict[str, Any]]:
        return await self._class_lists.get(db_name) or []

    async def _read_class_lists(self, names: list[str]) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for row in await self.pool.fetch(
                """SELECT db_name, doc FROM docs.classes WHERE db_name = ANY($1::text[]) AND NOT deleted
                   ORDER BY db_name, class_id""", names):
            found.setdefault(row["db_name"], []).append(row["doc"])
        return found

    async def put_grant(self, doc: dict[str, Any]) -> None:
        await self.pool.execute(
            """INSERT INTO docs.grants (db_name, user_id, role, version, doc) VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (db_name, user_id) DO UPDATE
                 SET role = EXCLUDED.role, version = EXCLUDED.version, doc = EXCLUDED.doc
               WHERE docs.grants.version < EXCLUDED.version""",
            doc["db_name"], doc["user"], doc["role"], doc["version"], doc,
        )

    async def grant(self, db_name: str, user: str) -> dict[str, Any] | None:
        return await self._grants.get((db_name, user))

    async def _read_grants(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        rows = await self.pool.fetch(
            """SELECT g.db_name, g.user_id, g.doc FROM docs.grants g
               JOIN unnest($1::text[], $2::text[]) AS k(d, u) ON g.db_name = k.d AND g.user_id = k.u""",
            [k[0] for k in keys], [k[1] for k in keys])
        return {(r["db_name"], r["user_id"]): r["doc"] for r in rows}

    async def grants(self, db_name: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT doc FROM docs.grants WHERE db_name = $1 AND role IS NOT NULL ORDER BY user_id", db_name
        )
        return [r["doc"] for r in rows]

    async def put_instances(self, db_name: str, docs: list[dict[str, Any]]) -> None:
        # One statement per batch; each row is conditional on the version like every other write.
        await self.pool.executemany(
            """INSERT INTO docs.instances (db_name, instance_id, class_id, version, deleted, doc)
               VALUES ($1, $2, $3, $4, false, $5)
               ON CONFLICT (db_name, instance_id) DO UPDATE
                 SET class_id = EXCLUDED.class_id, version = EXCLUDED.version, deleted = false, doc = EXCLUDED.doc
               WHERE docs.instances.version < EXCLUDED.version""",
            [(db_name, d["instance_id"], d["class_id"], d["version"], d) for d in docs],
        )

    async def delete_instance(self, db_name: str, instance_id: str, version: int) -> None:
        await self.pool.execute(
            """INSERT INTO docs.instances (db_name, instance_id, class_id, version, deleted, doc)
               VALUES ($1, $2, '', $3, true, jsonb_build_object('instance_id', $2::text, 'deleted', true))
               ON CONFLICT (db_name, instance_id) DO UPDATE SET version = EXCLUDED.version, deleted = true
               WHERE docs.instances.version < EXCLUDED.version""",
            db_name, instance_id, version,
        )

    async def get_instance(self, db_name: str, instance_id: str) -> dict[str, Any] | None:
        doc = await self.pool.fetchval(
            "SELECT doc FROM docs.instances WHERE db_name = $1 AND instance_id = $2 AND NOT deleted",
            db_name, instance_id,
        )
        return doc  # type: ignore[no-any-return]

    async def restore(self, db_name: str, kind: str, items: list[Restored]) -> None:
        # Unconditional on purpose (a drifted row may claim a higher version than the events); a deleted
        # aggregate becomes the tombstone its delete left. One statement per batch, its rows as arrays
        # (a batch names each aggregate once: ON CONFLICT may touch a row only once per statement).
        if not items:
            return
        ids, versions, deleted, docs = zip(*(_row(kind, item) for item in items), strict=True)
        await self.pool.execute(
            f"""{_insert(kind)} FROM unnest($2::text[], $3::int[], $4::bool[], $5::text[]) AS u(i, v, x, d)
                ON CONFLICT (db_name, {_TABLES[kind][1]}) DO UPDATE SET {_SET[kind]}""",
            db_name, list(ids), list(versions), list(deleted), list(docs))

    async def replace(self, db_name: str, kind: str, items: AsyncIterable[Restored]) -> None:
        # The new set is built beside the old one (a temporary table, written by COPY), then swapped in by one
        # transaction: reads see the old rows until it commits, then the new ones.
        table = _TABLES[kind][0]
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("CREATE TEMPORARY TABLE replaced (i text, v int, x bool, d text) ON COMMIT DROP")
            await conn.copy_records_to_table("replaced", records=_rows(kind, items))
            # Writers of the table wait from here to the commit (reads do not): a write committed before the
            # lock was granted is in the rows removed below, so the caller applies what was committed after
            # its mark (EventStore.since) once this returns; one that comes after the commit is conditional
            # on the version like every write, so an older one leaves the new rows alone.
            await conn.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
            await conn.execute(f"DELETE FROM {table} WHERE db_name = $1", db_name)
            await conn.execute(f"{_insert(kind)} FROM replaced", db_name)

    async def versions(self, db_name: str, kind: str) -> AsyncGenerator[tuple[str, int, dict[str, Any]], None]:
        table, key = _TABLES[kind]
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            async for row in conn.cursor(
                    f"SELECT {key} AS id, version, doc FROM {table} WHERE db_name = $1 AND NOT deleted ORDER BY {key}",
                    db_name, prefetch=1000):
                yield row["id"], row["version"], row["doc"]

    async def instances(self, db_name: str, class_id: str, limit: int, offset: int
                        ) -> tuple[int, list[dict[str, Any]]]:
        async with self.pool.acquire() as conn:
            total = await conn.fetchval(
                "SELECT count(*) FROM docs.instances WHERE db_name = $1 AND class_id = $2 AND NOT deleted",
                db_name, class_id)
            rows = await conn.fetch(
                """SELECT doc FROM docs.instances WHERE db_name = $1 AND class_id = $2 AND NOT deleted
                   ORDER BY instance_id LIMIT $3 OFFSET $4""", db_name, class_id, limit, offset)
        return int(total), [r["doc"] for r in rows]

    async def instance_classes(self, db_name: str, instance_ids: list[str]) -> dict[str, str]:
        rows = await self.pool.fetch(
            """SELECT instance_id, class_id FROM docs.instances
               WHERE db_name = $1 AND instance_id = ANY($2::text[]) AND NOT deleted""",
            db_name, instance_ids)
        return {r["instance_id"]: r["class_id"] for r in rows}

    async def count_instances(self, db_name: str, class_id: str) -> int:
        count = await self.pool.fetchval(
            "SELECT count(*) FROM docs.instances WHERE db_name = $1 AND class_id = $2 AND NOT deleted",
            db_name, class_id)
        return int(count)

    async def referrers(self, db_name: str, instance_id: str, slots: list[tuple[str, str]], limit: int) -> list[str]:
        if not slots:
            return []
        # A link is stored as the id (a link property, a single relationship) or a list of ids.
        rows = await self.pool.fetch(
            """SELECT DISTINCT i.instance_id FROM docs.instances i
               JOIN unnest($2::text[], $3::text[]) AS s(class_id, name) ON i.class_id = s.class_id
               WHERE i.db_name = $1 AND NOT i.deleted AND i.instance_id <> $4
                 AND (i.doc->'data'->s.name = to_jsonb($4::text)
                      OR i.doc->'data'->s.name @> jsonb_build_array($4::text))
               ORDER BY i.instance_id LIMIT $5""",
            db_name, [c for c, _ in slots], [n for _, n in slots], instance_id, limit)
        return [r["instance_id"] for r in rows]

    async def held_versions(self, db_name: str, aggregate_type: str, ids: list[str]) -> dict[str, int]:
        if aggregate_type == "database":
            rows = await self.pool.fetch("SELECT name AS id, version FROM docs.databases WHERE name = ANY($1::text[])",
                                         ids)
        else:
            table, key = {"grant": ("docs.grants", "user_id"), "ontology_class": ("docs.classes", "class_id"),
                          "instance": ("docs.instances", "instance_id")}[aggregate_type]
            rows = await self.pool.fetch(
                f"SELECT {key} AS id, version FROM {table} WHERE db_name = $1 AND {key} = ANY($2::text[])",
                db_name, ids)
        return {r["id"]: r["version"] for r in rows}
