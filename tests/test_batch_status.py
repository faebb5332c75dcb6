"""How a batch's status transitions go out: together at the end, PROCESSING first, live updates at once."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from agents.batch_status import BatchStatus
from shared.domain.status import CommandStatus, StatusUpdate


def update(command_id: str, status: CommandStatus, progress: int | None = None) -> StatusUpdate:
    return StatusUpdate(command_id=command_id, status=status, message=status.value, progress=progress,
                        command_type="CREATE_ONTOLOGY_CLASS", aggregate_id="C", db_name="db", actor="alice",
                        created_at=datetime.now(UTC))


async def test_transitions_are_held_and_sent_per_command_in_order() -> None:
    sent: list[list[tuple[str, str, int | None]]] = []

    async def send(updates: list[StatusUpdate]) -> asyncio.Future[Any]:
        sent.append([(u.command_id, u.status.value, u.progress) for u in updates])
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    status = BatchStatus(send)
    await status(update("a", CommandStatus.PROCESSING))
    await status(update("b", CommandStatus.PROCESSING))
    await status(update("c", CommandStatus.COMPLETED))  # a redelivery: its final only
    assert sent == []  # nothing goes out before the batch ends ...
    await status(update("b", CommandStatus.PROCESSING, progress=50))  # ... except a live update
    assert sent == [[("b", "PROCESSING", None), ("b", "PROCESSING", 50)]]
    await status(update("a", CommandStatus.COMPLETED))
    await status(update("b", CommandStatus.FAILED))
    await status.flush()
    assert sent[1:] == [[("c", "COMPLETED", None), ("a", "PROCESSING", None), ("a", "COMPLETED", None),
                         ("b", "FAILED", None)]]
    await status.flush()  # nothing is left to send twice
    assert len(sent) == 2
