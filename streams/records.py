"""Wire format: every topic carries UTF-8 JSON of a pydantic model (the status topic: a list of one
command's transitions), decoded in the agent."""
from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, TypeAdapter

from shared.domain.status import StatusUpdate

M = TypeVar("M", bound=BaseModel)
UPDATES = TypeAdapter(list[StatusUpdate])


def decode(model: type[M], raw: bytes | str) -> M:
    return model.model_validate_json(raw)


def encode_updates(updates: list[StatusUpdate]) -> bytes:
    return UPDATES.dump_json(updates)


def encode_expiry(command_id: str) -> bytes:
    """The status topic's other message: the command's final entry is older than the status TTL."""
    return json.dumps({"expire": command_id}).encode()


def decode_status_message(raw: bytes | str) -> list[StatusUpdate] | str:
    """Transitions of one or more commands, each command's in order (a bare transition, from earlier
    senders, is a list of one), or the command id of an expiry."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    if text.lstrip().startswith("["):
        return UPDATES.validate_json(text)
    body = json.loads(text)
    if isinstance(body, dict) and set(body) == {"expire"} and isinstance(body["expire"], str):
        return body["expire"]
    return [StatusUpdate.model_validate(body)]
