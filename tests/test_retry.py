"""The retry policy alone: which errors are transient, backoff with a cap, giving up on poison."""
from __future__ import annotations

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError

from shared.adapters.transient import is_transient
from shared.application.retry import GaveUp, RetryPolicy, retry


@pytest.mark.parametrize("exc", [ConnectionRefusedError(), OSError(), TimeoutError(),
                                 asyncpg.ConnectionDoesNotExistError("gone"), asyncpg.AdminShutdownError("bye"),
                                 asyncpg.CannotConnectNowError("starting"),
                                 asyncpg.InterfaceError("connection is closed"), KafkaConnectionError()])
def test_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [ValueError(), KeyError(), RuntimeError(), asyncpg.UniqueViolationError("dup"),
                                 asyncpg.InterfaceError("cannot perform operation: another operation is in progress")])
def test_not_transient(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_backoff_grows_to_the_cap() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=1.0, jitter=0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


async def test_transient_failures_retry_until_they_pass() -> None:
    failures = [OSError("down")] * 6
    seen: list[tuple[int, bool]] = []
    pauses: list[float] = []

    async def attempt() -> str:
        if failures:
            raise failures.pop()
        return "done"

    async def on_retry(n: int, exc: BaseException, pause: float, transient: bool) -> None:
        seen.append((n, transient))

    async def sleep(pause: float) -> None:
        pauses.append(pause)

    policy = RetryPolicy(base_delay=0.1, max_delay=0.5, jitter=0, poison_attempts=1)
    assert await retry(attempt, policy, is_transient, on_retry, sleep) == "done"
    assert seen == [(n, True) for n in range(1, 7)]
    assert pauses == [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]


async def test_poison_gives_up_after_its_attempts() -> None:
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("bad message")

    async def sleep(pause: float) -> None:
        pass

    with pytest.raises(GaveUp) as gave_up:
        await retry(attempt, RetryPolicy(poison_attempts=3), is_transient, sleep=sleep)
    assert calls == 3 and gave_up.value.attempts == 3 and isinstance(gave_up.value.error, ValueError)
