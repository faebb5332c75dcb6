"""Submitting instance commands: check the request's shape and that its class exists, then record it.

The data itself is validated against the class when the command executes (the class may change
before then); a violation fails the command with every problem listed."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.application.submit import SubmitError, Submitter, in_order
from shared.domain.commands import Command, CommandType, Version
from shared.domain.instances import MAX_BULK, RESERVED, check_instance_id, new_instance_id
from shared.domain.ontology import check_identifier


def _check_names(data: dict[str, Any]) -> dict[str, Any]:
    for name in data:
        if name != "instance_id" and name in RESERVED:
            raise ValueError(f"{name!r} is reserved for the instance's own fields and cannot be a property")
    if "instance_id" in data:
        check_instance_id(data["instance_id"])
    return data


def seed_of(actor: str, key: str | None, db_name: str, index: int) -> str | None:
    """What a generated instance id is derived from under an Idempotency-Key (None: no key, a random id)."""
    return None if key is None else f"{actor}\n{key}\n{db_name}\n{index}"


class InstanceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: dict[str, Any]
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("data")
    @classmethod
    def _data(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _check_names(v)


class InstanceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: dict[str, Any]
    expected_version: Version | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("data")
    @classmethod
    def _data(cls, v: dict[str, Any]) -> dict[str, Any]:
        if "instance_id" in v:
            raise ValueError("instance_id cannot be changed by an update")
        return _check_names(v)


class BulkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BULK)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("instances")
    @classmethod
    def _items(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen: set[str] = set()
        for index, item in enumerate(v):
            try:
                _check_names(item)
            except ValueError as exc:
                raise ValueError(f"instances[{index}]: {exc}") from exc
            iid = item.get("instance_id")
            if iid is not None:
                if iid in seen:
                    raise ValueError(f"instances[{index}]: instance_id {iid!r} appears more than once")
                seen.add(iid)
        return v


class InstanceSubmitter:
    def __init__(self, submitter: Submitter) -> None:
        self.base = submitter

    async def require_class(self, db_name: str, class_id: str) -> None:
        check_identifier(class_id, "class id")
        await in_order(self.base.require_database(db_name), self._class_exists(db_name, class_id))

    async def _class_exists(self, db_name: str, class_id: str) -> None:
        if await self.base.docs.get_class(db_name, class_id) is None and not await self.base.commands.pending_creates(
                db_name, [class_id]):
            raise SubmitError(404, f"class {class_id!r} does not exist in {db_name!r}", class_id=class_id)

    async def require_instance(self, db_name: str, class_id: str, instance_id: str) -> None:
        check_instance_id(instance_id)
        await in_order(self.require_class(db_name, class_id), self._instance_exists(db_name, class_id, instance_id))

    async def _instance_exists(self, db_name: str, class_id: str, instance_id: str) -> None:
        owner = (await self.base.docs.instance_classes(db_name, [instance_id])).get(instance_id)
        if owner == class_id or (owner is None and await self.base.commands.pending_creates(db_name, [instance_id])):
            return
        raise SubmitError(404, f"instance {instance_id!r} of class {class_id!r} does not exist in {db_name!r}",
                          instance_id=instance_id, class_id=class_id)

    async def create(self, db_name: str, class_id: str, body: InstanceCreate, actor: str,
                     key: str | None) -> tuple[Command, str]:
        await self.require_class(db_name, class_id)
        # The id is fixed now, in the recorded command, so every redelivery creates the same instance.
        data = {**body.data, "instance_id": body.data.get("instance_id")
                or new_instance_id(class_id, seed_of(actor, key, db_name, 0))}
        command, _ = await self.base.record(Command(
            command_type=CommandType.CREATE_INSTANCE, aggregate_id=data["instance_id"], db_name=db_name,
            actor=actor, payload={"class_id": class_id, "data": data}, metadata=body.metadata,
            idempotency_key=key))
        return command, str(command.aggregate_id)

    async def update(self, db_name: str, class_id: str, instance_id: str, body: InstanceUpdate,
                     expected_version: int | None, actor: str, key: str | None) -> Command:
        await self.require_instance(db_name, class_id, instance_id)
        command, _ = await self.base.record(Command(
            command_type=CommandType.UPDATE_INSTANCE, aggregate_id=instance_id, db_name=db_name, actor=actor,
            payload={"class_id": class_id, "data": body.data}, expected_version=expected_version,
            metadata=body.metadata, idempotency_key=key))
        return command

    async def delete(self, db_name: str, class_id: str, instance_id: str, expected_version: int | None,
                     actor: str, key: str | None) -> Command:
        await self.require_instance(db_name, class_id, instance_id)
        command, _ = await self.base.record(Command(
            command_type=CommandType.DELETE_INSTANCE, aggregate_id=instance_id, db_name=db_name, actor=actor,
            payload={"class_id": class_id}, expected_version=expected_version, idempotency_key=key))
        return command

    async def bulk_create(self, db_name: str, class_id: str, body: BulkCreate, actor: str,
                          key: str | None) -> tuple[Command, list[str]]:
        await self.require_class(db_name, class_id)
        items = [{**item, "instance_id": item.get("instance_id") or new_instance_id(class_id, seed_of(
            actor, key, db_name, n))} for n, item in enumerate(body.instances)]
        command, _ = await self.base.record(Command(
            command_type=CommandType.BULK_CREATE_INSTANCES, aggregate_id=class_id, db_name=db_name, actor=actor,
            payload={"class_id": class_id, "instances": items}, metadata=body.metadata, idempotency_key=key))
        return command, [str(i["instance_id"]) for i in command.payload["instances"]]
