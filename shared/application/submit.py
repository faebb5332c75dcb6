"""Submitting commands: validate against what exists, then record the command (one transaction)."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from shared.domain.commands import Command, CommandType, Version
from shared.domain.ontology import CheckedLabel, OntologyClass, Property, Relationship, check_identifier
from shared.ports import CommandLog, CommandTooLarge, DocumentStore


def _request_of(command: Command) -> tuple[Any, ...]:
    return (command.command_type, command.db_name, command.aggregate_id, command.payload,
            command.expected_version, command.metadata)


class SubmitError(Exception):
    """Bad input found before anything was recorded; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


async def in_order(*checks: Awaitable[None]) -> None:
    """Run the checks at once (one wait for all their reads), then raise what the first failing one raised,
    in the order given: the answer is the one the checks made one after another would give."""
    for outcome in await asyncio.gather(*checks, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome


class ClassPatch(BaseModel):
    """Body of a class update: any subset of the class fields, plus an optional expected_version."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    label: CheckedLabel = None
    description: str | None = None
    parent_class: str | None = None
    abstract: bool | None = None
    properties: list[Property] | None = None
    relationships: list[Relationship] | None = None
    expected_version: Version | None = None

    @field_validator("parent_class")
    @classmethod
    def _parent(cls, v: str | None) -> str | None:
        return None if v in (None, "") else check_identifier(v, "parent class")


class Submitter:
    def __init__(self, commands: CommandLog, docs: DocumentStore, topic_for: Callable[[Command], str],
                 on_recorded: Callable[[Command], Awaitable[None]] | None = None) -> None:
        self.commands = commands
        self.docs = docs
        self.topic_for = topic_for
        # Told of each command recorded for the first time (not of a repeated request), after its commit:
        # the web view pushes its PENDING status live from here.
        self.on_recorded = on_recorded

    async def record(self, command: Command) -> tuple[Command, bool]:
        """Record the command; under an Idempotency-Key already used, the first command, when it is the
        same request (its command, target and body), else 422 (nothing is recorded). 413 for a command
        larger than one message of its transport carries."""
        try:
            stored, created = await self.commands.record(command, self.topic_for(command))
        except CommandTooLarge as exc:
            raise SubmitError(413, f"{exc} (split a bulk create into smaller ones)", limit_bytes=exc.limit) from exc
        if not created and _request_of(stored) != _request_of(command):
            raise SubmitError(422, "this Idempotency-Key was already used for a different request; "
                              "use a new key for a new request")
        if created and self.on_recorded is not None:
            await self.on_recorded(stored)
        return stored, created

    async def require_database(self, db_name: str) -> None:
        if await self.docs.database(db_name) is None and not await self.commands.pending_creates(
            db_name, [db_name]
        ):
            raise SubmitError(404, f"database {db_name!r} does not exist", db_name=db_name)

    async def require_classes(self, db_name: str, refs: set[str]) -> None:
        if not refs:
            return
        known = {c["class_id"] for c in await self.docs.classes(db_name)}
        missing = sorted(refs - known)
        if missing:
            missing = sorted(set(missing) - await self.commands.pending_creates(db_name, missing))
        if missing:
            raise SubmitError(422, f"class refers to classes that do not exist: {', '.join(missing)}",
                              missing=missing)

    async def create_database(self, name: str, description: str | None, actor: str,
                              key: str | None) -> tuple[Command, bool]:
        if await self.docs.database(name) is not None:
            raise SubmitError(409, f"database {name!r} already exists", db_name=name)
        return await self.record(Command(
            command_type=CommandType.CREATE_DATABASE, aggregate_id=name, db_name=name, actor=actor,
            payload={"name": name, "description": description}, idempotency_key=key))

    async def delete_database(self, name: str, expected_version: int | None, actor: str,
                              key: str | None) -> tuple[Command, bool]:
        await self.require_database(name)
        return await self.record(Command(
            command_type=CommandType.DELETE_DATABASE, aggregate_id=name, db_name=name, actor=actor,
            expected_version=expected_version, idempotency_key=key))

    async def create_class(self, db_name: str, cls: OntologyClass, actor: str,
                           key: str | None) -> tuple[Command, bool]:
        await in_order(self.require_database(db_name), self.require_classes(db_name, cls.referenced_classes()))
        return await self.record(Command(
            command_type=CommandType.CREATE_ONTOLOGY_CLASS, aggregate_id=cls.id, db_name=db_name,
            actor=actor, payload=cls.model_dump(mode="json"), idempotency_key=key))

    async def update_class(self, db_name: str, class_id: str, patch: ClassPatch, expected_version: int | None,
                           actor: str, key: str | None) -> tuple[Command, bool]:
        check_identifier(class_id, "class id")
        if patch.id is not None and patch.id != class_id:
            raise SubmitError(400, f"body id {patch.id!r} does not match the class in the path {class_id!r}")
        body = patch.model_dump(mode="json", exclude_unset=True, exclude={"expected_version", "id"})
        refs = {p.target for p in patch.properties or [] if p.target} | {
            r.target for r in patch.relationships or []}
        if patch.parent_class:
            refs.add(patch.parent_class)
        refs.discard(class_id)
        await in_order(self.require_database(db_name), self.require_classes(db_name, {r for r in refs if r}))
        return await self.record(Command(
            command_type=CommandType.UPDATE_ONTOLOGY_CLASS, aggregate_id=class_id, db_name=db_name,
            actor=actor, payload=body, expected_version=expected_version, idempotency_key=key))

    async def delete_class(self, db_name: str, class_id: str, expected_version: int | None, actor: str,
                           key: str | None) -> tuple[Command, bool]:
        check_identifier(class_id, "class id")
        await self.require_database(db_name)
        return await self.record(Command(
            command_type=CommandType.DELETE_ONTOLOGY_CLASS, aggregate_id=class_id, db_name=db_name,
            actor=actor, expected_version=expected_version, idempotency_key=key))
