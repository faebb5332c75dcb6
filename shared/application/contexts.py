"""Reading what a decision needs, per kind of command: only the aggregate and what it refers to."""
from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError

from shared.application.pending import on_their_way
from shared.domain.commands import AggregateType, Command, CommandType
from shared.domain.decide import Context
from shared.domain.decide_instances import (
    InstanceContext,
    MalformedPayload,
    class_of,
    instance_ids,
    items_of,
    linked_ids,
)
from shared.domain.events import Event
from shared.domain.instances import link_slots
from shared.domain.ontology import OntologyClass
from shared.ports import CommandLog, DocumentStore, EventStore

REFERRERS_SHOWN = 20  # the instances a refused delete names as still linking to it


class ContextReader:
    def __init__(self, commands: CommandLog, events: EventStore, docs: DocumentStore) -> None:
        self.commands, self.events, self.docs = commands, events, docs

    async def for_schema(self, command: Command) -> Context:
        """A database, grant or class command: the aggregate, the classes it refers to, and (for a class
        delete) the classes and instances that refer to it. Never every class of the database per command."""
        database = await self.docs.database(command.db_name)
        last_version = await self.events.last_version(command.db_name, command.aggregate_type, command.aggregate_id)
        existing: set[str] = set()
        dependents: dict[str, list[str]] = {}
        if command.aggregate_type is AggregateType.DATABASE:
            current = database
        elif command.aggregate_type is AggregateType.GRANT:
            current = await self.docs.grant(command.db_name, command.aggregate_id)
        else:
            # A create of a class with no event yet: its document cannot exist either (documents are only
            # written from events), so nothing is read (the expensive read with TerminusDB).
            unknown = command.command_type is CommandType.CREATE_ONTOLOGY_CLASS and not last_version
            current = await self.docs.get_class(command.db_name, command.aggregate_id) \
                if database and not unknown else None
            for ref in _references(command, current) if database else set():
                if await self.docs.get_class(command.db_name, ref) is not None:
                    existing.add(ref)
            if command.command_type is CommandType.DELETE_ONTOLOGY_CLASS and database:
                users = [doc["class_id"] for doc in await self.docs.classes(command.db_name)
                         if doc["class_id"] != command.aggregate_id and command.aggregate_id in _references_of(doc)]
                count = await self.docs.count_instances(command.db_name, command.aggregate_id)
                if count:
                    users.append(f"{count} instance(s)")
                if users:
                    dependents[command.aggregate_id] = users
        missing = sorted(_references(command, current) - existing)
        pending = await on_their_way(self.commands, self.events, command.db_name, AggregateType.ONTOLOGY_CLASS,
                                     missing)
        if database is None and command.aggregate_type is not AggregateType.DATABASE:
            pending |= await on_their_way(self.commands, self.events, command.db_name, AggregateType.DATABASE,
                                          [command.db_name])
        return Context(
            current=current,
            last_version=last_version,
            database_exists=database is not None,
            classes=frozenset(existing),
            pending_creates=frozenset(pending),
            dependents=dependents,
        )

    async def for_replay(self, command: Command) -> tuple[Command | None, list[Event]]:
        """The replay's request (its id is the request command's) and the replay's events so far."""
        request: Command | None = command
        if command.command_type is not CommandType.REQUEST_REPLAY:
            try:
                request = await self.commands.get(uuid.UUID(command.aggregate_id))
            except ValueError:
                request = None
        history = await self.events.history(command.db_name, AggregateType.REPLAY, command.aggregate_id)
        return request, history

    async def for_instances(self, command: Command) -> InstanceContext:
        """An instance command: the database's classes, the instances it names (the current document for
        an update or delete, whose links are checked on the merged state), and the instances it links to."""
        db = command.db_name
        try:
            class_of(command), items_of(command)
        except MalformedPayload:
            return InstanceContext(database_exists=True, classes={})  # the decider fails it, saying why
        database = await self.docs.database(db)
        if database is None:
            on_way = await on_their_way(self.commands, self.events, db, AggregateType.DATABASE, [db])
            return InstanceContext(database_exists=False, classes={}, pending_creates=frozenset(on_way))
        classes = {c["class_id"]: c for c in await self.docs.classes(db)}
        pending: set[str] = set()
        if class_of(command) not in classes:
            pending = await on_their_way(self.commands, self.events, db, AggregateType.ONTOLOGY_CLASS,
                                         [class_of(command)])
        ids = instance_ids(command)
        last_versions = await self.events.last_versions(db, AggregateType.INSTANCE, ids)
        # Documents are only written from events: a create reads none for the ids that have no event.
        creates = command.command_type in (CommandType.CREATE_INSTANCE, CommandType.BULK_CREATE_INSTANCES)
        known = [i for i in ids if last_versions.get(i) or not creates]
        owners = await self.docs.instance_classes(command.db_name, known) if known else {}
        current: dict[str, dict[str, Any]] = {}
        if command.command_type in (CommandType.UPDATE_INSTANCE, CommandType.DELETE_INSTANCE) and owners:
            doc = await self.docs.get_instance(command.db_name, command.aggregate_id)
            if doc is not None:
                current[command.aggregate_id] = doc
        else:
            current = {i: {"class_id": c} for i, c in owners.items()}
        referrers: list[str] = []
        if command.command_type is CommandType.DELETE_INSTANCE and command.aggregate_id in current:
            target_class = str(current[command.aggregate_id]["class_id"])
            referrers = await self.docs.referrers(db, command.aggregate_id, link_slots(target_class, classes),
                                                  REFERRERS_SHOWN)
        links = linked_ids(command, classes, current.get(command.aggregate_id))
        linked = await self.docs.instance_classes(db, links) if links else {}
        pending |= await on_their_way(self.commands, self.events, db, AggregateType.INSTANCE,
                                      [i for i in links if i not in linked])
        return InstanceContext(
            database_exists=True, classes=classes, current=current,
            last_versions=last_versions,
            linked=linked, pending_creates=frozenset(pending), referrers=referrers,
        )


def _references(command: Command, current: dict[str, Any] | None) -> set[str]:
    """Classes a create or update would depend on (best effort: invalid bodies are judged later)."""
    if command.command_type not in (CommandType.CREATE_ONTOLOGY_CLASS, CommandType.UPDATE_ONTOLOGY_CLASS):
        return set()
    base = {k: v for k, v in (current or {}).items() if k in OntologyClass.model_fields}
    try:
        return OntologyClass.model_validate({**base, **command.payload, "id": command.aggregate_id}
                                            ).referenced_classes()
    except ValidationError:
        return set()


def _references_of(doc: dict[str, Any]) -> set[str]:
    """Classes a stored class document refers to (the stored document carries provenance too)."""
    return OntologyClass.model_validate({k: doc[k] for k in OntologyClass.model_fields if k in doc}
                                        ).referenced_classes()
