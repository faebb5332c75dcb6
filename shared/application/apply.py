"""Applying a stored event to the document store (idempotent: every write is version-conditional)."""
from __future__ import annotations

from shared.domain.events import Event, EventType
from shared.ports import DocumentStore


async def apply_event(docs: DocumentStore, event: Event) -> None:
    if event.version is None:  # COMMAND_FAILED changes no document
        return
    match event.event_type:
        case EventType.DATABASE_CREATED:
            await docs.put_database(event.data)
        case EventType.DATABASE_DELETED:
            await docs.delete_database(event.db_name, event.version)
        case EventType.ONTOLOGY_CLASS_CREATED | EventType.ONTOLOGY_CLASS_UPDATED:
            await docs.put_class(event.db_name, event.data)
        case EventType.ONTOLOGY_CLASS_DELETED:
            await docs.delete_class(event.db_name, event.aggregate_id, event.version)
