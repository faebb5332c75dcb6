"""Command agents: one per command topic, each executing its commands in partition order."""
from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import ValidationError

from agents.runtime import open_runtime
from shared.application.access import REQUIRED, role_of
from shared.domain.access import allows
from shared.domain.commands import Command
from shared.domain.status import StatusUpdate
from shared.tokens import InvalidToken, verify
from streams.app import app, settings
from streams.records import decode, encode
from streams.topics import command_status, database_commands, dead_letters, ontology_commands
from tables.handled import handled_commands, handled_idempotency_keys

log = logging.getLogger(__name__)


async def report(update: StatusUpdate) -> None:
    runtime = await open_runtime(settings)
    # Keyed by command_id: all of one command's transitions land in one partition, in order; waiting
    # for the acknowledgement keeps PROCESSING ahead of COMPLETED even across producer retries.
    await runtime.producer.send_and_wait(command_status.get_topic_name(), encode(update),
                                         key=update.command_id.encode())


async def dead_letter(raw: Any, key: Any, error: str) -> None:
    runtime = await open_runtime(settings)
    await runtime.producer.send_and_wait(dead_letters.get_topic_name(), encode_dead_letter(raw, error),
                                         key=str(key or "").encode())


def encode_dead_letter(raw: Any, error: str) -> bytes:
    body = raw.decode(errors="replace") if isinstance(raw, bytes | bytearray) else str(raw)
    return json.dumps({"error": error, "message": body}).encode()


async def handle(raw: bytes, key: Any, headers: dict[str, bytes]) -> None:
    try:
        command = decode(Command, raw)
    except ValidationError as exc:
        log.error("undecodable command on key %r: %s", key, exc)
        await dead_letter(raw, key, f"undecodable command: {exc}")
        return
    command_id = str(command.command_id)
    # Fast path for redelivery: an entry here means the event is stored and the final status sent.
    if handled_commands.get(command_id.encode()) is not None:
        return
    runtime = await open_runtime(settings)
    if await runtime.executor.commands.get(command.command_id) is None:
        admitted = await admit(command, headers)
        if admitted is None:
            await dead_letter(raw, key, f"unauthorised command {command_id}: a valid bearer token with the "
                              "needed role is required in the 'authorization' header")
            return
        command = admitted
    log.info("executing %s %s", command.command_type.value, command_id)
    event = await runtime.executor.execute(command, report)
    handled_commands[command_id.encode()] = str(event.event_id).encode()
    if command.idempotency_key:
        handled_idempotency_keys[f"{command.actor}:{command.idempotency_key}".encode()] = command_id.encode()


async def admit(command: Command, headers: dict[str, bytes]) -> Command | None:
    """A command produced to Kafka by an outside producer, not through the HTTP view: the user comes
    from the signed token in its `authorization` header (never from the message), the user must hold
    the command's role, and the command is recorded on first sight (idempotent by command_id, so a
    producer's retry is one command). None when it is not admitted."""
    runtime = await open_runtime(settings)
    scheme, _, token = headers.get("authorization", b"").decode(errors="replace").partition(" ")
    try:
        user = verify(settings, token.strip()) if scheme.lower() == "bearer" else None
    except InvalidToken:
        user = None
    if user is None:
        return None
    command = command.model_copy(update={"actor": user})
    needed = REQUIRED[command.command_type]
    if needed is not None:
        role = await role_of(runtime.executor.docs, runtime.executor.commands, settings.admin_user,
                             command.db_name, user)
        if not allows(role, needed):
            return None
    await runtime.executor.commands.record_received(command)
    return command


def header_map(headers: Any) -> dict[str, bytes]:
    items = headers.items() if hasattr(headers, "items") else (headers or [])
    return {str(k).lower(): (v if isinstance(v, bytes) else str(v).encode()) for k, v in items}


async def consume(stream: Any) -> None:
    manual = stream.noack()
    async for event in manual.events():
        await handle(event.value, event.key, header_map(event.headers))
        # Acknowledged by hand, after the command is handled: Faust's own iterator acks an event in
        # a `finally`, so a worker stopped mid-command would commit the offset of a command it never
        # finished and no worker would see it again (measured: tests/test_worker_restart.py).
        await manual.ack(event)


@app.agent(database_commands)
async def database_agent(stream: Any) -> None:
    await consume(stream)


@app.agent(ontology_commands)
async def ontology_agent(stream: Any) -> None:
    await consume(stream)
