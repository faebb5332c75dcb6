"""A batch's status transitions: PROCESSING and final statuses sent together, progress and retries at once."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from shared.domain.status import FINAL, CommandStatus, StatusUpdate

# Sends transitions (each command's in order); returns the future of the broker's acknowledgement.
Send = Callable[[list[StatusUpdate]], Awaitable[Any]]


class BatchStatus:
    """The `report` of the commands of one batch. "Started" (PROCESSING without progress) and final
    statuses are held and sent at the end of the batch in one send, a command's PROCESSING just ahead of
    its final status (folded in that order): one wait for the broker per batch instead of two per command.
    A progress or RETRYING update goes out at once (a long command shows it live), after that command's
    held PROCESSING."""

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
            await (await self.send([held, update] if held is not None else [update]))

    async def flush(self) -> None:
        """Safe to call again after a failure: everything is sent again (a transition the status table
        already holds is dropped there)."""
        ending = {f.command_id for f in self.finals}
        updates = [u for c, u in self.started.items() if c not in ending]
        for final in self.finals:
            held = self.started.get(final.command_id)
            updates.extend([held, final] if held is not None else [final])
        if updates:
            await (await self.send(updates))
        self.started, self.finals = {}, []
