"""A status never goes back: whichever source answers, a final status shows PROCESSING before it; and the
WebSocket's first update of a command is its PENDING."""
from __future__ import annotations

import uuid
from typing import Any

from shared.domain.commands import AggregateType, Command, CommandType, utcnow
from shared.domain.events import Event, EventType
from shared.domain.status import CommandStatus, StatusUpdate, apply_update
from tests.stack import Stack
from tests.test_websocket import PERSON, receive, until_final
from web.status import from_log


def _command() -> Command:
    return Command(command_type=CommandType.CREATE_ONTOLOGY_CLASS, aggregate_id="Person", db_name="d",
                   actor="alice", payload={"id": "Person"})


def _event(command: Command) -> Event:
    return Event(event_id=uuid.uuid4(), event_type=EventType.ONTOLOGY_CLASS_CREATED,
                 aggregate_type=AggregateType.ONTOLOGY_CLASS, aggregate_id="Person", db_name="d", version=1,
                 command_id=command.command_id, actor="alice", data={"class_id": "Person"})


def statuses(record: object) -> list[str]:
    return [h.status.value for h in record.history]  # type: ignore[attr-defined]


def test_an_answer_from_the_logs_shows_processing_before_the_final_status() -> None:
    command = _command()
    assert statuses(from_log(command, [_event(command)], None)) == ["PENDING", "PROCESSING", "COMPLETED"]


def test_a_lagging_table_keeps_its_transitions_and_gains_only_the_final_one() -> None:
    command = _command()
    table = from_log(command, None, None)
    for status in (CommandStatus.PROCESSING, CommandStatus.RETRYING):
        update = StatusUpdate(command_id=str(command.command_id), status=status, message=status.value,
                              command_type=command.command_type.value, aggregate_id="Person", db_name="d",
                              actor="alice", created_at=command.created_at, timestamp=utcnow())
        table = apply_update(table, update) or table
    assert statuses(from_log(command, [_event(command)], table)) == ["PENDING", "PROCESSING", "RETRYING",
                                                                     "COMPLETED"]


async def test_pending_is_the_first_update_pushed_on_the_websocket(stack: Stack) -> None:
    db = await stack.new_database()
    async with stack.client.ws_connect(f"{stack.base}/ws/commands", headers=stack.auth()) as ws:
        assert (await receive(ws))["type"] == "connection_established"
        command_id = await stack.submit("POST", f"/api/v1/ontology/{db}/async/create", PERSON)
        updates = await until_final(ws, command_id)
    seen = [u["data"]["status"] for u in updates]
    assert seen[0] == "PENDING" and seen[-1] == "COMPLETED", seen
    assert seen == sorted(seen, key=["PENDING", "PROCESSING", "RETRYING", "COMPLETED"].index), seen


async def test_a_repeated_request_pushes_no_pending_again(stack: Stack) -> None:
    db = await stack.new_database()
    key = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    command_id = await stack.submit("POST", f"/api/v1/ontology/{db}/async/create", PERSON, headers=key)
    await stack.wait(command_id)
    async with stack.client.ws_connect(f"{stack.base}/ws/commands", headers=stack.auth()) as ws:
        assert (await receive(ws))["type"] == "connection_established"
        again = await stack.submit("POST", f"/api/v1/ontology/{db}/async/create", PERSON, headers=key)
        assert again == command_id
        marker = await stack.submit("POST", f"/api/v1/ontology/{db}/async/create", {**PERSON, "id": "Marker"})
        updates: list[dict[str, Any]] = []
        while not updates or updates[-1]["command_id"] != marker:
            message = await receive(ws)
            if message["type"] == "command_update":
                updates.append(message)
    assert all(u["command_id"] != command_id for u in updates), updates
