"""command_status: command_id -> JSON of its StatusRecord, fed by the status topic."""
from __future__ import annotations

from streams.app import app, settings

command_status = app.Table(
    "command_status", key_type=bytes, value_type=bytes, partitions=settings.partitions, default=None,
)
