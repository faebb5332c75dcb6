"""Command-level access: roles per database and what each allows."""
from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    READER = "reader"
    WRITER = "writer"
    ADMIN = "admin"


RANK = {Role.READER: 1, Role.WRITER: 2, Role.ADMIN: 3}


def allows(held: Role | None, needed: Role) -> bool:
    return held is not None and RANK[held] >= RANK[needed]
