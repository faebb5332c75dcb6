"""SPICE_STATUS_TTL: a final status leaves the worker's table once older than the TTL (tombstoned in its
changelog), and the status API still answers for it from the command log and the event store. Its own
stack (namespace, ports, a 2 s TTL) on the shared services."""
from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from unittest import mock

import pytest

from shared.adapters.postgres.pool import migrate
from shared.config import TOPICS, Settings
from shared.stack import kafka, postgres
from tests.conftest import drop_search_indices
from tests.stack import ROOT, Stack, free_ports
from tests.stack import test_env as env_for  # aliased: pytest would collect a test_* name


@pytest.fixture(scope="module")
async def short_ttl() -> AsyncIterator[Stack]:
    namespace = f"l{uuid.uuid4().hex[:8]}"
    web, worker = free_ports(2)
    env = {**env_for(namespace), "SPICE_WEB_PORT": web, "SPICE_WORKER_WEB_PORT": worker, "SPICE_STATUS_TTL": "2"}
    with mock.patch.dict(os.environ, env):
        settings = Settings()
    await postgres.create_database(settings, settings.pg_database)
    await migrate(settings.pg_dsn)
    await kafka.ensure_topics(settings, [settings.topic(t) for t in TOPICS], settings.partitions)
    stack = Stack(settings, env, Path(tempfile.mkdtemp(prefix=f"spice-{namespace}-")))
    try:
        await stack.start()
        await stack.wait_worker_ready()
        yield stack
    finally:
        await stack.stop()
        await drop_search_indices(settings)
        await postgres.drop_database(settings, settings.pg_database)
        shutil.rmtree(ROOT / f"{namespace}-worker-data", ignore_errors=True)


async def test_a_final_status_expires_from_the_table_and_is_still_answered(short_ttl: Stack) -> None:
    stack = short_ttl
    db = await stack.new_database()
    done = await stack.run("POST", f"/api/v1/ontology/{db}/async/create", {"id": "Kept"})
    assert done["status"] == "COMPLETED", done
    url = f"{stack.settings.worker_url}/status/{done['command_id']}"
    deadline = time.monotonic() + 30
    while True:
        async with stack.client.get(url, headers=stack.internal()) as resp:
            if resp.status == 404:
                break
        assert time.monotonic() < deadline, "the final entry should leave the status table after the TTL"
        await asyncio.sleep(0.5)
    code, body = await stack.request("GET", f"/api/v1/commands/{done['command_id']}")
    assert code == 200 and body["status"] == "COMPLETED", body
    assert body["result"]["result"]["class_id"] == "Kept"
    # A command still running is never expired: a new one completes and is in the table meanwhile.
    fresh = await stack.submit("POST", f"/api/v1/ontology/{db}/async/create", {"id": "Fresh"})
    assert (await stack.wait(fresh))["status"] == "COMPLETED"
