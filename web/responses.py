"""Pydantic models of the view's answers, for the OpenAPI document (the handlers build the same shapes)."""
from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from shared.domain.status import CommandStatus


class Open(BaseModel):
    """A JSON object with the fields listed and possibly more (answers grow without breaking clients)."""

    model_config = ConfigDict(extra="allow")


class ErrorDetail(Open):
    message: str


class ErrorBody(Open):
    """Every 4xx and 5xx: {"detail": {"message": ..., more fields naming what was wrong}}."""

    detail: ErrorDetail


class AcceptedResult(Open):
    message: str


class Accepted(BaseModel):
    """202: the command is recorded (with its outbox row, in one transaction) and will be executed."""

    command_id: UUID
    status: Literal["PENDING"]
    result: AcceptedResult


class StatusEntry(BaseModel):
    status: CommandStatus
    timestamp: str
    message: str
    progress: int


class StatusResult(Open):
    message: str
    command_type: str
    aggregate_id: str
    db_name: str
    created_at: str
    updated_at: str
    progress: int
    history: list[StatusEntry]
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class CommandStatusView(BaseModel):
    command_id: UUID
    status: CommandStatus
    result: StatusResult


class SyncData(Open):
    command_id: UUID
    execution_time: float
    progress_history: list[dict[str, Any]]


class SyncDone(Open):
    """200 from a sync wrapper or wait: the command reached COMPLETED within the timeout."""

    status: Literal["success"]
    message: str
    data: SyncData


class Page(Open):
    """A page of a list: `items[offset:offset + limit]` of `total`."""

    total: int
    limit: int
    offset: int
    items: list[dict[str, Any]]


class DatabasePage(Page):
    databases: list[str]


class Document(Open):
    """A database, a class or an instance as the document store holds it (see README for the fields)."""


class SearchHits(Open):
    total: int
    items: list[dict[str, Any]]


class Health(Open):
    status: Literal["ok", "unavailable"]
    checks: dict[str, Any]


class TraceEvent(BaseModel):
    event_id: UUID
    event_type: str
    aggregate_id: str
    version: int | None
    position: int | None


class TraceObject(Open):
    aggregate_id: str
    version: int
    state: dict[str, Any] | None
    archive_uri: str | None
    search_version: int | None


class Trace(BaseModel):
    """Command → events → objects at those versions → archive URI → the version the search index holds."""

    command: dict[str, Any]
    status: CommandStatus
    events: list[TraceEvent]
    objects: list[TraceObject]


class DriftEntry(BaseModel):
    aggregate_id: str
    kind: Literal["class", "instance"]
    store: Literal["documents", "search", "archive"]
    expected_version: int | None
    found_version: int | None
    problem: str


class Reconciliation(BaseModel):
    """Each object's state in a read model against the event store's, with a checksum per model."""

    db_name: str
    checked: int
    drift: list[DriftEntry]
    checksums: dict[str, str]


class ReplayAccepted(Open):
    replay_id: UUID
    status: Literal["AWAITING_APPROVAL", "APPROVED", "REJECTED"]
    command_id: UUID


class ReplayView(Open):
    replay_id: UUID
    db_name: str
    targets: list[str]
    status: Literal["AWAITING_APPROVAL", "APPROVED", "RUNNING", "COMPLETED", "FAILED", "REJECTED"]
    requested_by: str
    approved_by: str | None
    command_id: str | None
    result: dict[str, Any]
