"""handled_commands: command_id -> event_id of commands whose event is stored and status reported."""
from __future__ import annotations

from streams.app import app, settings

handled_commands = app.Table(
    "handled_commands", key_type=bytes, value_type=bytes, partitions=settings.partitions, default=None,
)
handled_idempotency_keys = app.Table(
    "handled_idempotency_keys", key_type=bytes, value_type=bytes, partitions=settings.partitions, default=None,
)
