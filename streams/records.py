"""Wire format: every topic carries UTF-8 JSON of a pydantic model (the status topic: a list of one
command's transitions), decoded in the agent."""
from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, TypeAdapter

from shared.domain.status import StatusUpdate

M = TypeVar("M", bound=BaseModel)
UPDATES = TypeAdapter(list[StatusUpdate])


def decode(model: type[M], raw: bytes | str) -> M:
    return model.model_validate_json(raw)


def encode_updates(updates: list[StatusUpdate]) -> bytes:
    return UPDATES.dump_json(updates)


def decode_updates(raw: bytes | str) -> list[StatusUpdate]:
    """One command's transitions in order; a message of one bare transition (earlier senders) is a list of one."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    return UPDATES.validate_json(text) if text.lstrip().startswith("[") else [StatusUpdate.model_validate_json(text)]
