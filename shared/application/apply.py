"""Applying a stored event to the document store (idempotent: every write is version-conditional)."""
from __future__ import annotations

from shared.domain.commands import iso
from shared.domain.events import Event, EventType
from shared.ports import DocumentStore


async def apply_event(docs: DocumentStore, event: Event) -> None:
    if event.version is None:  # COMMAND_FAILED changes no document
        return
    match event.event_type:
        case EventType.DATABASE_CREATED:
            # The creator of a database is its admin (version 0 of that grant: any GRANT overrides).
            # Written before the database document: whoever sees the database (a status lookup uses it
            # as the sign of completion) also sees the creator's role.
            at = iso(event.occurred_at)
            await docs.put_grant({"db_name": event.db_name, "user": event.actor, "role": "admin",
                                  "version": 0, "source_command_id": str(event.command_id),
                                  "event_id": str(event.event_id), "created_by": event.actor,
                                  "created_at": at, "updated_by": event.actor, "updated_at": at})
            await docs.put_database(event.data)
        case EventType.DATABASE_DELETED:
            await docs.delete_database(event.db_name, event.version)
        case EventType.ONTOLOGY_CLASS_CREATED | EventType.ONTOLOGY_CLASS_UPDATED:
            await docs.put_class(event.db_name, event.data)
        case EventType.ONTOLOGY_CLASS_DELETED:
            await docs.delete_class(event.db_name, event.aggregate_id, event.version)
        case EventType.ROLE_GRANTED | EventType.ROLE_REVOKED:
            await docs.put_grant(event.data)
        case EventType.INSTANCE_CREATED | EventType.INSTANCE_UPDATED:
            await docs.put_instances(event.db_name, [event.data])
        case EventType.INSTANCE_DELETED:
            await docs.delete_instance(event.db_name, event.aggregate_id, event.version)


async def apply_events(docs: DocumentStore, events: list[Event]) -> None:
    """Apply a command's events: instance documents in batches of 1,000 (a bulk), the rest one by one."""
    puts = [e.data for e in events if e.event_type in (EventType.INSTANCE_CREATED, EventType.INSTANCE_UPDATED)]
    for start in range(0, len(puts), 1000):
        await docs.put_instances(events[0].db_name, puts[start:start + 1000])
    for event in events:
        if event.event_type not in (EventType.INSTANCE_CREATED, EventType.INSTANCE_UPDATED):
            await apply_event(docs, event)


async def is_applied(docs: DocumentStore, event: Event) -> bool:
    """Whether the document store already shows the event's effect (a COMMAND_FAILED has none)."""
    if event.event_type in (EventType.DATABASE_RECONCILED, EventType.REPLAY_APPROVED):
        return False  # what follows its append (a repair, a rebuild) shows nowhere one could check: the worker says
    if event.version is None:
        return True
    match event.event_type:
        case EventType.DATABASE_CREATED:
            db = await docs.database(event.db_name)
            return db is not None and db["version"] >= event.version
        case EventType.DATABASE_DELETED:
            return await docs.database(event.db_name) is None
        case EventType.ONTOLOGY_CLASS_CREATED | EventType.ONTOLOGY_CLASS_UPDATED:
            cls = await docs.get_class(event.db_name, event.aggregate_id)
            return cls is not None and cls["version"] >= event.version
        case EventType.ONTOLOGY_CLASS_DELETED:
            cls = await docs.get_class(event.db_name, event.aggregate_id)
            return cls is None or cls["version"] > event.version
        case EventType.ROLE_GRANTED | EventType.ROLE_REVOKED:
            grant = await docs.grant(event.db_name, event.aggregate_id)
            return grant is not None and grant["version"] >= event.version
        case EventType.INSTANCE_CREATED | EventType.INSTANCE_UPDATED:
            doc = await docs.get_instance(event.db_name, event.aggregate_id)
            return doc is not None and doc["version"] >= event.version
        case EventType.INSTANCE_DELETED:
            doc = await docs.get_instance(event.db_name, event.aggregate_id)
            return doc is None or doc["version"] > event.version
    return True
