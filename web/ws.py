"""WebSocket live status: /ws/commands/{id}, /ws/commands, /ws/stats and the /ws/test page.

One Redis pattern subscription per web process receives every status update (the status agent
publishes each on `<ns>:user:<actor>`); each update goes only to the connections of that actor that
watch all their commands or that one command. Every client has a bounded send queue drained by its
own task: a client that stops reading fills its queue and is dropped, never slowing the others.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from shared import metrics
from shared.bootstrap import status_subscriber
from shared.channels import user_channel
from shared.domain.commands import iso, utcnow
from web.context import SERVICES, actor, services
from web.openapi import Operation, documented
from web.responses import Document
from web.status import lookup

log = logging.getLogger(__name__)
QUEUE_SIZE = 256
HEARTBEAT_SECONDS = 20.0
PAGE = Path(__file__).parent / "static" / "ws_test.html"


@dataclass(eq=False)
class Client:
    user: str
    ws: web.WebSocketResponse
    all_commands: bool = False
    command_ids: set[str] = field(default_factory=set)
    queue: asyncio.Queue[dict[str, Any] | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_SIZE))
    dropped: bool = False

    def offer(self, message: dict[str, Any]) -> bool:
        """Queue a message without waiting; False (and the client is dropped) when it is full."""
        if self.dropped:
            return False
        try:
            self.queue.put_nowait(message)
            return True
        except asyncio.QueueFull:
            self.dropped = True
            return False

    def wants(self, command_id: str) -> bool:
        return self.all_commands or command_id in self.command_ids


@dataclass
class Hub:
    clients: set[Client] = field(default_factory=set)
    listener: asyncio.Task[None] | None = None
    dropped_total: int = 0

    def stats(self) -> dict[str, Any]:
        return {
            "connections": len(self.clients),
            "users": len({c.user for c in self.clients}),
            "subscriptions": sum(len(c.command_ids) for c in self.clients),
            "all_commands_subscribers": sum(1 for c in self.clients if c.all_commands),
            "dropped_slow_clients": self.dropped_total,
        }

    def dispatch(self, user: str, payload: dict[str, Any]) -> None:
        message = update_message(payload)
        command_id = message["command_id"]
        for client in list(self.clients):
            # Only the caller's own commands, ever: the user comes from the channel the update was
            # published on, which the status agent derives from the command's recorded actor.
            if client.user == user and client.wants(command_id) and not client.offer(message):
                self.drop(client)

    def drop(self, client: Client) -> None:
        if client in self.clients:
            self.clients.discard(client)
            self.dropped_total += 1
            log.info("dropping slow websocket client of %s", client.user)
            asyncio.get_running_loop().create_task(client.ws.close(code=1008, message=b"too slow"))


HUB = web.AppKey("ws_hub", Hub)


def update_message(status: dict[str, Any]) -> dict[str, Any]:
    """A `command_update` message from a status API body (what the status agent publishes)."""
    inner = status.get("result", {})
    history = inner.get("history") or [{}]
    return {
        "type": "command_update", "command_id": str(status.get("command_id")), "timestamp": iso(utcnow()),
        "data": {"status": status.get("status"), "progress": inner.get("progress"),
                 "message": history[-1].get("message", inner.get("message")),
                 "updated_at": inner.get("updated_at")},
    }


async def listen(app: web.Application) -> None:
    """Follow every user's status channel on Redis, reconnecting with backoff when Redis is away."""
    settings = app[SERVICES].settings
    prefix = user_channel(settings, "")
    delay = 0.1
    while True:
        client = status_subscriber(settings)
        pubsub = client.pubsub()
        try:
            await pubsub.psubscribe(prefix + "*")
            log.info("following %s* on Redis", prefix)
            delay = 0.1
            async for message in pubsub.listen():
                if message.get("type") != "pmessage":
                    continue
                channel = message["channel"]
                user = (channel.decode() if isinstance(channel, bytes) else str(channel))[len(prefix):]
                app[HUB].dispatch(user, json.loads(message["data"]))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 — Redis down: live pushes resume when it is back
            log.warning("status channel lost (%r); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
                await client.aclose()


async def hub_lifecycle(app: web.Application) -> Any:
    hub = app[HUB] = Hub()
    metrics.WEBSOCKETS.set_function(lambda: len(hub.clients))
    listener = asyncio.create_task(listen(app))
    app[HUB].listener = listener
    yield
    listener.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await listener
    for client in list(app[HUB].clients):
        await client.ws.close()


async def _owned(request: web.Request, user: str, raw: str) -> str | None:
    """The command id if it exists and belongs to `user`, else None."""
    try:
        command_id = uuid.UUID(raw)
    except (ValueError, TypeError):
        return None
    command = await services(request).commands.get(command_id)
    return str(command_id) if command is not None and command.actor == user else None


async def _current(request: web.Request, client: Client, command_id: str) -> None:
    """Send the command's present state, so a late subscriber is not left waiting."""
    record = await lookup(services(request), uuid.UUID(command_id))
    if record is not None:
        client.offer(update_message(record.to_api()))


async def _writer(client: Client) -> None:
    while True:
        message = await client.queue.get()
        if message is None:
            return
        await client.ws.send_json(message)


async def _serve(request: web.Request, first: str | None) -> web.WebSocketResponse:
    user = actor(request)
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS)
    await ws.prepare(request)
    client = Client(user=user, ws=ws, all_commands=first is None)
    hub = request.app[HUB]
    writer = asyncio.create_task(_writer(client))
    hub.clients.add(client)
    try:
        client.offer({"type": "connection_established", "user": user, "timestamp": iso(utcnow()),
                      "subscribed": "all" if first is None else first})
        if first is not None:
            owned = await _owned(request, user, first)
            if owned is None:
                client.offer({"type": "error", "message": f"unknown command {first!r} (or not yours)",
                              "command_id": first})
            else:
                client.command_ids.add(owned)
                await _current(request, client, owned)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            await _handle(request, client, msg.data)
    finally:
        hub.clients.discard(client)
        client.queue.put_nowait(None) if not client.queue.full() else writer.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await writer
    return ws


async def _handle(request: web.Request, client: Client, text: str) -> None:
    try:
        body = json.loads(text)
        kind = body["type"]
    except (ValueError, KeyError, TypeError):
        client.offer({"type": "error", "message": "messages are JSON objects with a 'type'"})
        return
    if kind == "ping":
        client.offer({"type": "pong", "timestamp": iso(utcnow())})
    elif kind == "get_subscriptions":
        client.offer({"type": "subscriptions", "all_commands": client.all_commands,
                      "command_ids": sorted(client.command_ids)})
    elif kind == "subscribe":
        owned = await _owned(request, client.user, str(body.get("command_id")))
        if owned is None:
            client.offer({"type": "error", "message": f"unknown command {body.get('command_id')!r} "
                          "(or not yours)", "command_id": body.get("command_id")})
            return
        client.command_ids.add(owned)
        client.offer({"type": "subscribed", "command_id": owned})
        await _current(request, client, owned)
    elif kind == "unsubscribe":
        client.command_ids.discard(str(body.get("command_id")))
        client.offer({"type": "unsubscribed", "command_id": body.get("command_id")})
    else:
        client.offer({"type": "error", "message": f"unknown message type {kind!r}"})


@documented(Operation("WebSocket: one command's updates (token may be a query parameter)", "live", {101: None},
                      errors=(401,), content="text/plain"))
async def ws_command(request: web.Request) -> web.WebSocketResponse:
    return await _serve(request, request.match_info["command_id"])


@documented(Operation("WebSocket: updates of all the caller's commands", "live", {101: None}, errors=(401,),
                      content="text/plain"))
async def ws_commands(request: web.Request) -> web.WebSocketResponse:
    return await _serve(request, None)


@documented(Operation("Connection counts", "live", {200: Document}, errors=(401,)))
async def ws_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[HUB].stats())


@documented(Operation("A page that shows the caller's live updates", "live", {200: None}, errors=(401,),
                      content="text/html"))
async def ws_test_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(PAGE)


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(hub_lifecycle)
    app.router.add_get("/ws/commands", ws_commands)
    app.router.add_get("/ws/commands/{command_id}", ws_command)
    app.router.add_get("/ws/stats", ws_stats)
    app.router.add_get("/ws/test", ws_test_page)
