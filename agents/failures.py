"""Retrying a command's execution, and ending it FAILED when retries run out: event, status, dead letter."""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from agents.runtime import open_runtime
from shared import dead_letters, metrics
from shared.adapters.transient import is_transient
from shared.application.archiving import Report
from shared.application.outcome import final_status, status_update
from shared.application.retry import GaveUp, RetryPolicy, retry
from shared.dead_letters import Origin
from shared.domain.commands import Command
from shared.domain.decide import failure
from shared.domain.events import Event
from shared.domain.status import CommandStatus
from shared.ports import DuplicateEvent
from streams.app import settings
from streams.topics import dead_letters as dead_letter_topic

log = logging.getLogger(__name__)
T = TypeVar("T")

POLICY = RetryPolicy.from_env()
# For steps that must not give up on a store outage and have no failure of their own to record.
PATIENT = RetryPolicy(base_delay=POLICY.base_delay, max_delay=POLICY.max_delay, poison_attempts=1)


async def patiently(attempt: Callable[[], Awaitable[T]], what: str) -> T:
    """Retry transient failures (store or broker away) until they pass; anything else raises at once."""
    async def note(attempt_no: int, exc: BaseException, pause: float, transient: bool) -> None:
        log.warning("%s: attempt %d failed (%s: %s), retrying in %.2fs", what, attempt_no,
                    type(exc).__name__, exc, pause)
    try:
        return await retry(attempt, PATIENT, is_transient, note)
    except GaveUp as gave_up:
        raise gave_up.error from None


async def send_dead_letter(raw: Any, key: Any, error: str, *, reason: str, origin: Origin | None = None,
                           attempts: int = 0, command_id: str | None = None) -> None:
    runtime = await open_runtime(settings)
    value = dead_letters.encode(raw, error, reason=reason, key=key, origin=origin, attempts=attempts,
                                command_id=command_id)
    await patiently(lambda: runtime.producer.send_and_wait(dead_letter_topic.get_topic_name(), value,
                                                           key=str(key or "").encode()),
                    f"dead letter for {command_id or key!r}")
    metrics.DEAD_LETTERS.labels(reason).inc()


async def execute_with_retry(command: Command, execute: Callable[[], Awaitable[Event]], report: Report,
                             raw: Any, key: Any, origin: Origin | None) -> Event | None:
    """Run `execute` under the retry policy, each retry shown as RETRYING. When retries run out the
    command ends FAILED: COMMAND_FAILED appended, FAILED status, a copy on the dead-letter topic. The
    event, or None when not even the failure could be recorded (then it is logged and dead-lettered,
    and left unmarked so the reconciliation sweep brings it back)."""
    async def retrying(attempt: int, exc: BaseException, pause: float, transient: bool) -> None:
        kind = "transient failure" if transient else "unexpected error"
        message = f"attempt {attempt} failed ({kind}: {type(exc).__name__}: {exc}); retrying in {pause:.2f}s"
        log.warning("command %s: %s", command.command_id, message, exc_info=not transient)
        try:  # status goes to Kafka, so it is shown even while PostgreSQL is down
            await report(status_update(command, CommandStatus.RETRYING, message))
        except Exception as send_error:  # noqa: BLE001 — the retry goes on regardless
            log.warning("RETRYING status for %s not sent: %s", command.command_id, send_error)

    try:
        return await retry(execute, POLICY, is_transient, retrying)
    except GaveUp as gave_up:
        return await give_up(command, gave_up, report, raw, key, origin)


async def give_up(command: Command, gave_up: GaveUp, report: Report, raw: Any, key: Any,
                  origin: Origin | None) -> Event | None:
    error = gave_up.error
    text = f"{type(error).__name__}: {error}"
    log.error("command %s failed after %d attempt(s): %s", command.command_id, gave_up.attempts, text,
              exc_info=error)
    runtime = await open_runtime(settings)
    event = failure(command, "failed", f"command failed after {gave_up.attempts} attempt(s): {text}",
                    attempts=gave_up.attempts, exception=type(error).__name__)

    async def record() -> Event:
        try:
            stored = await runtime.pipeline.events.append(event, runtime.pipeline.event_topic(command))
        except DuplicateEvent:
            # An event of this command is already stored (the failure came after the append, e.g.
            # while applying it): it stays the command's one event, and the status says what failed.
            stored = (await runtime.pipeline.events.for_command(command.command_id))[0]
        if stored.failed:
            await report(final_status(command, [stored]))
        else:
            await report(status_update(command, CommandStatus.FAILED, event.data["error"]["message"],
                                       error={**event.data["error"], "event_id": str(stored.event_id)}))
        return stored

    stored: Event | None
    try:
        stored = await patiently(record, f"recording the failure of {command.command_id}")
        reason = "failed"
    except Exception as worse:  # noqa: BLE001 — still dead-lettered and logged, never dropped silently
        log.error("could not record the failure of %s: %s", command.command_id, worse, exc_info=worse)
        stored, reason, text = None, "failed_unrecorded", f"{text}; recording the failure: {worse}"
    if stored is not None and not stored.failed:
        # The command's own event is stored: it took effect, only a later step failed. A dead letter would
        # invite a resubmission that runs it again; the unapplied-event sweep writes the document instead.
        log.error("command %s: its event %s is stored; not dead-lettered", command.command_id, stored.event_id)
        return stored
    await send_dead_letter(raw, key, text, reason=reason, origin=origin, attempts=gave_up.attempts,
                           command_id=str(command.command_id))
    return stored
