"""Deciders: given a command and the current state, the one event it produces."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from shared.domain.commands import Command, CommandType, iso, utcnow
from shared.domain.events import Event, EventType, event_for, event_id_for
from shared.domain.ontology import DatabaseSpec, OntologyClass


class DependencyPending(Exception):
    """A class or database this command needs has a recorded create that has not executed yet."""


@dataclass(frozen=True)
class Context:
    """What the agent read before deciding. `current` is the aggregate's stored document, if any."""

    current: dict[str, Any] | None
    last_version: int
    database_exists: bool
    classes: frozenset[str] = frozenset()
    pending_creates: frozenset[str] = frozenset()
    dependents: dict[str, list[str]] = field(default_factory=dict)


def failure(command: Command, code: str, message: str, **details: Any) -> Event:
    return event_for(command, EventType.COMMAND_FAILED, None,
                     {"error": {"code": code, "message": message, **details}})


def _provenance(command: Command, version: int, current: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    at = iso(now)
    return {
        "version": version,
        "source_command_id": str(command.command_id),
        "event_id": str(event_id_for(command.command_id, command.aggregate_id)),
        "created_by": current["created_by"] if current else command.actor,
        "created_at": current["created_at"] if current else at,
        "updated_by": command.actor,
        "updated_at": at,
    }


def _version_conflict(command: Command, current: dict[str, Any] | None) -> Event | None:
    if command.expected_version is None:
        return None
    actual = current["version"] if current else None
    if actual != command.expected_version:
        return failure(command, "conflict",
                       f"version conflict: expected version {command.expected_version}, current is {actual}",
                       expected_version=command.expected_version, current_version=actual)
    return None


def decide_database(command: Command, ctx: Context) -> Event:
    now = utcnow()
    version = ctx.last_version + 1
    if command.command_type is CommandType.CREATE_DATABASE:
        if ctx.database_exists:
            return failure(command, "exists", f"database {command.db_name!r} already exists")
        spec = DatabaseSpec.model_validate(command.payload)
        state = {"name": spec.name, "description": spec.description,
                 **_provenance(command, version, None, now)}
        return event_for(command, EventType.DATABASE_CREATED, version, state, now)
    if not ctx.database_exists:
        return failure(command, "not_found", f"database {command.db_name!r} does not exist")
    conflict = _version_conflict(command, ctx.current)
    if conflict:
        return conflict
    state = {"name": command.db_name, "deleted": True, **_provenance(command, version, ctx.current, now)}
    return event_for(command, EventType.DATABASE_DELETED, version, state, now)


def _missing_references(cls: OntologyClass, ctx: Context) -> list[str]:
    missing = sorted(ref for ref in cls.referenced_classes() if ref not in ctx.classes)
    if any(ref in ctx.pending_creates for ref in missing):
        raise DependencyPending(f"waiting for pending create of {missing}")
    return missing


def decide_class(command: Command, ctx: Context) -> Event:
    if not ctx.database_exists:
        if command.db_name in ctx.pending_creates:
            raise DependencyPending(f"database {command.db_name!r} is still being created")
        return failure(command, "not_found", f"database {command.db_name!r} does not exist")
    class_id = command.aggregate_id
    now = utcnow()
    version = ctx.last_version + 1
    kind = command.command_type
    if kind is CommandType.CREATE_ONTOLOGY_CLASS and ctx.current is not None:
        return failure(command, "exists", f"class {class_id!r} already exists in {command.db_name!r}",
                       current_version=ctx.current["version"])
    if kind is not CommandType.CREATE_ONTOLOGY_CLASS and ctx.current is None:
        return failure(command, "not_found", f"class {class_id!r} does not exist in {command.db_name!r}")
    conflict = _version_conflict(command, ctx.current)
    if conflict:
        return conflict
    if kind is CommandType.DELETE_ONTOLOGY_CLASS:
        users = ctx.dependents.get(class_id, [])
        if users:
            return failure(command, "in_use",
                           f"class {class_id!r} is still used by {', '.join(sorted(users))}", used_by=users)
        state = {"id": class_id, "class_id": class_id, "deleted": True,
                 **_provenance(command, version, ctx.current, now)}
        return event_for(command, EventType.ONTOLOGY_CLASS_DELETED, version, state, now)
    body = dict(command.payload)
    if kind is CommandType.UPDATE_ONTOLOGY_CLASS and ctx.current is not None:
        # Partial update: fields the command names replace the stored ones, the rest stay.
        base = OntologyClass.model_validate(
            {k: ctx.current[k] for k in OntologyClass.model_fields if k in ctx.current}
        ).model_dump(mode="json")
        body = {**base, **body, "id": class_id}
    try:
        cls = OntologyClass.model_validate(body)
    except ValidationError as exc:
        return failure(command, "invalid", "class definition is not valid",
                       errors=[e["msg"] for e in exc.errors()])
    missing = _missing_references(cls, ctx)
    if missing:
        return failure(command, "unknown_reference",
                       f"class {class_id!r} refers to classes that do not exist: {', '.join(missing)}",
                       missing=missing)
    event_type = (EventType.ONTOLOGY_CLASS_CREATED if kind is CommandType.CREATE_ONTOLOGY_CLASS
                  else EventType.ONTOLOGY_CLASS_UPDATED)
    state = {**cls.model_dump(mode="json"), "class_id": class_id,
             **_provenance(command, version, ctx.current, now)}
    return event_for(command, event_type, version, state, now)


def decide_grant(command: Command, ctx: Context) -> Event:
    """GRANT_ROLE: payload {"user", "role"}; role null revokes."""
    if not ctx.database_exists:
        return failure(command, "not_found", f"database {command.db_name!r} does not exist")
    now = utcnow()
    version = ctx.last_version + 1
    role = command.payload.get("role")
    state = {"db_name": command.db_name, "user": command.aggregate_id, "role": role,
             **_provenance(command, version, ctx.current, now)}
    kind = EventType.ROLE_GRANTED if role else EventType.ROLE_REVOKED
    return event_for(command, kind, version, state, now)


def decide_reconcile(command: Command, database_exists: bool, drift: list[dict[str, Any]]) -> Event:
    """The repair of what a reconciliation found (gathered before this decision, from the stores)."""
    if not database_exists:
        return failure(command, "not_found", f"database {command.db_name!r} does not exist")
    return event_for(command, EventType.DATABASE_RECONCILED, None, {"repaired": drift, "count": len(drift)})


def decide(command: Command, ctx: Context) -> Event:
    if command.command_type in (CommandType.CREATE_DATABASE, CommandType.DELETE_DATABASE):
        return decide_database(command, ctx)
    if command.command_type is CommandType.GRANT_ROLE:
        return decide_grant(command, ctx)
    return decide_class(command, ctx)
