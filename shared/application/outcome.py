"""What a command's status says: transitions, and the final status its stored events stand for."""
from __future__ import annotations

from typing import Any

from shared.domain.commands import AggregateType, Command, CommandType
from shared.domain.decide_instances import class_of
from shared.domain.events import Event, EventType
from shared.domain.status import CommandStatus, StatusUpdate


def status_update(command: Command, status: CommandStatus, message: str, **extra: Any) -> StatusUpdate:
    return StatusUpdate(
        command_id=str(command.command_id), status=status, message=message,
        command_type=command.command_type.value, aggregate_id=command.aggregate_id,
        db_name=command.db_name, actor=command.actor, created_at=command.created_at, **extra,
    )


def final_status(command: Command, events: list[Event]) -> StatusUpdate:
    """COMPLETED with the command's result, or FAILED with the error of its COMMAND_FAILED event."""
    first = events[0]
    if first.failed:
        error = first.data.get("error", {})
        return status_update(command, CommandStatus.FAILED, error.get("message", "Command failed"),
                             error={**error, "event_id": str(first.event_id)})
    return status_update(command, CommandStatus.COMPLETED, "Command completed successfully",
                         result=_result(command, events))


def _result(command: Command, events: list[Event]) -> dict[str, Any]:
    first = events[0]
    if first.event_type is EventType.DATABASE_RECONCILED:
        repaired = first.data.get("repaired", [])
        return {"message": f"reconciled {command.db_name!r}: {len(repaired)} drift(s) repaired",
                "db_name": command.db_name, "event_id": str(first.event_id), "count": len(repaired),
                "repaired": repaired[:100]}
    if command.command_type is CommandType.BULK_CREATE_INSTANCES:
        ids = [e.aggregate_id for e in events]
        return {"message": f"{len(ids)} instances of {class_of(command)!r} created", "class_id": class_of(command),
                "db_name": command.db_name, "count": len(ids), "instance_ids": ids[:100],
                "event_type": first.event_type.value}
    result: dict[str, Any] = {
        "message": f"{first.event_type.value} {first.aggregate_id!r} at version {first.version}",
        "event_type": first.event_type.value, "event_id": str(first.event_id), "version": first.version,
        "aggregate_id": first.aggregate_id, "db_name": first.db_name,
    }
    if first.aggregate_type is AggregateType.ONTOLOGY_CLASS:
        result["class_id"] = first.aggregate_id
    elif first.aggregate_type is AggregateType.INSTANCE:
        result.update(instance_id=first.aggregate_id, class_id=class_of(command),
                      archive_uri=first.data.get("archive_uri"))
    return result
