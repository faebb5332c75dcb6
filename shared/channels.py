"""Redis pub/sub channel names for live status, shared by the status agent and the web view."""
from __future__ import annotations

from shared.config import Settings


def command_channel(settings: Settings, command_id: str) -> str:
    return f"{settings.namespace}:command:{command_id}"


def user_channel(settings: Settings, actor: str) -> str:
    return f"{settings.namespace}:user:{actor}"
