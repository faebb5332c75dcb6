"""Both event archive adapters pass the EventArchive contract: S3 on a live versitygw, and a local folder."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.adapters.archive import open_archive
from shared.adapters.archive.local_dir import LocalDirEventArchive
from shared.adapters.archive.s3 import S3EventArchive
from shared.config import Settings
from shared.ports import EventArchive
from tests.contracts.event_archive import EventArchiveContract, event_key


@pytest.fixture(scope="session")
async def s3_settings(settings: Settings) -> AsyncIterator[Settings]:
    """A bucket of this session's own on the configured S3; versitygw is started when none is set."""
    if not settings.s3_endpoint_override:  # unset, or "" (local-directory default): use versitygw
        from shared.stack import s3

        await s3.start(settings)
        endpoint = f"http://127.0.0.1:{settings.s3_port}"
    else:
        endpoint = settings.s3_endpoint_override
    bucket = f"spice-test-{uuid.uuid4().hex[:12]}"
    yield dataclasses.replace(settings, s3_endpoint_override=endpoint, s3_bucket=bucket)
    await _drop_bucket(endpoint, bucket, settings)


async def _drop_bucket(endpoint: str, bucket: str, settings: Settings) -> None:
    """Test cleanup only (the archive itself never deletes): empty and remove the session's bucket."""
    archive = await S3EventArchive.open(endpoint, bucket, settings.s3_access_key, settings.s3_secret_key)
    try:
        keys = await archive.keys("")
        for i in range(0, len(keys), 1000):
            await archive.client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True}
            )
        with contextlib.suppress(Exception):
            await archive.client.delete_bucket(Bucket=bucket)
    finally:
        await archive.close()


@pytest.fixture(scope="session")
async def s3_archive(s3_settings: Settings) -> AsyncIterator[EventArchive]:
    archive = await open_archive(s3_settings)
    yield archive
    await archive.close()


class TestS3EventArchive(EventArchiveContract):
    @pytest.fixture
    def archive(self, s3_archive: EventArchive) -> EventArchive:
        return s3_archive

    async def test_open_is_idempotent_and_uri_names_the_bucket(
        self, s3_archive: EventArchive, s3_settings: Settings, prefix: str
    ) -> None:
        assert isinstance(s3_archive, S3EventArchive)
        key = event_key(prefix)
        assert await s3_archive.put_once(key, b"kept")
        again = await open_archive(s3_settings)  # the bucket exists now: opening again is fine
        try:
            assert await again.get(key) == b"kept"
            assert again.uri(key) == f"s3://{s3_settings.s3_bucket}/{key}"
        finally:
            await again.close()

    async def test_independent_clients_racing_exactly_one_wins(
        self, s3_archive: EventArchive, s3_settings: Settings, prefix: str
    ) -> None:
        """Two separately opened archives stand for two worker processes: the server must decide."""
        others = [await open_archive(s3_settings) for _ in range(3)]
        try:
            clients = [s3_archive, *others]
            for _ in range(10):
                key = event_key(prefix)
                bodies = [f"client-{i}".encode() for i in range(16)]
                results = await asyncio.gather(
                    *(clients[i % len(clients)].put_once(key, b) for i, b in enumerate(bodies))
                )
                assert results.count(True) == 1, results
                assert await s3_archive.get(key) == bodies[results.index(True)]
        finally:
            for other in others:
                await other.close()


class TestLocalDirEventArchive(EventArchiveContract):
    @pytest.fixture
    def archive(self, tmp_path: Path) -> EventArchive:
        return LocalDirEventArchive(tmp_path / "archive")

    async def test_open_archive_without_endpoint_is_a_local_folder(
        self, settings: Settings, tmp_path: Path, prefix: str
    ) -> None:
        local = dataclasses.replace(settings, s3_endpoint_override="", home=tmp_path)
        archive = await open_archive(local)
        assert isinstance(archive, LocalDirEventArchive)
        key = event_key(prefix)
        assert await archive.put_once(key, b"{}")
        path = tmp_path / "archive" / key
        assert path.read_bytes() == b"{}"
        assert archive.uri(key) == path.resolve().as_uri()
        assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
        await archive.close()
