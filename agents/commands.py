"""Command agents: one per command topic; each partition's commands run in order, partitions side by side."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from agents.failures import execute_with_retry, patiently, send_dead_letter
from agents.runtime import open_runtime
from shared import dead_letters as dead_letter_format
from shared.application.access import REQUIRED, role_of
from shared.dead_letters import Origin
from shared.domain.access import allows
from shared.domain.commands import Command
from shared.domain.status import StatusUpdate
from shared.tokens import InvalidToken, verify
from streams.app import app, settings
from streams.records import decode, encode
from streams.topics import command_status, database_commands, instance_commands, ontology_commands
from tables.handled import handled_commands, handled_idempotency_keys

log = logging.getLogger(__name__)


async def report(update: StatusUpdate) -> None:
    runtime = await open_runtime(settings)
    # Keyed by command_id: all of one command's transitions land in one partition, in order; waiting
    # for the acknowledgement keeps PROCESSING ahead of COMPLETED even across producer retries.
    await runtime.producer.send_and_wait(command_status.get_topic_name(), encode(update),
                                         key=update.command_id.encode())


async def dead_letter(raw: Any, key: Any, error: str, reason: str = "rejected", origin: Origin | None = None,
                      command_id: str | None = None) -> None:
    await send_dead_letter(raw, key, error, reason=reason, origin=origin, command_id=command_id)


def encode_dead_letter(raw: Any, error: str, reason: str = "rejected", **where: Any) -> bytes:
    return dead_letter_format.encode(raw, error, reason=reason, **where)


async def handle(raw: bytes, key: Any, headers: dict[str, bytes], origin: Origin | None = None) -> None:
    try:
        command = decode(Command, raw)
    except ValidationError as exc:
        log.error("undecodable command on key %r: %s", key, exc)
        await dead_letter(raw, key, f"undecodable command: {exc}", "undecodable", origin)
        return
    command_id = str(command.command_id)
    # Fast path for redelivery: an entry here means the event is stored and the final status sent.
    if handled_commands.get(command_id.encode()) is not None:
        return
    runtime = await open_runtime(settings)
    if await patiently(lambda: runtime.executor.commands.get(command.command_id), command_id) is None:
        admitted = await patiently(lambda: admit(command, headers), command_id)
        if admitted is None:
            await dead_letter(raw, key, f"unauthorised command {command_id}: a valid bearer token with the "
                              "needed role is required in the 'authorization' header", "unauthorised", origin,
                              command_id)
            return
        command = admitted
    log.info("executing %s %s", command.command_type.value, command_id)
    # Transient failures retry with backoff (RETRYING); retries exhausted → FAILED + dead letter.
    event = await execute_with_retry(command, lambda: runtime.execute(command, report), report, raw, key, origin)
    if event is None:
        return
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


async def has_stored_event(raw: bytes) -> bool:
    """Whether the message is a command whose event is already stored (False when it cannot be told)."""
    try:
        command_id = decode(Command, raw).command_id
        runtime = await open_runtime(settings)
        return bool(await patiently(lambda: runtime.executor.events.for_command(command_id), str(command_id)))
    except Exception:  # noqa: BLE001 — undecodable, or the store fails for good: dead-letter as before
        log.exception("could not tell whether the crashed command's event is stored")
        return False


def header_map(headers: Any) -> dict[str, bytes]:
    items = headers.items() if hasattr(headers, "items") else (headers or [])
    return {str(k).lower(): (v if isinstance(v, bytes) else str(v).encode()) for k, v in items}


IN_FLIGHT = 32  # commands one agent runs at once, across its partitions


async def consume(stream: Any) -> None:
    manual = stream.noack()
    gate = asyncio.Semaphore(IN_FLIGHT)
    tails: dict[Any, asyncio.Task[None]] = {}
    try:
        async for event in manual.events():
            await gate.acquire()
            tp = event.message.tp
            # One partition's commands run one after another, in Kafka's order (an aggregate's commands
            # share a key, hence a partition); different partitions run side by side. The task is created
            # here, inside the stream iteration, so it copies the context in which Faust's current_event()
            # is this event: its table writes go to this event's changelog partition.
            task = asyncio.create_task(process(manual, event, tails.get(tp), gate))
            tails[tp] = task
            task.add_done_callback(forget(tails, tp))
    finally:
        # Stopping (or a rebalance): what is still running is abandoned unacknowledged and delivered
        # again to whoever owns the partition next (handling is idempotent; append+apply is shielded).
        for task in list(tails.values()):
            task.cancel()


def forget(tails: dict[Any, asyncio.Task[None]], tp: Any) -> Callable[[asyncio.Task[None]], None]:
    """Drop a finished task from the chain heads unless a later one has replaced it."""
    def done(task: asyncio.Task[None]) -> None:
        if tails.get(tp) is task:
            del tails[tp]
    return done


async def process(manual: Any, event: Any, previous: asyncio.Task[None] | None,
                  gate: asyncio.Semaphore) -> None:
    try:
        if previous is not None:
            await asyncio.wait([previous])  # its outcome is its own business; only the order matters here
        origin = Origin(event.message.topic, event.message.partition, event.message.offset)
        try:
            await handle(event.value, event.key, header_map(event.headers), origin)
        except Exception as exc:  # noqa: BLE001 — last resort: a crashed agent would stall the partition
            log.exception("handling the message at %s failed", origin)
            if not await has_stored_event(event.value):  # done work is never offered for resubmission
                await dead_letter(event.value, event.key, f"{type(exc).__name__}: {exc}", "crashed", origin)
        # Acknowledged by hand, after the command is handled: Faust's own iterator acks an event in
        # a `finally`, so a worker stopped mid-command would commit the offset of a command it never
        # finished and no worker would see it again (measured: tests/test_worker_restart.py). Acks of
        # one partition come in offset order (the chain above); Faust commits the contiguous prefix.
        await manual.ack(event)
    finally:
        gate.release()


@app.agent(database_commands)
async def database_agent(stream: Any) -> None:
    await consume(stream)


@app.agent(ontology_commands)
async def ontology_agent(stream: Any) -> None:
    await consume(stream)


@app.agent(instance_commands)
async def instance_agent(stream: Any) -> None:
    await consume(stream)
