"""Command agents: one per command topic; each partition runs its commands in batches, in Kafka order per
aggregate, partitions side by side."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from pydantic import ValidationError

from agents.batch_status import BatchStatus
from agents.batches import fill
from agents.failures import execute_with_retry, patiently, send_dead_letter
from agents.runtime import open_runtime
from shared import logs, metrics
from shared.application.access import REQUIRED, role_of
from shared.application.archiving import Report
from shared.dead_letters import Origin
from shared.domain.access import allows
from shared.domain.commands import Command, utcnow
from shared.domain.status import FINAL, CommandStatus, StatusUpdate
from shared.tokens import InvalidToken, verify
from streams.app import app, settings
from streams.records import decode, encode_updates
from streams.topics import command_status, database_commands, instance_commands, ontology_commands

log = logging.getLogger(__name__)


async def send_status(updates: list[StatusUpdate]) -> asyncio.Future[Any]:
    """Queue transitions on the status topic, each command's in order: one message per partition their
    commands map to, not one per command (the status agent folds a message's commands together). The
    future resolves once the broker acknowledged every message."""
    runtime = await open_runtime(settings)
    topic = command_status.get_topic_name()
    partitions = sorted(await runtime.producer.partitions_for(topic))
    groups: dict[int, list[StatusUpdate]] = {}
    for update in updates:
        # The partition Kafka's default partitioner gives the command id as a key: where a message keyed
        # by it would go (an expiry is), so the table entry lives where a lookup by key looks for it, and
        # all of one command's messages land in one partition, in order.
        key = update.command_id.encode()
        groups.setdefault(PARTITIONER(key, partitions, partitions), []).append(update)
    return asyncio.gather(*[
        await runtime.producer.send(topic, encode_updates(group), key=group[0].command_id.encode(), partition=p)
        for p, group in groups.items()])


PARTITIONER = DefaultPartitioner()


async def dead_letter(raw: Any, key: Any, error: str, reason: str = "rejected", origin: Origin | None = None,
                      command_id: str | None = None) -> None:
    await send_dead_letter(raw, key, error, reason=reason, origin=origin, command_id=command_id)


async def handle(raw: bytes, key: Any, headers: dict[str, bytes], report: Report,
                 origin: Origin | None = None) -> None:
    try:
        command = decode(Command, raw)
    except ValidationError as exc:
        log.error("undecodable command on key %r: %s", key, exc)
        await dead_letter(raw, key, f"undecodable command: {exc}", "undecodable", origin)
        return
    command_id = str(command.command_id)
    logs.bind(command_id=command_id, db_name=command.db_name, aggregate_id=command.aggregate_id)
    runtime = await open_runtime(settings)
    if await patiently(lambda: runtime.pipeline.commands.get(command.command_id), command_id) is None:
        admitted = await patiently(lambda: admit(command, headers), command_id)
        if admitted is None:
            await dead_letter(raw, key, f"unauthorised command {command_id}: a valid bearer token with the "
                              "needed role is required in the 'authorization' header", "unauthorised", origin,
                              command_id)
            return
        command = admitted
    log.info("executing %s %s", command.command_type.value, command_id)
    # Transient failures retry with backoff (RETRYING); retries exhausted → FAILED + dead letter.
    # A redelivered command finds its stored event and only re-sends its final status (idempotent).
    await execute_with_retry(command, lambda: runtime.execute(command, report), report, raw, key, origin)


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
        role = await role_of(runtime.pipeline.docs, runtime.pipeline.commands, settings.admin_user,
                             command.db_name, user)
        if not allows(role, needed):
            return None
    await runtime.pipeline.commands.record_received(command)
    return command


async def has_stored_event(raw: bytes) -> bool:
    """Whether the message is a command whose event is already stored (False when it cannot be told)."""
    try:
        command_id = decode(Command, raw).command_id
        runtime = await open_runtime(settings)
        return bool(await patiently(lambda: runtime.pipeline.events.for_command(command_id), str(command_id)))
    except Exception:  # noqa: BLE001 — undecodable, or the store fails for good: dead-letter as before
        log.exception("could not tell whether the crashed command's event is stored")
        return False


def header_map(headers: Any) -> dict[str, bytes]:
    items = headers.items() if hasattr(headers, "items") else (headers or [])
    return {str(k).lower(): (v if isinstance(v, bytes) else str(v).encode()) for k, v in items}


IN_FLIGHT = 1000  # messages one agent has taken and not yet acknowledged, across its partitions
BATCH = 200  # commands one partition hands to one batch
WITHIN = 0.005  # seconds a partition waits for more once it has one ready


async def consume(stream: Any) -> None:
    manual = stream.noack()
    gate = asyncio.Semaphore(IN_FLIGHT)
    queues: dict[Any, asyncio.Queue[Any]] = {}
    runners: list[asyncio.Task[None]] = []
    try:
        async for event in manual.events():
            await gate.acquire()
            tp = event.message.tp
            if tp not in queues:
                # One runner per partition: a partition's batches run one after another, in Kafka's
                # order; different partitions run side by side.
                queues[tp] = asyncio.Queue()
                runners.append(asyncio.create_task(run_partition(manual, queues[tp], gate)))
            queues[tp].put_nowait(event)
    finally:
        # Stopping (or a rebalance): what is still queued or running is abandoned unacknowledged and
        # delivered again to whoever owns the partition next (handling is idempotent; append+apply is
        # shielded).
        for runner in runners:
            runner.cancel()


async def run_partition(manual: Any, queue: asyncio.Queue[Any], gate: asyncio.Semaphore) -> None:
    while True:
        batch = await fill(queue, await queue.get(), BATCH, WITHIN)
        await handle_batch(batch)
        # Acknowledged by hand, after the whole batch is handled and its statuses acknowledged: Faust's
        # own iterator acks an event in a `finally`, so a worker stopped mid-command would commit the offset
        # of a command it never finished and no worker would see it again (tests/test_worker_restart.py).
        # One partition's acks come in offset order (batches in order, a batch in its order); Faust
        # commits the contiguous prefix.
        for event in batch:
            await manual.ack(event)
        for _ in batch:
            gate.release()


async def handle_batch(batch: list[Any]) -> None:
    """The batch's commands, one aggregate's in Kafka order (an aggregate's commands share a key), different
    aggregates side by side: their appends share transactions (the event store group-commits) and their
    statuses go out together (BatchStatus). A command's failure or crash is its own: the others go on."""
    status = BatchStatus(send_status)

    async def report(update: StatusUpdate) -> None:
        observe(update)
        await status(update)

    chains: dict[Any, asyncio.Task[None]] = {}
    for event in batch:
        chains[event.key] = asyncio.create_task(after(chains.get(event.key), event, report))
    await asyncio.wait(chains.values())
    await patiently(status.flush, "sending the batch's statuses")


def observe(update: StatusUpdate) -> None:
    """Count a transition as it is reported (once; a re-sent status message is not counted again)."""
    if update.status in FINAL:
        log.info("%s %s", update.status.value, update.command_id)
        metrics.FINISHED.labels(update.command_type, update.status.value).inc()
        metrics.FINAL_SECONDS.labels(update.command_type).observe(
            max(0.0, (utcnow() - update.created_at).total_seconds()))
    elif update.status is CommandStatus.RETRYING:
        metrics.RETRIES.labels(update.command_type).inc()


async def after(previous: asyncio.Task[None] | None, event: Any, report: Report) -> None:
    if previous is not None:
        await asyncio.wait([previous])  # its outcome is its own business; only the order matters here
    origin = Origin(event.message.topic, event.message.partition, event.message.offset)
    try:
        await handle(event.value, event.key, header_map(event.headers), report, origin)
    except Exception as exc:  # noqa: BLE001 — last resort: a crashed command must not stall its partition
        log.exception("handling the message at %s failed", origin)
        if not await has_stored_event(event.value):  # done work is never offered for resubmission
            await dead_letter(event.value, event.key, f"{type(exc).__name__}: {exc}", "crashed", origin)


@app.agent(database_commands)
async def database_agent(stream: Any) -> None:
    await consume(stream)


@app.agent(ontology_commands)
async def ontology_agent(stream: Any) -> None:
    await consume(stream)


@app.agent(instance_commands)
async def instance_agent(stream: Any) -> None:
    await consume(stream)
