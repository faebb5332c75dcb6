"""Topic declarations (keys and values are raw bytes of JSON; see records.py)."""
from __future__ import annotations

from streams.app import app, settings


def _topic(name: str):  # type: ignore[no-untyped-def]
    return app.topic(settings.topic(name), key_type=str, value_type=bytes,
                     key_serializer="raw", value_serializer="raw", partitions=settings.partitions)


database_commands = _topic("database-commands")
ontology_commands = _topic("ontology-commands")
instance_commands = _topic("instance-commands")
database_events = _topic("database-events")
ontology_events = _topic("ontology-events")
instance_events = _topic("instance-events")
command_status = _topic("command-status")
dead_letters = _topic("dead-letters")
projection_dead_letters = _topic("projection-dead-letters")
