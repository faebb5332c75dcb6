"""The EventArchive contract."""
from __future__ import annotations

import asyncio
import random
import uuid

import pytest

from shared.ports import EventArchive

PAGED_KEYS = 1100  # more than one S3 listing page (1,000 keys)


def event_key(prefix: str, instance: str = "p1", version: int = 1) -> str:
    return f"{prefix}Person/{instance}/{version:010d}/{uuid.uuid4()}.json"


class EventArchiveContract:
    @pytest.fixture
    def archive(self) -> EventArchive:
        raise NotImplementedError

    @pytest.fixture
    def prefix(self) -> str:
        return f"db-{uuid.uuid4().hex[:12]}/"

    async def test_put_once_writes(self, archive: EventArchive, prefix: str) -> None:
        key = event_key(prefix)
        body = b'{"event_id": "e1", "version": 1}'
        assert await archive.put_once(key, body) is True
        assert await archive.get(key) == body
        assert await archive.keys(prefix) == [key]
        assert archive.uri(key).endswith(key)

    async def test_second_put_once_leaves_the_first_object(self, archive: EventArchive, prefix: str) -> None:
        key = event_key(prefix)
        assert await archive.put_once(key, b"first") is True
        assert await archive.put_once(key, b"second, longer than the first") is False
        assert await archive.put_once(key, b"first") is False
        assert await archive.get(key) == b"first"

    async def test_missing_key_is_none(self, archive: EventArchive, prefix: str) -> None:
        assert await archive.get(event_key(prefix)) is None
        assert await archive.keys(prefix) == []

    async def test_keys_sorted_and_complete_across_pages(self, archive: EventArchive, prefix: str) -> None:
        expected = [f"{prefix}Person/i{i % 7}/{i:010d}/e{i}.json" for i in range(PAGED_KEYS)]
        order = expected[:]
        random.shuffle(order)
        gate = asyncio.Semaphore(32)

        async def put(key: str) -> bool:
            async with gate:
                return await archive.put_once(key, key.encode())

        assert all(await asyncio.gather(*(put(k) for k in order)))
        sibling = f"{prefix[:-1]}x/Person/i0/{1:010d}/other.json"  # shares the prefix minus its slash
        assert await archive.put_once(sibling, b"x")
        assert await archive.keys(prefix) == sorted(expected)
        narrow = f"{prefix}Person/i3/"
        assert await archive.keys(narrow) == sorted(k for k in expected if k.startswith(narrow))
        partial = f"{prefix}Person/i1/00000000"  # a prefix need not end at a folder
        assert await archive.keys(partial) == sorted(k for k in expected if k.startswith(partial))

    async def test_concurrent_put_once_exactly_one_wins(self, archive: EventArchive, prefix: str) -> None:
        for _ in range(3):
            key = event_key(prefix)
            bodies = [f"writer-{i}".encode() * (i + 1) for i in range(16)]
            results = await asyncio.gather(*(archive.put_once(key, b) for b in bodies))
            assert results.count(True) == 1, results
            assert await archive.get(key) == bodies[results.index(True)]

    @pytest.mark.parametrize("bad", ["../escape.json", "/abs/key.json", "db/../x.json", "db//x.json", ""])
    async def test_rejects_unsafe_keys(self, archive: EventArchive, bad: str) -> None:
        with pytest.raises(ValueError):
            await archive.put_once(bad, b"x")
        with pytest.raises(ValueError):
            await archive.get(bad)
