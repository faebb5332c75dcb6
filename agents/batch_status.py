"""A batch's status transitions: PROCESSING and final statuses sent together, progress and retries at once."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from shared.domain.status import FINAL, CommandStatus, StatusUpdate

Send = Callable[[StatusUpdate], Awaitable[Any]]  # returns the broker's acknowledgement future


class BatchStatus:
    """The `report` of the commands of one batch. "Started" (PROCESSING without progress) and final
    statuses are held and sent at the end of the batch, all started ones first and awaited, then all finals
    and awaited: two waits for the broker per batch instead of two per command, and for every command
    PROCESSING is acknowledged before its final status is even sent. A progress or RETRYING update goes out
    at once (a long command shows it live), after that command's own held updates."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started: dict[str, StatusUpdate] = {}
        self.finals: list[StatusUpdate] = []

    async def __call__(self, update: StatusUpdate) -> None:
        if update.status is CommandStatus.PROCESSING and update.progress is None:
            self.started.setdefault(update.command_id, update)
        elif update.status in FINAL:
            self.finals.append(update)
        else:
            held = self.started.pop(update.command_id, None)
            if held is not None:
                await (await self.send(held))
            await (await self.send(update))

    async def flush(self) -> None:
        """Safe to call again after a failure: what was not acknowledged is sent again (a transition the
        status table already holds is dropped there)."""
        await asyncio.gather(*[await self.send(u) for u in self.started.values()])
        self.started = {}
        await asyncio.gather(*[await self.send(u) for u in self.finals])
        self.finals = []
