"""Deciding instance commands: validate against the class as it stands, then the events to append."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.domain.commands import Command, CommandType, iso, utcnow
from shared.domain.decide import DependencyPending, failure
from shared.domain.events import Event, EventType, event_id_for
from shared.domain.instances import (
    Checked,
    ClassNotUsable,
    descendants,
    effective_properties,
    effective_relationships,
    lineage,
    link_problems,
    validate,
)


@dataclass(frozen=True)
class InstanceContext:
    """What the agent read: the database's classes, the instances the command names (current docs and
    last versions, tombstoned ones included in `last_versions`), and the classes of linked instances."""

    database_exists: bool
    classes: dict[str, dict[str, Any]]
    current: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_versions: dict[str, int] = field(default_factory=dict)
    linked: dict[str, str] = field(default_factory=dict)
    pending_creates: frozenset[str] = frozenset()
    referrers: list[str] = field(default_factory=list)  # a delete's target: live instances linking to it


def items_of(command: Command) -> list[dict[str, Any]]:
    """The property maps a create or bulk create carries, each with its instance_id. The HTTP view
    fixes the ids when it records the command; a command produced straight to Kafka may leave them
    out, and then they are derived from the command (the same on every redelivery)."""
    if command.command_type is CommandType.BULK_CREATE_INSTANCES:
        items = command.payload.get("instances")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise MalformedPayload("a bulk create needs 'instances': a list of objects")
        prefix = class_of(command).lower()
        return [i if i.get("instance_id") else {**i, "instance_id": f"{prefix}-{derived_id(command, n)}"}
                for n, i in enumerate(items)]
    data = command.payload.get("data", {})
    if not isinstance(data, dict):
        raise MalformedPayload("'data' must be an object of property values")
    return [data if data.get("instance_id") else {**data, "instance_id": command.aggregate_id}]


def derived_id(command: Command, index: int) -> str:
    return uuid.uuid5(command.command_id, str(index)).hex[:16]


class MalformedPayload(ValueError):
    """An instance command whose payload does not have the shape its type needs."""


def class_of(command: Command) -> str:
    class_id = command.payload.get("class_id")
    if not isinstance(class_id, str) or not class_id:
        raise MalformedPayload("the payload names no 'class_id'")
    return class_id


def instance_ids(command: Command) -> list[str]:
    if command.command_type in (CommandType.CREATE_INSTANCE, CommandType.BULK_CREATE_INSTANCES):
        return [str(item["instance_id"]) for item in items_of(command)]
    return [command.aggregate_id]


def linked_ids(command: Command, classes: dict[str, dict[str, Any]],
               current: dict[str, Any] | None = None) -> list[str]:
    """Instance ids the links of the state the command would produce name: a create's items, or for an
    update its data over the `current` instance's (a partial update keeps the links it leaves out, and
    validation checks them too). Best effort; validation judges them later."""
    try:
        props = effective_properties(class_of(command), classes)
        slots = effective_relationships(class_of(command), classes)
    except (ClassNotUsable, ValueError):
        return []
    if command.command_type is CommandType.DELETE_INSTANCE:
        items: list[dict[str, Any]] = []
    elif command.command_type is CommandType.UPDATE_INSTANCE:
        items = [{**((current or {}).get("data") or {}), **command.payload.get("data", {})}]
    else:
        items = items_of(command)
    out: set[str] = set()
    for item in items:
        for name, value in item.items():
            prop = props.get(name)
            if prop is not None and prop.type == "link" and isinstance(value, str):
                out.add(value)
            elif name in slots:
                out.update(v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str))
    return sorted(out)


def _instance_event(command: Command, kind: EventType, instance_id: str, version: int, data: dict[str, Any],
                    previous: dict[str, Any] | None, now: datetime) -> Event:
    at = iso(now)
    event_id = event_id_for(command.command_id, instance_id)
    state = {
        "instance_id": instance_id, "class_id": class_of(command), **data,
        "version": version, "source_command_id": str(command.command_id), "event_id": str(event_id),
        "created_by": previous["created_by"] if previous else command.actor,
        "created_at": previous["created_at"] if previous else at,
        "updated_by": command.actor, "updated_at": at,
    }
    return Event(event_id=event_id, event_type=kind, aggregate_type=command.aggregate_type,
                 aggregate_id=instance_id, db_name=command.db_name, version=version,
                 command_id=command.command_id, actor=command.actor, occurred_at=now, data=state)


def _usable_class(command: Command, ctx: InstanceContext) -> Event | None:
    class_id = class_of(command)
    if class_id not in ctx.classes:
        if class_id in ctx.pending_creates:
            raise DependencyPending(f"class {class_id!r} is still being created")
        return failure(command, "not_found", f"class {class_id!r} does not exist in {command.db_name!r}")
    try:
        chain = lineage(class_id, ctx.classes)
    except ClassNotUsable as exc:
        return failure(command, "invalid_class", str(exc))
    if command.command_type is not CommandType.DELETE_INSTANCE and chain[-1].get("abstract"):
        return failure(command, "abstract_class", f"class {class_id!r} is abstract: it cannot have instances")
    return None


def decide_instances(command: Command, ctx: InstanceContext) -> list[Event]:
    """The events of an instance command: one per instance, or a single COMMAND_FAILED listing every
    problem (then nothing at all is written)."""
    try:
        class_of(command), items_of(command)
    except MalformedPayload as exc:
        return [failure(command, "invalid", f"malformed {command.command_type.value} command: {exc}")]
    if not ctx.database_exists:
        if command.db_name in ctx.pending_creates:
            raise DependencyPending(f"database {command.db_name!r} is still being created")
        return [failure(command, "not_found", f"database {command.db_name!r} does not exist")]
    unusable = _usable_class(command, ctx)
    if unusable:
        return [unusable]
    class_id = class_of(command)
    now = utcnow()
    kind = command.command_type
    if kind in (CommandType.UPDATE_INSTANCE, CommandType.DELETE_INSTANCE):
        current = ctx.current.get(command.aggregate_id)
        if current is None or current["class_id"] != class_id:
            return [failure(command, "not_found",
                            f"instance {command.aggregate_id!r} of class {class_id!r} does not exist")]
        if command.expected_version is not None and current["version"] != command.expected_version:
            return [failure(command, "conflict", f"version conflict: expected version {command.expected_version}, "
                            f"current is {current['version']}", expected_version=command.expected_version,
                            current_version=current["version"])]
        version = ctx.last_versions.get(command.aggregate_id, current["version"]) + 1
        if kind is CommandType.DELETE_INSTANCE:
            if ctx.referrers:
                # Refused rather than leaving dangling links (TerminusDB would refuse the delete itself):
                # the links go first, by updates that are events of their own.
                return [failure(command, "in_use", f"instance {command.aggregate_id!r} is still linked from "
                                f"{', '.join(ctx.referrers)}: remove those links first", linked_from=ctx.referrers)]
            return [_instance_event(command, EventType.INSTANCE_DELETED, command.aggregate_id, version,
                                    {"deleted": True}, current, now)]
        checked = _check(command, ctx, command.payload.get("data", {}), current.get("data", {}))
        if checked.problems:
            return [_invalid(command, checked.problems)]
        return [_instance_event(command, EventType.INSTANCE_UPDATED, command.aggregate_id, version,
                                {"data": checked.data}, current, now)]
    events: list[Event] = []
    problems: list[dict[str, Any]] = []
    bulk = kind is CommandType.BULK_CREATE_INSTANCES
    for index, item in enumerate(items_of(command)):
        instance_id = str(item["instance_id"])
        where: dict[str, Any] = {"index": index, "instance_id": instance_id} if bulk else {}
        if instance_id in ctx.current:
            problems.append({**where, "field": "instance_id", "message": f"instance {instance_id!r} already exists"
                             f" (class {ctx.current[instance_id]['class_id']})"})
            continue
        checked = _check(command, ctx, item)
        problems.extend({**where, **p} for p in checked.problems)
        # A deleted instance's id may be used again; its version history continues.
        version = ctx.last_versions.get(instance_id, 0) + 1
        events.append(_instance_event(command, EventType.INSTANCE_CREATED, instance_id, version,
                                      {"data": checked.data}, None, now))
    if problems:
        return [_invalid(command, problems)]
    return events


def _check(command: Command, ctx: InstanceContext, data: dict[str, Any],
           base: dict[str, Any] | None = None) -> Checked:
    props = effective_properties(class_of(command), ctx.classes)
    checked = validate(props, data, base, effective_relationships(class_of(command), ctx.classes))
    waiting = sorted({link.instance_id for link in checked.links} & ctx.pending_creates - set(ctx.linked))
    if waiting:
        raise DependencyPending(f"linked instances {waiting} are still being created")
    accepted = {link.target: descendants(link.target, ctx.classes) for link in checked.links}
    extra = link_problems(checked.links, ctx.linked, accepted)
    return Checked(checked.data, [*checked.problems, *extra], checked.links)


def _invalid(command: Command, problems: list[dict[str, Any]]) -> Event:
    shown = problems[:1000]
    return failure(command, "validation_failed",
                   f"instance data is not valid for class {class_of(command)!r}: {len(problems)} problem(s); "
                   + "; ".join(p["message"] for p in shown[:5]),
                   problems=shown, problem_count=len(problems))
