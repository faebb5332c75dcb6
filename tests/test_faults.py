"""Faults on a private PostgreSQL, Redis and Kafka: poison commands, dead letters, a relay killed between
publish and mark, and each service stopped or restarted while commands are submitted."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp
import asyncpg
import pytest

from shared.adapters.postgres.command_log import PostgresCommandLog
from shared.adapters.postgres.pool import Pool, create_pool, migrate
from shared.config import TOPICS, Settings
from shared.dead_letters import DeadLetter, read_all
from shared.domain.commands import Command, CommandType
from shared.stack import kafka, postgres, redis
from tests.stack import ROOT, Process, Stack, drop_search_indices, free_ports
from tests.stack import test_env as env_for  # aliased: pytest would collect a test_* name

# Ports of this module's own services: the shared ones (55432/56379/59092) are never touched here.
_PG, _REDIS, _KAFKA, _CONTROLLER, _WEB, _WORKER = free_ports(6)
PRIVATE = {
    "SPICE_PG_PORT": _PG, "SPICE_REDIS_PORT": _REDIS, "SPICE_KAFKA_PORT": _KAFKA,
    "SPICE_KAFKA_CONTROLLER_PORT": _CONTROLLER,
    "SPICE_WEB_PORT": os.environ.get("SPICE_FAULTS_WEB_PORT", _WEB),
    "SPICE_WORKER_WEB_PORT": os.environ.get("SPICE_FAULTS_WORKER_PORT", _WORKER),
    "SPICE_S3_ENDPOINT": "",  # the embedded local-directory archive, under the private home
    "SPICE_RETRY_BASE_DELAY": "0.05", "SPICE_RETRY_MAX_DELAY": "1", "SPICE_RETRY_POISON_ATTEMPTS": "3",
}


class Faults:
    def __init__(self, settings: Settings, env: dict[str, str], stack: Stack, pool: Pool) -> None:
        self.settings, self.env, self.stack, self.pool = settings, env, stack, pool

    async def events_per_command(self, ids: list[str]) -> dict[str, int]:
        rows = await self.pool.fetch("SELECT command_id::text AS id, count(*) AS n FROM events"
                                     " WHERE command_id = ANY($1::uuid[]) GROUP BY command_id",
                                     [uuid.UUID(c) for c in ids])
        return {r["id"]: r["n"] for r in rows}

    async def create_classes(self, db: str, prefix: str, n: int) -> list[str]:
        return [await self.stack.submit("POST", f"/api/v1/ontology/{db}/async/create", {"id": f"{prefix}{i}"})
                for i in range(n)]

    async def all_completed_once(self, ids: list[str], timeout: float = 90.0) -> list[dict[str, Any]]:
        finals = await asyncio.gather(*(self.stack.wait(c, timeout=timeout) for c in ids))
        assert [f["status"] for f in finals] == ["COMPLETED"] * len(ids), [f for f in finals
                                                                           if f["status"] != "COMPLETED"]
        for final in finals:
            statuses = [h["status"] for h in final["result"]["history"]]
            assert statuses.count("COMPLETED") == 1, statuses
        assert await self.events_per_command(ids) == {c: 1 for c in ids}
        return finals

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "shared.cli", *args], env={**os.environ, **self.env},
                              cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
async def faults() -> AsyncIterator[Faults]:
    home = Path(tempfile.mkdtemp(prefix="spice-faults-"))
    os.chmod(home, 0o755)  # PostgreSQL runs as the postgres user and must reach home/pg
    namespace = f"f{uuid.uuid4().hex[:8]}"
    env = {**env_for(namespace), **PRIVATE, "SPICE_HOME": str(home), "SPICE_PG_DATABASE": "spice_faults"}
    with mock.patch.dict(os.environ, env):
        settings = Settings()
    services = (postgres, redis, kafka)
    try:
        await asyncio.gather(*(s.start(settings) for s in services))
        await migrate(settings.pg_dsn)
        await kafka.ensure_topics(settings, [settings.topic(t) for t in TOPICS], settings.partitions)
        pool = await create_pool(settings.pg_dsn, min_size=1, max_size=4)
        stack = Stack(settings, env, Path(tempfile.mkdtemp(prefix="spice-faults-logs-")))
        try:
            await stack.start()
            yield Faults(settings, env, stack, pool)
        finally:
            await stack.stop()
            await pool.close()
    finally:
        for service in services:
            await asyncio.to_thread(service.stop, settings)
        await drop_search_indices(settings)  # Elasticsearch is the shared one: leave no shards behind
        shutil.rmtree(ROOT / f"{namespace}-worker-data", ignore_errors=True)
        if not os.environ.get("SPICE_FAULTS_KEEP"):
            shutil.rmtree(home, ignore_errors=True)


async def eventually(probe: Callable[[], Awaitable[Any]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await probe():
            return
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def restart_postgres(settings: Settings, down: float) -> None:
    """A fast shutdown of the private PostgreSQL, `down` seconds away, then a start."""
    await asyncio.to_thread(postgres.stop, settings)
    await asyncio.sleep(down)
    await postgres.start(settings)


async def dead_letter_of(settings: Settings, command_id: str, timeout: float = 30.0) -> DeadLetter:
    deadline = time.monotonic() + timeout
    while True:
        found = [d for d in await read_all(settings.kafka_bootstrap, settings.topic("dead-letters"))
                 if d.command_id == command_id]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no dead letter for {command_id}"
        await asyncio.sleep(0.5)


async def test_poison_command_ends_failed_with_event_and_dead_letter(faults: Faults) -> None:
    """A command that can never succeed (here a payload the decider rejects with an exception: a
    schema violation found late) is retried a few times, then ends FAILED: one COMMAND_FAILED event,
    a FAILED status with the error, and a copy on the dead-letter topic saying where it came from."""
    name = f"poison-{uuid.uuid4().hex[:6]}"
    command = Command(command_type=CommandType.CREATE_DATABASE, aggregate_id=name, db_name=name,
                      actor="alice", payload={"name": name, "unexpected": "field"})
    await PostgresCommandLog(faults.pool).record(command, faults.settings.topic("database-commands"))
    final = await faults.stack.wait(str(command.command_id), timeout=60)
    assert final["status"] == "FAILED", final
    statuses = [h["status"] for h in final["result"]["history"]]
    assert statuses.count("RETRYING") == 2 and statuses[-1] == "FAILED", statuses
    assert "ValidationError" in final["result"]["error"]["message"]
    events = await faults.pool.fetch("SELECT event_type, data FROM events WHERE command_id = $1", command.command_id)
    assert [e["event_type"] for e in events] == ["COMMAND_FAILED"]
    assert events[0]["data"]["error"]["attempts"] == 3
    letter = await dead_letter_of(faults.settings, str(command.command_id))
    body = letter.body
    assert body["reason"] == "failed" and body["attempts"] == 3 and "ValidationError" in body["error"]
    assert body["original_topic"] == faults.settings.topic("database-commands")
    assert body["original_key"] == name
    assert isinstance(body["original_partition"], int) and isinstance(body["original_offset"], int)
    assert json.loads(body["message"])["command_id"] == str(command.command_id)  # the original, as it came


async def test_dead_letter_resubmitted_as_a_new_command(faults: Faults) -> None:
    """`spice dead-letters list` shows it; `resubmit` records a NEW command (new id, outbox row) that
    names the old one in metadata.resubmitted_from; `resubmit --all` does not submit it twice."""
    name = f"again-{uuid.uuid4().hex[:6]}"
    old = Command(command_type=CommandType.CREATE_DATABASE, aggregate_id=name, db_name=name, actor="alice",
                  payload={"name": name, "unexpected": "field"})
    await PostgresCommandLog(faults.pool).record(old, faults.settings.topic("database-commands"))
    letter = await dead_letter_of(faults.settings, str(old.command_id), timeout=60)
    listed = await asyncio.to_thread(faults.cli, "dead-letters", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(ln for ln in listed.stdout.splitlines() if str(old.command_id) in ln)
    assert line.split()[:2] == [letter.ref, "failed"], line
    again = await asyncio.to_thread(faults.cli, "dead-letters", "resubmit", letter.ref, "--as", "alice")
    assert again.returncode == 0, again.stdout + again.stderr
    rows = await faults.pool.fetch("SELECT command_id, actor, metadata FROM commands"
                                   " WHERE metadata->>'resubmitted_from' = $1", str(old.command_id))
    assert len(rows) == 1 and rows[0]["command_id"] != old.command_id and rows[0]["actor"] == "alice"
    new_id = rows[0]["command_id"]
    assert await faults.pool.fetchval("SELECT count(*) FROM outbox WHERE command_id = $1", new_id) == 1
    final = await faults.stack.wait(str(new_id), timeout=60)
    assert final["status"] == "FAILED"  # same payload, same verdict: but a command of its own
    bulk = await asyncio.to_thread(faults.cli, "dead-letters", "resubmit", "--all")
    assert bulk.returncode == 0, bulk.stdout + bulk.stderr
    assert await faults.pool.fetchval("SELECT count(*) FROM commands WHERE metadata->>'resubmitted_from' = $1",
                                      str(old.command_id)) == 1


async def test_relay_killed_after_publishing_before_marking(faults: Faults) -> None:
    """The relay dies after Kafka acknowledged a batch but before marking its rows: the next relay
    publishes them again, and the duplicates change nothing (one event per command, versions 1)."""
    stack = faults.stack
    db = await stack.new_database()
    stack.relay.stop()
    ids = await faults.create_classes(db, "R", 8)
    hooked = Process("relay-hooked", stack.relay.argv, {**faults.env, "SPICE_TEST_RELAY_EXIT_AFTER_PUBLISH": "1"},
                     stack.relay.logs)
    hooked.start()
    assert hooked.proc is not None
    assert await asyncio.to_thread(hooked.proc.wait, 60) == 75, hooked.log_tail()
    unmarked = await faults.pool.fetchval("SELECT count(*) FROM outbox WHERE command_id = ANY($1::uuid[])"
                                          " AND published_at IS NULL", [uuid.UUID(c) for c in ids])
    assert unmarked == len(ids), "the hooked relay should have died before marking its batch"
    await faults.all_completed_once(ids)  # from the first publish
    stack.relay.start()
    await eventually(lambda: faults.pool.fetchval("SELECT count(*) = 0 FROM outbox WHERE command_id = ANY($1::uuid[])"
                                                  " AND published_at IS NULL", [uuid.UUID(c) for c in ids]),
                     30, "the restarted relay should publish and mark the rows again")
    # One update per class, on the same key (so the same partition) behind the replayed creates: once
    # they are done, every duplicate has been consumed, and each class went 1 -> 2 exactly.
    updates = [await stack.submit("PUT", f"/api/v1/ontology/{db}/async/R{i}", {"description": "after",
                                                                                "expected_version": 1})
               for i in range(8)]
    await faults.all_completed_once(updates)
    assert await faults.events_per_command(ids) == {c: 1 for c in ids}
    code, listed = await stack.request("GET", f"/api/v1/ontology/{db}/classes")  # whichever document store
    assert code == 200
    assert sorted((c["class_id"], c["version"]) for c in listed["items"]) == [(f"R{i}", 2) for i in range(8)]


async def test_redis_stopped(faults: Faults) -> None:
    """Without Redis commands still complete and the status API answers (status table + stores);
    once Redis is back, live pushes reach a WebSocket client again."""
    stack, settings = faults.stack, faults.settings
    db = await stack.new_database()
    await asyncio.to_thread(redis.stop, settings)
    try:
        ids = await faults.create_classes(db, "D", 5)
        finals = await faults.all_completed_once(ids, timeout=60)
        for final in finals:  # the whole history: the Faust table answered, not only the event store
            assert [h["status"] for h in final["result"]["history"]][:2] == ["PENDING", "PROCESSING"]
    finally:
        await redis.start(settings)
    url = f"{stack.base.replace('http', 'ws')}/ws/commands?token={stack.token('alice')}"
    async with stack.client.ws_connect(url, heartbeat=10) as ws:
        deadline, pushed, i = time.monotonic() + 40, False, 0
        while not pushed and time.monotonic() < deadline:
            # The web process re-subscribes with backoff: keep submitting until one push arrives.
            cid = await stack.submit("POST", f"/api/v1/ontology/{db}/async/create", {"id": f"Live{i}"})
            i += 1
            try:
                async with asyncio.timeout(3):
                    while not pushed:
                        msg = await ws.receive()
                        assert msg.type == aiohttp.WSMsgType.TEXT, msg
                        body = json.loads(msg.data)
                        pushed = body.get("type") == "command_update" and body.get("command_id") == cid
            except TimeoutError:
                pass
        assert pushed, "no live push within 40 s of Redis returning"


async def test_kafka_stopped_while_submitting(faults: Faults) -> None:
    """With the broker down submissions still succeed (they are in PostgreSQL); after it returns
    every one is delivered and completed, once."""
    stack, settings = faults.stack, faults.settings
    db = await stack.new_database()
    await asyncio.to_thread(kafka.stop, settings)
    try:
        ids = await faults.create_classes(db, "K", 10)
    finally:
        await kafka.start(settings)
    await faults.all_completed_once(ids, timeout=120)


async def test_postgres_restarted_mid_run(faults: Faults) -> None:
    """PostgreSQL restarts while commands are submitted and one is executing: submissions during the
    outage get 503 (never 202 for a command not stored), the agent retries (RETRYING in the history)
    and every accepted command completes once."""
    stack, settings = faults.stack, faults.settings
    db = await stack.new_database()
    # Hold the event store locked so the next command is mid-execution when PostgreSQL goes down.
    blocker = await asyncpg.connect(settings.pg_dsn)
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
    in_flight = await stack.submit("POST", f"/api/v1/ontology/{db}/async/create", {"id": "InFlight"})
    await eventually(lambda: faults.pool.fetchval("SELECT count(*) > 0 FROM pg_stat_activity WHERE"
                                                  " wait_event_type = 'Lock' AND query ILIKE '%events%'"),
                     30, "the agent should be waiting on the locked event store")
    answers: list[tuple[int, str | None]] = []
    stop = asyncio.Event()

    async def keep_submitting() -> None:
        i = 0
        while not stop.is_set():
            try:
                code, body = await stack.request("POST", f"/api/v1/ontology/{db}/async/create", {"id": f"P{i}"})
            except aiohttp.ClientError as exc:
                raise AssertionError(f"the web view should answer during the outage: {exc}") from exc
            answers.append((code, body.get("command_id") if code == 202 else None))
            i += 1
            await asyncio.sleep(0.05)

    submitting = asyncio.create_task(keep_submitting())
    await asyncio.sleep(0.5)
    await restart_postgres(settings, 2.5)
    await asyncio.sleep(2.0)
    stop.set()
    await submitting
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
        await tx.rollback()  # its connection was ended by the restart
    await blocker.close(timeout=2)
    codes = [code for code, _ in answers]
    assert set(codes) <= {202, 503}, codes
    assert 503 in codes and 202 in codes, codes
    accepted = [cid for code, cid in answers if code == 202 and cid]
    stored = await faults.pool.fetch("SELECT command_id::text AS id FROM commands WHERE command_id = ANY($1::uuid[])",
                                     [uuid.UUID(c) for c in accepted])
    assert {r["id"] for r in stored} == set(accepted), "a 202 was answered for a command that is not stored"
    finals = await faults.all_completed_once([in_flight, *accepted], timeout=120)
    history = [h["status"] for h in finals[0]["result"]["history"]]
    assert "RETRYING" in history, history
    assert stack.relay.proc is not None and stack.relay.proc.poll() is None, "the relay should have reconnected"
    assert stack.worker.proc is not None and stack.worker.proc.poll() is None


async def test_worker_started_while_postgres_is_down(faults: Faults) -> None:
    """A worker that starts while PostgreSQL is away waits for it (its runtime opens with retries) and
    then executes what was queued meanwhile, once."""
    stack, settings = faults.stack, faults.settings
    db = await stack.new_database()
    stack.worker.stop()
    queued = await faults.create_classes(db, "Queued", 3)
    await eventually(lambda: faults.pool.fetchval("SELECT count(*) = 0 FROM outbox WHERE published_at IS NULL"),
                     30, "the relay should have published the queued commands")
    await asyncio.to_thread(postgres.stop, settings)
    try:
        stack.worker.start()
        await asyncio.sleep(6)  # the worker joins its group and gets the commands, PostgreSQL still away
        assert stack.worker.proc is not None and stack.worker.proc.poll() is None, stack.worker.log_tail()
    finally:
        await postgres.start(settings)
    await stack.wait_healthy()
    await faults.all_completed_once(queued)


async def test_postgres_restarted_under_concurrent_load(faults: Faults) -> None:
    """A fast shutdown of PostgreSQL in the middle of 300 class creates from 30 clients, then a start: every
    command completes once, no pooled connection was ever used by two operations at once (the worker logs
    no InternalClientError), and no command that completed is on the dead-letter topic."""
    stack, settings = faults.stack, faults.settings
    db = await stack.new_database()
    logs = stack.worker.logs
    logs_before = {p: p.stat().st_size for p in logs.glob("*.log")}
    names = iter(range(300))
    accepted: list[str] = []

    async def client() -> None:
        for i in names:
            for _ in range(100):  # a 503 while PostgreSQL is away: the client tries again
                code, body = await stack.request("POST", f"/api/v1/ontology/{db}/async/create", {"id": f"L{i}"})
                if code == 202:
                    accepted.append(body["command_id"])
                    break
                assert code == 503, (code, body)
                await asyncio.sleep(0.2)

    clients = asyncio.gather(*(client() for _ in range(30)))
    await eventually(lambda: asyncio.sleep(0, len(accepted) >= 60), 60, "the load should be under way")
    await restart_postgres(settings, 1.0)
    await clients
    assert len(accepted) == 300
    await faults.all_completed_once(accepted, timeout=180)
    written = "".join(p.read_text(errors="replace")[logs_before.get(p, 0):] for p in logs.glob("*.log"))
    assert "InternalClientError" not in written and "another operation is in progress" not in written
    dead = {d.command_id for d in await read_all(settings.kafka_bootstrap, settings.topic("dead-letters"))}
    assert dead.isdisjoint(accepted), dead & set(accepted)


async def test_pool_hands_no_connection_to_two_tasks_across_a_restart(faults: Faults) -> None:
    """The pool itself, 40 tasks over 4 connections through a PostgreSQL restart: each failure is the
    connection going away (transient), never two operations on one connection, and it serves again after."""
    from shared.adapters.transient import is_transient

    settings = faults.settings
    pool = await create_pool(settings.pg_dsn, min_size=4, max_size=4)
    failures: list[BaseException] = []
    stop = asyncio.Event()

    async def worker(n: int) -> None:
        while not stop.is_set():
            try:
                async with pool.acquire() as conn, conn.transaction():
                    await conn.fetchval("SELECT pg_sleep(0.01)")
                    assert await conn.fetchval("SELECT $1::int", n) == n
            except Exception as exc:  # noqa: BLE001 — collected and judged below
                failures.append(exc)
                await asyncio.sleep(0.05)

    try:
        tasks = asyncio.gather(*(worker(n) for n in range(40)))
        await asyncio.sleep(0.5)
        await restart_postgres(settings, 0.5)
        await asyncio.sleep(1.0)
        stop.set()
        await tasks
        assert failures, "the restart should have cut some operations off"
        assert all(is_transient(f) for f in failures), {type(f).__name__: str(f) for f in failures}
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()
