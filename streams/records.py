"""Wire format: every topic carries UTF-8 JSON of a pydantic model, decoded in the agent."""
from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def encode(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


def decode(model: type[M], raw: bytes | str) -> M:
    return model.model_validate_json(raw)
