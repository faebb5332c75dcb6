"""Events: what happened because of a command, appended once and never changed."""
from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.commands import AggregateType, Command, utcnow

EVENT_NAMESPACE = uuid.UUID("6f1b6b0e-4d52-4f0c-9a55-2f0d8c1e7a11")


class EventType(StrEnum):
    DATABASE_CREATED = "DATABASE_CREATED"
    DATABASE_DELETED = "DATABASE_DELETED"
    ONTOLOGY_CLASS_CREATED = "ONTOLOGY_CLASS_CREATED"
    ONTOLOGY_CLASS_UPDATED = "ONTOLOGY_CLASS_UPDATED"
    ONTOLOGY_CLASS_DELETED = "ONTOLOGY_CLASS_DELETED"
    ROLE_GRANTED = "ROLE_GRANTED"
    ROLE_REVOKED = "ROLE_REVOKED"
    INSTANCE_CREATED = "INSTANCE_CREATED"
    INSTANCE_UPDATED = "INSTANCE_UPDATED"
    INSTANCE_DELETED = "INSTANCE_DELETED"
    COMMAND_FAILED = "COMMAND_FAILED"
    # What a reconciliation repaired; no version (it changes no aggregate, it restores what the events say).
    DATABASE_RECONCILED = "DATABASE_RECONCILED"
    REPLAY_REQUESTED = "REPLAY_REQUESTED"
    REPLAY_APPROVED = "REPLAY_APPROVED"
    REPLAY_REJECTED = "REPLAY_REJECTED"
    REPLAY_COMPLETED = "REPLAY_COMPLETED"
    REPLAY_FAILED = "REPLAY_FAILED"


def event_id_for(command_id: uuid.UUID, aggregate_id: str) -> uuid.UUID:
    """Deterministic, so an agent that redoes a command after a crash produces the same event id."""
    return uuid.uuid5(EVENT_NAMESPACE, f"{command_id}/{aggregate_id}")


class Event(BaseModel):
    """An event in the store. `version` is the aggregate's version after it (None for COMMAND_FAILED)."""

    model_config = ConfigDict(frozen=True)

    event_id: uuid.UUID
    event_type: EventType
    aggregate_type: AggregateType
    aggregate_id: str
    db_name: str
    version: int | None
    command_id: uuid.UUID
    actor: str
    occurred_at: datetime = Field(default_factory=utcnow)
    data: dict[str, Any] = Field(default_factory=dict)
    position: int | None = None

    @property
    def failed(self) -> bool:
        return self.event_type is EventType.COMMAND_FAILED

    def to_message(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"position"})


def event_for(command: Command, event_type: EventType, version: int | None, data: dict[str, Any],
              occurred_at: datetime | None = None) -> Event:
    return Event(
        event_id=event_id_for(command.command_id, command.aggregate_id),
        event_type=event_type,
        aggregate_type=command.aggregate_type,
        aggregate_id=command.aggregate_id,
        db_name=command.db_name,
        version=version,
        command_id=command.command_id,
        actor=command.actor,
        data=data,
        occurred_at=occurred_at or utcnow(),
    )
