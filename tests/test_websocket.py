"""WebSocket live status on the same aiohttp server: per command, all of the caller's, and the protocol."""
from __future__ import annotations

import asyncio
import os
from typing import Any

import aiohttp

from tests.stack import Stack
from tests.test_write_path import PERSON


async def receive(ws: aiohttp.ClientWebSocketResponse, timeout: float = 30) -> dict[str, Any]:
    message = await ws.receive_json(timeout=timeout)
    assert isinstance(message, dict)
    return message


async def until_final(ws: aiohttp.ClientWebSocketResponse, command_id: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(60):
        while True:
            message = await receive(ws)
            if message["type"] == "command_update" and message["command_id"] == command_id:
                seen.append(message)
                if message["data"]["status"] in ("COMPLETED", "FAILED"):
                    return seen


async def test_all_of_my_commands_stream_live(stack: Stack) -> None:
    db = await stack.new_database()
    async with stack.client.ws_connect(f"{stack.base}/ws/commands", headers=stack.auth()) as ws:
        hello = await receive(ws)
        assert hello["type"] == "connection_established"
        command_id = await stack.submit("POST", f"/api/v1/ontology/{db}/async/create", PERSON)
        updates = await until_final(ws, command_id)
        assert updates[-1]["data"]["status"] == "COMPLETED" and updates[-1]["data"]["progress"] == 100
        assert {"status", "progress", "message", "updated_at"} <= set(updates[-1]["data"])
        assert updates[-1]["timestamp"].endswith("Z")


async def test_one_command_and_the_protocol(stack: Stack) -> None:
    db = await stack.new_database()
    command_id = await stack.submit("POST", f"/api/v1/ontology/{db}/async/create", PERSON)
    async with stack.client.ws_connect(f"{stack.base}/ws/commands/{command_id}", headers=stack.auth()) as ws:
        assert (await receive(ws))["type"] == "connection_established"
        updates = await until_final(ws, command_id)  # the current state first, then what follows
        assert updates[-1]["data"]["status"] == "COMPLETED"
        await ws.send_json({"type": "ping"})
        assert (await receive(ws))["type"] == "pong"
        await ws.send_json({"type": "get_subscriptions"})
        subs = await receive(ws)
        assert subs["type"] == "subscriptions" and subs["command_ids"] == [command_id]
        await ws.send_json({"type": "unsubscribe", "command_id": command_id})
        assert (await receive(ws))["type"] == "unsubscribed"
        await ws.send_json({"type": "subscribe", "command_id": "00000000-0000-0000-0000-000000000000"})
        error = await receive(ws)
        assert error["type"] == "error" and "unknown command" in error["message"]
        await ws.send_json({"type": "dance"})
        assert (await receive(ws))["type"] == "error"
        await ws.send_str("not json")
        assert (await receive(ws))["type"] == "error"
        code, stats = await stack.request("GET", "/ws/stats")
        assert code == 200 and stats["connections"] >= 1


async def test_subscribe_later_to_a_new_command(stack: Stack) -> None:
    db = await stack.new_database()
    first = await stack.submit("POST", f"/api/v1/ontology/{db}/async/create", PERSON)
    async with stack.client.ws_connect(f"{stack.base}/ws/commands/{first}", headers=stack.auth()) as ws:
        await until_final(ws, first)
        second = await stack.submit("PUT", f"/api/v1/ontology/{db}/async/Person", {"description": "x"})
        await ws.send_json({"type": "subscribe", "command_id": second})
        updates = await until_final(ws, second)
        assert updates[-1]["data"]["status"] == "COMPLETED"


async def test_test_page_is_served(stack: Stack) -> None:
    async with stack.client.get(f"{stack.base}/ws/test?token={stack.token('alice')}") as resp:
        assert resp.status == 200 and "text/html" in resp.headers["Content-Type"]
        assert "/ws/commands" in await resp.text()


async def test_two_web_processes_both_deliver_every_update(stack: Stack) -> None:
    """Updates fan out from Redis, so a client on either web process hears every one of its commands."""
    import socket
    import sys
    import tempfile
    from pathlib import Path

    from tests.stack import Process

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    second = Process("web2", [sys.executable, "-m", "shared.cli", "web"],
                     {**os.environ, "SPICE_WEB_PORT": str(port)}, Path(tempfile.mkdtemp()))
    second.start()
    try:
        other = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                async with stack.client.get(f"{other}/health") as resp:
                    if resp.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        db = await stack.new_database()
        async with stack.client.ws_connect(f"{stack.base}/ws/commands", headers=stack.auth()) as one, \
                stack.client.ws_connect(f"{other}/ws/commands", headers=stack.auth()) as two:
            for ws in (one, two):
                assert (await receive(ws))["type"] == "connection_established"
            ids = [await stack.submit("POST", f"/api/v1/ontology/{db}/async/create", {"id": f"W{i}"})
                   for i in range(5)]

            for ws in (one, two):
                done: set[str] = set()
                async with asyncio.timeout(60):
                    while done != set(ids):
                        message = await receive(ws)
                        # (The database's own creation may still push its COMPLETED after the sockets
                        # open: stack.wait can see it final in the event store before the status table.)
                        if message["type"] == "command_update" and message["data"]["status"] == "COMPLETED" \
                                and message["command_id"] in ids:
                            done.add(message["command_id"])
    finally:
        second.stop()


class StuckSocket:
    """Stands in for a client that stopped reading: its sends never complete."""

    def __init__(self) -> None:
        self.closed = False

    async def send_json(self, message: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    async def close(self, **_: Any) -> None:
        self.closed = True


class ReadingSocket:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []

    async def send_json(self, message: dict[str, Any]) -> None:
        self.received.append(message)


async def test_a_client_that_stops_reading_is_dropped_without_stalling_others() -> None:
    from web.ws import QUEUE_SIZE, Client, Hub, _writer

    hub = Hub()
    stuck, reading = StuckSocket(), ReadingSocket()
    clients = [Client(user="alice", ws=stuck, all_commands=True),  # type: ignore[arg-type]
               Client(user="alice", ws=reading, all_commands=True)]  # type: ignore[arg-type]
    writers = [asyncio.create_task(_writer(c)) for c in clients]
    hub.clients.update(clients)
    update = {"command_id": "c", "status": "PROCESSING", "result": {"progress": 10, "history": [{}]}}
    for _ in range(QUEUE_SIZE + 50):
        hub.dispatch("alice", update)
        await asyncio.sleep(0)  # the reading client's writer drains as it goes
    await asyncio.sleep(0.05)
    assert clients[0] not in hub.clients and stuck.closed and hub.stats()["dropped_slow_clients"] == 1
    assert clients[1] in hub.clients and len(reading.received) == QUEUE_SIZE + 50
    for task in writers:
        task.cancel()
