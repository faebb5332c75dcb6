"""Commands: the recorded intent of a change, immutable once written."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

MAX_VERSION = 2**31 - 1  # versions are PostgreSQL integers
# An expected version as a request gives it: a plain integer (never a boolean or a float), in range.
Version = Annotated[int, Field(strict=True, ge=0, le=MAX_VERSION)]


class CommandType(StrEnum):
    CREATE_DATABASE = "CREATE_DATABASE"
    DELETE_DATABASE = "DELETE_DATABASE"
    CREATE_ONTOLOGY_CLASS = "CREATE_ONTOLOGY_CLASS"
    UPDATE_ONTOLOGY_CLASS = "UPDATE_ONTOLOGY_CLASS"
    DELETE_ONTOLOGY_CLASS = "DELETE_ONTOLOGY_CLASS"
    GRANT_ROLE = "GRANT_ROLE"
    CREATE_INSTANCE = "CREATE_INSTANCE"
    UPDATE_INSTANCE = "UPDATE_INSTANCE"
    DELETE_INSTANCE = "DELETE_INSTANCE"
    BULK_CREATE_INSTANCES = "BULK_CREATE_INSTANCES"
    RECONCILE_DATABASE = "RECONCILE_DATABASE"  # repair every read model's drift from the event store
    # A replay (aggregate_id: the request's command id) is requested by one admin, approved or rejected by
    # another; the worker records its completion as a command of its own once the rebuild is done.
    REQUEST_REPLAY = "REQUEST_REPLAY"
    APPROVE_REPLAY = "APPROVE_REPLAY"
    REJECT_REPLAY = "REJECT_REPLAY"
    COMPLETE_REPLAY = "COMPLETE_REPLAY"


class AggregateType(StrEnum):
    DATABASE = "database"
    ONTOLOGY_CLASS = "ontology_class"
    GRANT = "grant"  # one per (database, user): the user's role there
    INSTANCE = "instance"  # aggregate_id = instance_id, unique within its database
    REPLAY = "replay"  # aggregate_id = the REQUEST_REPLAY command's id


AGGREGATE_OF: dict[CommandType, AggregateType] = {
    CommandType.CREATE_DATABASE: AggregateType.DATABASE,
    CommandType.DELETE_DATABASE: AggregateType.DATABASE,
    CommandType.CREATE_ONTOLOGY_CLASS: AggregateType.ONTOLOGY_CLASS,
    CommandType.UPDATE_ONTOLOGY_CLASS: AggregateType.ONTOLOGY_CLASS,
    CommandType.DELETE_ONTOLOGY_CLASS: AggregateType.ONTOLOGY_CLASS,
    CommandType.GRANT_ROLE: AggregateType.GRANT,
    CommandType.CREATE_INSTANCE: AggregateType.INSTANCE,
    CommandType.UPDATE_INSTANCE: AggregateType.INSTANCE,
    CommandType.DELETE_INSTANCE: AggregateType.INSTANCE,
    # One command, many aggregates: aggregate_id is the class; each instance gets its own event.
    CommandType.BULK_CREATE_INSTANCES: AggregateType.INSTANCE,
    CommandType.RECONCILE_DATABASE: AggregateType.DATABASE,
    CommandType.REQUEST_REPLAY: AggregateType.REPLAY,
    CommandType.APPROVE_REPLAY: AggregateType.REPLAY,
    CommandType.REJECT_REPLAY: AggregateType.REPLAY,
    CommandType.COMPLETE_REPLAY: AggregateType.REPLAY,
}

# The Kafka topic family ("<channel>-commands", "<channel>-events") each aggregate type travels on.
CHANNEL_OF: dict[AggregateType, str] = {
    AggregateType.DATABASE: "database",
    AggregateType.ONTOLOGY_CLASS: "ontology",
    AggregateType.GRANT: "database",
    AggregateType.INSTANCE: "instance",
    AggregateType.REPLAY: "database",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    """ISO-8601 UTC with a Z suffix, the form every API answer uses."""
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Command(BaseModel):
    """One user intent. `aggregate_id` names the object it changes inside `db_name`."""

    model_config = ConfigDict(frozen=True)

    command_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    command_type: CommandType
    aggregate_id: str
    db_name: str
    payload: dict[str, Any] = Field(default_factory=dict)
    actor: str
    expected_version: int | None = None
    idempotency_key: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def aggregate_type(self) -> AggregateType:
        return AGGREGATE_OF[self.command_type]

    @property
    def channel(self) -> str:
        return CHANNEL_OF[self.aggregate_type]

    @property
    def stream_key(self) -> str:
        """Kafka key: the aggregate's identity, so one aggregate's commands share a partition."""
        if self.aggregate_type is AggregateType.DATABASE:
            return self.db_name
        if self.aggregate_type is AggregateType.GRANT:
            return f"{self.db_name}/grant/{self.aggregate_id}"
        return f"{self.db_name}/{self.aggregate_id}"

    def to_message(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
