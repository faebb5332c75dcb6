"""Replays under two-admin approval: the request, approval, rejection and completion as events of one
replay aggregate (its id is the request command's id), and the state they fold to."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.domain.commands import Command, CommandType
from shared.domain.decide import failure
from shared.domain.events import Event, EventType, event_for

TARGETS = ("documents", "search")
STEPS = {EventType.REPLAY_REQUESTED: "AWAITING_APPROVAL", EventType.REPLAY_APPROVED: "APPROVED",
         EventType.REPLAY_REJECTED: "REJECTED", EventType.REPLAY_COMPLETED: "COMPLETED",
         EventType.REPLAY_FAILED: "FAILED"}


@dataclass
class Replay:
    replay_id: str
    db_name: str
    targets: list[str]
    reason: str
    requested_by: str
    status: str = "AWAITING_APPROVAL"
    approved_by: str | None = None
    rejected_by: str | None = None
    command_id: str | None = None  # the approval's command: the rebuild runs as it
    result: dict[str, Any] = field(default_factory=dict)
    version: int = 0


def requested(command: Command) -> Replay:
    """The replay a REQUEST_REPLAY command asks for, before any of its events exist."""
    p = command.payload
    return Replay(replay_id=str(command.command_id), db_name=command.db_name, targets=list(p.get("targets", [])),
                  reason=str(p.get("reason", "")), requested_by=command.actor)


def fold(request: Command, history: list[Event]) -> Replay:
    replay = requested(request)
    for event in history:
        replay.status = STEPS.get(event.event_type, replay.status)
        replay.version = event.version or replay.version
        if event.event_type is EventType.REPLAY_APPROVED:
            replay.approved_by, replay.command_id = event.actor, str(event.command_id)
        elif event.event_type is EventType.REPLAY_REJECTED:
            replay.rejected_by = event.actor
        elif event.event_type in (EventType.REPLAY_COMPLETED, EventType.REPLAY_FAILED):
            replay.result = dict(event.data.get("result", {}))
    return replay


def approval_refused(replay: Replay, actor: str, admin_user: str) -> str | None:
    """Why `actor` may not approve: the requester approves nothing of their own (the bootstrap administrator
    may approve any)."""
    if actor == replay.requested_by and actor != admin_user:
        return "a replay is approved by a different admin than the one who requested it"
    return None


def decide_replay(command: Command, request: Command | None, history: list[Event], admin_user: str) -> Event:
    """REQUEST_REPLAY, APPROVE_REPLAY, REJECT_REPLAY and COMPLETE_REPLAY against the replay's events so far."""
    if command.command_type is CommandType.REQUEST_REPLAY:
        if history:
            return failure(command, "exists", f"replay {command.aggregate_id} was already requested")
        replay = requested(command)
        return event_for(command, EventType.REPLAY_REQUESTED, 1, {
            "replay_id": replay.replay_id, "db_name": replay.db_name, "targets": replay.targets,
            "reason": replay.reason, "requested_by": replay.requested_by})
    if request is None or not history:
        return failure(command, "not_found", f"replay {command.aggregate_id} does not exist")
    replay = fold(request, history)
    if command.command_type is CommandType.COMPLETE_REPLAY:
        if replay.status != "APPROVED":
            return failure(command, "conflict", f"replay {replay.replay_id} is {replay.status}, not approved")
        error = command.payload.get("error")
        data = {"replay_id": replay.replay_id, "result": command.payload.get("result", {}),
                **({"error": error} if error else {})}
        return event_for(command, EventType.REPLAY_FAILED if error else EventType.REPLAY_COMPLETED,
                         replay.version + 1, data)
    if replay.status != "AWAITING_APPROVAL":
        return failure(command, "conflict", f"replay {replay.replay_id} is {replay.status}, not awaiting approval",
                       status=replay.status)
    if command.command_type is CommandType.APPROVE_REPLAY:
        refused = approval_refused(replay, command.actor, admin_user)
        if refused:
            return failure(command, "forbidden", refused)
        return event_for(command, EventType.REPLAY_APPROVED, replay.version + 1,
                         {"replay_id": replay.replay_id, "approved_by": command.actor, "targets": replay.targets})
    return event_for(command, EventType.REPLAY_REJECTED, replay.version + 1,
                     {"replay_id": replay.replay_id, "rejected_by": command.actor})
