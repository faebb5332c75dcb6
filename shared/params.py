"""Query parameters read as bounded integers, with one wording for every bad value."""
from __future__ import annotations


class BadParameter(ValueError):
    """A query parameter that is not an integer, or out of its range."""


def bounded_int(name: str, raw: str | None, lo: int | None = None, hi: int | None = None,
                default: int | None = None) -> int | None:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadParameter(f"query parameter {name!r} must be an integer, got {raw!r}") from exc
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise BadParameter(f"query parameter {name!r} must be between {lo} and {hi}, got {value}")
    return value
