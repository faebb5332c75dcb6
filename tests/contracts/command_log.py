"""The CommandLog contract."""
from __future__ import annotations

import uuid

import pytest

from shared.domain.commands import Command, CommandType
from shared.ports import CommandLog


def make_command(key: str | None = None, actor: str = "tester") -> Command:
    name = f"db-{uuid.uuid4().hex[:8]}"
    return Command(command_type=CommandType.CREATE_DATABASE, aggregate_id=name, db_name=name, actor=actor,
                   payload={"name": name}, idempotency_key=key)


class CommandLogContract:
    @pytest.fixture
    def log(self) -> CommandLog:
        raise NotImplementedError

    async def test_record_and_get(self, log: CommandLog) -> None:
        command = make_command()
        stored, created = await log.record(command, "t")
        assert created and stored == command
        assert await log.get(command.command_id) == command
        assert await log.get(uuid.uuid4()) is None

    async def test_idempotency_key_returns_the_first_command(self, log: CommandLog) -> None:
        key = uuid.uuid4().hex
        first, _ = await log.record(make_command(key), "t")
        again, created = await log.record(make_command(key), "t")
        assert not created and again.command_id == first.command_id
        other, created = await log.record(make_command(key, actor="someone-else"), "t")
        assert created and other.command_id != first.command_id

    async def test_pending_creates(self, log: CommandLog) -> None:
        command = make_command()
        await log.record(command, "t")
        assert await log.pending_creates(command.db_name, [command.aggregate_id, "other"]) == {
            command.aggregate_id}
