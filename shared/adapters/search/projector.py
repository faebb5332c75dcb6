"""The projector: applies a batch of events to the search indices with one bulk request per segment.

Order-safe and idempotent through external versioning: every index and delete carries the aggregate's
version with `version_type=external`, so Elasticsearch refuses (409) an event older than, or as old as,
what the index holds. A redelivered or late event is counted as stale and changes nothing.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from elastic_transport import JsonSerializer
from elasticsearch import AsyncElasticsearch

from shared.adapters.search import indices
from shared.adapters.search.documents import class_document, instance_document, property_types
from shared.domain.commands import AggregateType
from shared.domain.events import Event, EventType
from shared.ports import EventStore

CLASS_EVENTS = {EventType.ONTOLOGY_CLASS_CREATED, EventType.ONTOLOGY_CLASS_UPDATED,
                EventType.ONTOLOGY_CLASS_DELETED}
INSTANCE_EVENTS = {EventType.INSTANCE_CREATED, EventType.INSTANCE_UPDATED, EventType.INSTANCE_DELETED}
DELETES = {EventType.ONTOLOGY_CLASS_DELETED, EventType.INSTANCE_DELETED}
MAX_PARENT_DEPTH = 32
BULK_ACTIONS, BULK_BYTES = 1000, 20 * 1024 * 1024  # at most per bulk request (the last document may pass it)
# The client's own JSON encoding (its handling of dates, ids and lone surrogates), for a body built here.
_SERIALIZER = JsonSerializer()


@dataclass
class Stats:
    indexed: int = 0
    deleted: int = 0
    stale: int = 0  # refused with 409: the index already holds this version or a newer one
    superseded: int = 0  # a newer version of the same document came later in the same batch
    skipped: int = 0  # nothing to project: failed commands, grants, events of a deleted database
    failed: int = 0
    dead_lettered: int = 0

    def add(self, other: Stats) -> Stats:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)
        return self

    @property
    def applied(self) -> int:
        return self.indexed + self.deleted


@dataclass
class ProjectionError(Exception):
    """Some documents failed (other than 409): the events to retry, each with its error."""

    failures: list[tuple[Event, str]]
    stats: Stats = field(default_factory=Stats)

    def __str__(self) -> str:
        return f"{len(self.failures)} event(s) failed, first: {self.failures[0][1] if self.failures else ''}"


def kind_of(event: Event) -> str:
    return indices.CLASSES if event.event_type in CLASS_EVENTS else indices.INSTANCES


class Projector:
    """Writes through the aliases `{namespace}-{db}-instances` and `{namespace}-{db}-classes`.

    A database's events travel on three topics (database, ontology and instance events), so its instance
    events may come before its DATABASE_CREATED or its class's event. With `events` (the event store, where
    every event is before it is published), what a batch lacks is read there: whether the database is gone,
    and the class whose property types map an instance. Without it (the raw benchmark, tests that give every
    event in order) a database without indices gets them, and an unknown class maps by JSON types."""

    def __init__(self, es: AsyncElasticsearch, namespace: str, *, events: EventStore | None = None,
                 refresh: bool = False) -> None:
        self.es, self.namespace, self.events, self.refresh = es, namespace, events, refresh
        self.known: set[str] = set()  # databases whose aliases exist
        self.classes: dict[tuple[str, str], dict[str, Any] | None] = {}  # None: deleted

    # -- where documents go (the rebuild overrides these) --
    def target(self, db: str, kind: str) -> str:
        return indices.alias(self.namespace, db, kind)

    async def open_database(self, db: str, created: bool) -> bool:
        """Make sure the database's indices exist; False when the database is gone (skip its events)."""
        if db in self.known:
            return True
        if not created and not await indices.has_database(self.es, self.namespace, db) and await self._gone(db):
            return False
        # Created here when the database's own event has not come yet (another topic): never dropped.
        await indices.ensure_database(self.es, self.namespace, db)
        self.known.add(db)
        return True

    async def _gone(self, db: str) -> bool:
        """The database's last event is its deletion: its late events are skipped, not indexed again."""
        if self.events is None:
            return False
        history = await self.events.history(db, AggregateType.DATABASE, db)
        return bool(history) and history[-1].event_type is EventType.DATABASE_DELETED

    async def _class(self, db: str, class_id: str) -> dict[str, Any] | None:
        """The class as its last event left it (None when deleted or unknown); only a found class is kept,
        so an instance whose class event is still on its way is typed by it once it is in the event store."""
        key = (db, class_id)
        if key in self.classes or self.events is None:
            return self.classes.get(key)
        history = await self.events.history(db, AggregateType.ONTOLOGY_CLASS, class_id)
        if history:
            last = history[-1]
            self.classes[key] = None if last.event_type in DELETES else last.data
        return self.classes.get(key)

    async def close_database(self, db: str) -> None:
        await indices.drop_database(self.es, self.namespace, db)
        self.known.discard(db)
        self.classes = {k: v for k, v in self.classes.items() if k[0] != db}

    # -- applying events --
    async def apply(self, events: Sequence[Event]) -> Stats:
        """Project events in order. Database events split the batch: what came before is written first."""
        stats = Stats()
        segment: list[Event] = []
        for event in events:
            if event.version is None or event.failed:
                stats.skipped += 1
            elif event.event_type in (EventType.DATABASE_CREATED, EventType.DATABASE_DELETED):
                await self._flush(segment, stats)
                segment = []
                if event.event_type is EventType.DATABASE_CREATED:
                    await self.open_database(event.db_name, created=True)
                else:
                    await self.close_database(event.db_name)
            elif event.event_type in CLASS_EVENTS or event.event_type in INSTANCE_EVENTS:
                segment.append(event)
            else:
                stats.skipped += 1
        await self._flush(segment, stats)
        return stats

    async def types_for(self, db: str, class_id: str | None) -> dict[str, str]:
        """Declared property types of a class, its ancestors' included (nearest wins)."""
        chain: list[dict[str, Any]] = []
        seen: set[str] = set()
        while class_id and class_id not in seen and len(chain) < MAX_PARENT_DEPTH:
            seen.add(class_id)
            doc = await self._class(db, class_id)
            if not doc:
                break
            chain.append(doc)
            class_id = doc.get("parent_class")
        types: dict[str, str] = {}
        for doc in reversed(chain):
            types.update(property_types(doc))
        return types

    async def _flush(self, events: list[Event], stats: Stats) -> None:
        if not events:
            return
        latest: dict[tuple[str, str, str], Event] = {}
        for event in events:
            key = (event.db_name, kind_of(event), event.aggregate_id)
            if key in latest:
                stats.superseded += 1
                if (latest[key].version or 0) >= (event.version or 0):
                    continue
            latest[key] = event
            if event.event_type in CLASS_EVENTS:  # later instances in the batch see this class's types
                self.classes[(event.db_name, event.aggregate_id)] = (
                    None if event.event_type in DELETES else event.data)
        open_dbs: dict[str, bool] = {}
        actions: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
        sources: list[Event] = []
        for event in latest.values():
            db = event.db_name
            if db not in open_dbs:
                open_dbs[db] = await self.open_database(db, created=False)
            if not open_dbs[db]:
                stats.skipped += 1
                continue
            actions.append(await self._action(event))
            sources.append(event)
        if actions:
            await self._bulk(actions, sources, stats)

    async def _action(self, event: Event) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The bulk request's action line and document (None for a delete)."""
        kind = kind_of(event)
        target = {"_index": self.target(event.db_name, kind), "_id": event.aggregate_id,
                  "version": event.version, "version_type": "external"}
        if event.event_type in DELETES:
            return {"delete": target}, None
        if kind == indices.CLASSES:
            return {"index": target}, class_document(event)
        types = await self.types_for(event.db_name, event.data.get("class_id"))
        return {"index": target}, instance_document(event, types)

    async def _bulk(self, actions: list[tuple[dict[str, Any], dict[str, Any] | None]], sources: list[Event],
                    stats: Stats) -> None:
        failures: list[tuple[Event, str]] = []
        body, first = bytearray(), 0
        for position, (action, document) in enumerate(actions):
            body += _SERIALIZER.json_dumps(action) + b"\n"
            if document is not None:
                body += _SERIALIZER.json_dumps(document) + b"\n"
            if position + 1 - first == BULK_ACTIONS or len(body) >= BULK_BYTES or position + 1 == len(actions):
                await self._send(bytes(body), sources[first:position + 1], stats, failures)
                body, first = bytearray(), position + 1
        if failures:
            raise ProjectionError(failures, stats)

    async def _send(self, body: bytes, sources: list[Event], stats: Stats, failures: list[tuple[Event, str]]) -> None:
        """One bulk request; its items are counted, the failed ones (other than stale) added to `failures`."""
        # Only what is read below comes back: a bulk answer is otherwise larger than its request. The body is
        # NDJSON already, which the client sends as it is.
        resp = await self.es.bulk(operations=body, refresh=self.refresh,  # type: ignore[arg-type]
                                  filter_path="items.*.status,items.*.error,items.*._id")
        for event, item in zip(sources, resp.body["items"], strict=True):
            op, info = next(iter(item.items()))
            status = int(info.get("status", 500))
            if status < 300 or (op == "delete" and status == 404):
                if op == "delete":
                    stats.deleted += 1
                else:
                    stats.indexed += 1
            elif status == 409:
                stats.stale += 1
            else:
                stats.failed += 1
                failures.append((event, f"{op} {info.get('_id')}: HTTP {status} {info.get('error')}"))
