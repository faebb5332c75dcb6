"""Fixtures: one namespace per test session (own PostgreSQL database, topics, consumer group)."""
from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.adapters.archive import open_archive
from shared.adapters.postgres.pool import Pool, create_pool, migrate
from shared.config import TOPICS, Settings
from shared.ports import EventArchive
from tests.cdp import Browser, chromium_binary
from tests.stack import Stack, drop_search_indices, test_env

NAMESPACE = f"t{uuid.uuid4().hex[:8]}"
ENV = test_env(NAMESPACE)
os.environ.update(ENV)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
async def database(settings: Settings) -> AsyncIterator[str]:
    from shared.stack import kafka, postgres

    await postgres.create_database(settings, settings.pg_database)
    await migrate(settings.pg_dsn)
    await kafka.ensure_topics(settings, [settings.topic(t) for t in TOPICS], settings.partitions)
    yield settings.pg_dsn
    await drop_search_indices(settings)



@pytest.fixture(scope="session")
async def pool(database: str) -> AsyncIterator[Pool]:
    pool = await create_pool(database, min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def stack(settings: Settings, database: str) -> AsyncIterator[Stack]:
    logs = Path(tempfile.mkdtemp(prefix=f"spice-{NAMESPACE}-"))
    stack = Stack(settings, ENV, logs)
    try:
        await stack.start()
        yield stack
    finally:
        await stack.stop()


@pytest.fixture(scope="module")
async def browser(stack: Stack) -> AsyncIterator[Browser]:
    """Headless Chromium over the DevTools protocol, for the pages' tests."""
    binary = chromium_binary()
    if binary is None:
        pytest.fail("chromium is not installed: `apt-get install chromium` (./spice.sh installs it)")
    browser = Browser(binary, int(os.environ.get("SPICE_TEST_CDP_PORT", "0")), stack.worker.logs)
    try:
        await browser.start()
        yield browser
    finally:
        await browser.stop()


@pytest.fixture
async def archive(settings: Settings) -> AsyncIterator[EventArchive]:
    """The archive the stack writes to (S3 on versitygw in the local run)."""
    store = await open_archive(settings)
    yield store
    await store.close()
