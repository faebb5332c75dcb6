"""Ports: the small contracts every store adapter implements (one contract test suite each)."""
from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.chunks import chunked
from shared.domain.commands import AggregateType, Command
from shared.domain.events import Event


class DuplicateEvent(Exception):
    """The event (or another one for the same command and aggregate) is already stored."""


class VersionTaken(Exception):
    """Another event already holds this aggregate version: the caller decided on stale state."""


class RepairUnsupported(Exception):
    """The store cannot be repaired in place by a reconciliation."""


class CommandTooLarge(Exception):
    """The command is larger than its transport carries in one message; nothing was recorded."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the command would be {size} bytes; one command carries at most {limit}")
        self.size, self.limit = size, limit


class CommandLog(ABC):
    """Append-only log of commands; recording also queues the command for the relay."""

    @abstractmethod
    async def record(self, command: Command, topic: str) -> tuple[Command, bool]:
        """Store the command and its outbox row in one transaction.

        Returns (command, True), or (first command, False) when the actor already used the
        idempotency key. Raises CommandTooLarge for a command its transport cannot carry."""

    @abstractmethod
    async def record_received(self, command: Command) -> bool:
        """Record a command that arrived on Kafka from an outside producer (it is already on its
        topic, so no outbox row). False when that command_id is already recorded."""

    @abstractmethod
    async def get(self, command_id: uuid.UUID) -> Command | None: ...

    @abstractmethod
    async def pending_creator(self, db_name: str) -> str | None:
        """Who recorded a still-unexecuted create of this database, if anyone did."""

    @abstractmethod
    async def pending_creates(self, db_name: str, aggregate_ids: list[str]) -> set[str]:
        """Those of `aggregate_ids` with a recorded create command that has no event yet, or whose created
        event is still the aggregate's newest: created as far as the event store knows, whether or not the
        document store has written it yet."""


@dataclass(frozen=True)
class Mark:
    """What the event store had committed at one moment (EventStore.mark): `since` reads what came after."""
    head: int  # the highest position committed then
    snapshot: str  # the store's own record of which writes were committed then


class EventStore(ABC):
    """Append-only event store; appending also queues the event for the relay."""

    # True when append and append_many run their `documents` writes inside their own transaction, on the
    # document store bound to it (PostgreSQL events with PostgreSQL documents): an event and its documents
    # then commit together or not at all. False: `documents` is ignored and the caller writes them after.
    writes_documents: bool = False

    @abstractmethod
    async def append(self, event: Event, topic: str, documents: DocumentWrites | None = None) -> Event:
        """Store the event and its outbox row in one transaction; returns it with its position.

        Raises DuplicateEvent if the command already produced an event for the aggregate, and
        VersionTaken if the aggregate version is already used."""

    @abstractmethod
    async def append_many(self, events: list[Event], topic: str, documents: DocumentWrites | None = None) -> None:
        """Store several events (one command's, e.g. a bulk create) all-or-nothing in one transaction,
        with their outbox rows. Raises like append() and then stores none of them."""

    @abstractmethod
    async def for_command(self, command_id: uuid.UUID) -> list[Event]: ...

    @abstractmethod
    def latest(self, db_name: str, aggregate_type: AggregateType) -> AsyncGenerator[Event, None]:
        """The newest event of each aggregate of the type in the database as it is now (its latest creation
        on), in aggregate id order, streamed (a deleted one's says so in its data)."""

    @abstractmethod
    async def history(self, db_name: str, aggregate_type: AggregateType, aggregate_id: str) -> list[Event]:
        """Every versioned event of one aggregate in the database's current incarnation (from its latest
        DATABASE_CREATED on: a database deleted and created again under its name starts with no history),
        oldest first."""

    @abstractmethod
    async def deleted_at(self, db_name: str) -> datetime | None:
        """When a database of this name was last deleted (None if never): what was recorded up to then
        belongs to an earlier database of the name."""

    @abstractmethod
    async def last_version(self, db_name: str, aggregate_type: AggregateType, aggregate_id: str) -> int:
        """The aggregate's highest version, 0 when it has none."""

    @abstractmethod
    async def last_versions(self, db_name: str, aggregate_type: AggregateType, aggregate_ids: list[str]
                            ) -> dict[str, int]:
        """last_version for many aggregates at once (those with no event are left out)."""

    @abstractmethod
    async def read(self, db_name: str, after_position: int, limit: int) -> list[Event]:
        """The database's events in position order after `after_position`, from its latest creation on (an
        earlier database of the name keeps its events to itself)."""

    @abstractmethod
    async def mark(self) -> Mark:
        """What is committed now, for `since`."""

    @abstractmethod
    def since(self, db_name: str, mark: Mark) -> AsyncGenerator[Event, None]:
        """The database's events committed after `mark` was taken, in position order, streamed: what a rebuild
        that read the store after the mark may have missed (a transaction that committed late under a lower
        position than ones already read included)."""


# (aggregate id, version, document or None for deleted): what DocumentStore.restore writes.
Restored = tuple[str, int, dict[str, Any] | None]


class DocumentStore(ABC):
    """Current state of databases, classes, grants and instances. Every write is conditional on the version, so a
    replayed or redelivered older write never overwrites a newer one."""

    @abstractmethod
    async def put_database(self, doc: dict[str, Any]) -> None: ...

    @abstractmethod
    async def delete_database(self, name: str, version: int) -> None:
        """Mark the database deleted and drop everything in it."""

    @abstractmethod
    async def database(self, name: str) -> dict[str, Any] | None:
        """The live database, or None when unknown or deleted."""

    @abstractmethod
    async def databases(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def put_class(self, db_name: str, doc: dict[str, Any]) -> None: ...

    @abstractmethod
    async def delete_class(self, db_name: str, class_id: str, version: int) -> None: ...

    @abstractmethod
    async def get_class(self, db_name: str, class_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    async def classes(self, db_name: str) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def put_grant(self, doc: dict[str, Any]) -> None:
        """doc: {"db_name", "user", "role" (None when revoked), "version", ...provenance}."""

    @abstractmethod
    async def grant(self, db_name: str, user: str) -> dict[str, Any] | None: ...

    @abstractmethod
    async def grants(self, db_name: str) -> list[dict[str, Any]]:
        """The live grants of a database (revoked ones left out)."""

    @abstractmethod
    async def put_instances(self, db_name: str, docs: list[dict[str, Any]]) -> None:
        """Write instance documents, each kept only if newer than the stored one. A doc is
        {"instance_id", "class_id", "data": {property: value}, "version", "source_command_id",
        "event_id", "created_by", "created_at", "updated_by", "updated_at", "archive_uri"}."""

    @abstractmethod
    async def delete_instance(self, db_name: str, instance_id: str, version: int) -> None:
        """Tombstone the instance at `version` (an older put never resurrects it)."""

    @abstractmethod
    async def get_instance(self, db_name: str, instance_id: str) -> dict[str, Any] | None:
        """The live instance document (any class), or None when unknown or deleted."""

    @abstractmethod
    async def instances(self, db_name: str, class_id: str, limit: int, offset: int
                        ) -> tuple[int, list[dict[str, Any]]]:
        """(total, page) of a class's live instances, ordered by instance_id."""

    @abstractmethod
    async def instance_classes(self, db_name: str, instance_ids: list[str]) -> dict[str, str]:
        """instance_id -> class_id for those of `instance_ids` that are live instances."""

    @abstractmethod
    async def count_instances(self, db_name: str, class_id: str) -> int:
        """How many live instances the class has."""

    @abstractmethod
    async def held_versions(self, db_name: str, aggregate_type: str, ids: list[str]) -> dict[str, int]:
        """id -> the version the store holds (tombstones included) for those of `ids` it has any record of;
        `aggregate_type` is an AggregateType value: database (ids: the name), grant (user), ontology_class
        or instance."""

    @abstractmethod
    async def referrers(self, db_name: str, instance_id: str, slots: list[tuple[str, str]], limit: int) -> list[str]:
        """Up to `limit` live instances (ids, in id order) whose links name `instance_id`; `slots` are the
        (class, property) pairs that can hold such a link (a store that knows its links may look wider)."""

    @abstractmethod
    def versions(self, db_name: str, kind: str) -> AsyncGenerator[tuple[str, int, dict[str, Any]], None]:
        """(id, version, document) of every live class or instance (`kind`) in id order (as Python sorts
        strings), streamed: reconciliation merges it with the events without holding either whole."""

    async def restore(self, db_name: str, kind: str, items: list[Restored]) -> None:
        """Put classes or instances back as their newest events say ((id, version, document); None: deleted at
        that version), whatever the store holds now: the repair and the replay, the one unconditional write.
        Each aggregate at most once per call. A store that cannot answers RepairUnsupported."""
        raise RepairUnsupported(f"{type(self).__name__} cannot restore documents in place")

    async def replace(self, db_name: str, kind: str, items: AsyncIterable[Restored]) -> None:
        """Every class or instance (`kind`) of the database becomes what `items` say (each aggregate once, as
        for restore), and nothing else: the replay's rebuild. This default restores in batches, then removes
        the live ones `items` did not name, in place; a store that can build the new set beside the old one
        and swap it in at the end overrides it."""
        named: set[str] = set()
        async for batch in chunked(items, 1000):
            named.update(aggregate_id for aggregate_id, _, _ in batch)
            await self.restore(db_name, kind, batch)
        strays: list[Restored] = [(aggregate_id, version, None)
                                  async for aggregate_id, version, _ in self.versions(db_name, kind)
                                  if aggregate_id not in named]
        await self.restore(db_name, kind, strays)

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (the PostgreSQL store shares the process's pool and has none of its own)."""



class SearchIndex(ABC):
    """The search read model as reconciliation reads and repairs it."""

    @abstractmethod
    def versions(self, db_name: str, kind: str) -> AsyncGenerator[tuple[str, int, dict[str, Any]], None]:
        """(id, version, indexed source) of every class or instance (`kind`) the index holds for the database,
        in id order (as Python sorts strings), streamed."""

    @abstractmethod
    async def rebuild(self, db_name: str) -> None:
        """Rebuild the database's indices from the event store alone (fresh indices, swapped in at the end)."""


class EventArchive(ABC):
    """The immutable event archive (S3): an object, once written under a key, never changes."""

    @abstractmethod
    async def put_once(self, key: str, body: bytes) -> bool:
        """Write `body` under `key` unless the key exists (a conditional put). True when written,
        False when an object was already there (it is left untouched)."""

    @abstractmethod
    async def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def keys(self, prefix: str) -> list[str]:
        """Every key under `prefix`, sorted (all pages)."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """Where the object lives, e.g. s3://bucket/key or file:///path."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


# Writes the documents of stored events to a document store (shared.application.apply.apply_events).
DocumentWrites = Callable[[DocumentStore, list[Event]], Awaitable[None]]
