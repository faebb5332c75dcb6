"""An async stream taken in lists of at most n items (a page at a time, never the whole stream)."""
from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import TypeVar

T = TypeVar("T")


async def chunked(items: AsyncIterable[T], size: int) -> AsyncIterator[list[T]]:
    """Lists of `size` items in stream order, the last one shorter (none for an empty stream)."""
    chunk: list[T] = []
    async for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
