"""Command status: the allowed transitions and the record the status API shows."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from shared.domain.commands import iso, utcnow


class CommandStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    RETRYING = "RETRYING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


FINAL = frozenset({CommandStatus.COMPLETED, CommandStatus.FAILED})

ALLOWED: dict[CommandStatus, frozenset[CommandStatus]] = {
    CommandStatus.PENDING: frozenset(
        {CommandStatus.PROCESSING, CommandStatus.RETRYING, CommandStatus.COMPLETED, CommandStatus.FAILED}
    ),
    CommandStatus.PROCESSING: frozenset(
        {CommandStatus.PROCESSING, CommandStatus.RETRYING, CommandStatus.COMPLETED, CommandStatus.FAILED}
    ),
    CommandStatus.RETRYING: frozenset(
        {CommandStatus.PROCESSING, CommandStatus.RETRYING, CommandStatus.COMPLETED, CommandStatus.FAILED}
    ),
    CommandStatus.COMPLETED: frozenset(),
    CommandStatus.FAILED: frozenset(),
}

DEFAULT_PROGRESS = {
    CommandStatus.PENDING: 0,
    CommandStatus.PROCESSING: 10,
    CommandStatus.RETRYING: 10,
    CommandStatus.COMPLETED: 100,
    CommandStatus.FAILED: 100,
}


class StatusUpdate(BaseModel):
    """One transition, as agents send it on the status topic."""

    command_id: str
    status: CommandStatus
    message: str
    timestamp: datetime = Field(default_factory=utcnow)
    progress: int | None = None
    command_type: str
    aggregate_id: str
    db_name: str
    actor: str
    created_at: datetime
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class HistoryEntry(BaseModel):
    status: CommandStatus
    timestamp: datetime
    message: str
    progress: int


class StatusRecord(BaseModel):
    """The command_status table's value for one command."""

    command_id: str
    status: CommandStatus
    command_type: str
    aggregate_id: str
    db_name: str
    actor: str
    created_at: datetime
    updated_at: datetime
    progress: int
    history: list[HistoryEntry]
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def to_api(self) -> dict[str, Any]:
        """The contract shape of GET /api/v1/commands/{id}."""
        inner: dict[str, Any] = {
            "message": f"Command is {self.status.value}",
            "command_type": self.command_type,
            "aggregate_id": self.aggregate_id,
            "db_name": self.db_name,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "progress": self.progress,
            "history": [
                {"status": h.status.value, "timestamp": iso(h.timestamp), "message": h.message,
                 "progress": h.progress}
                for h in self.history
            ],
        }
        if self.result is not None:
            inner["result"] = self.result
        if self.error is not None:
            inner["error"] = self.error
        return {"command_id": self.command_id, "status": self.status.value, "result": inner}


def pending_record(update: StatusUpdate) -> StatusRecord:
    """A record for a command nothing has happened to yet beyond being recorded."""
    entry = HistoryEntry(status=CommandStatus.PENDING, timestamp=update.created_at,
                         message="Command recorded", progress=0)
    return StatusRecord(
        command_id=update.command_id, status=CommandStatus.PENDING, command_type=update.command_type,
        aggregate_id=update.aggregate_id, db_name=update.db_name, actor=update.actor,
        created_at=update.created_at, updated_at=update.created_at, progress=0, history=[entry],
    )


def apply_update(record: StatusRecord | None, update: StatusUpdate) -> StatusRecord | None:
    """The record after `update`, or None when the update changes nothing (duplicate or after a final state)."""
    current = record or pending_record(update)
    if update.status is CommandStatus.PENDING:
        return current if record is None else None
    if update.status not in ALLOWED[current.status]:
        return None
    progress = update.progress if update.progress is not None else DEFAULT_PROGRESS[update.status]
    if any(h.status == update.status and h.timestamp == update.timestamp for h in current.history):
        return None  # a redelivered transition: applied once, whatever came after it
    entry = HistoryEntry(status=update.status, timestamp=update.timestamp, message=update.message,
                         progress=progress)
    return current.model_copy(update={
        "status": update.status,
        "updated_at": update.timestamp,
        "progress": progress,
        "history": [*current.history, entry],
        "result": update.result if update.result is not None else current.result,
        "error": update.error if update.error is not None else current.error,
    })
