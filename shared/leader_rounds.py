"""The active relay's periodic work (the redelivery sweep, the reconciliation check): one rhythm for both."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


async def rounds(interval: float, leader: asyncio.Event, stop: asyncio.Event) -> AsyncIterator[None]:
    """Once every `interval` seconds while this relay is the active one (holds `leader`), until `stop`."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass
        if not stop.is_set() and leader.is_set():
            yield
