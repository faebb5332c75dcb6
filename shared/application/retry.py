"""Retry policy for command execution: transient failures back off and retry, anything else gives up."""
from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
# Whether a failure is the environment's (a store or the broker away: worth retrying as is). The
# adapters know their drivers' errors (shared/adapters/transient.py); this layer imports no driver.
Transient = Callable[[BaseException], bool]

@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with a cap. Transient failures retry until they pass (`transient_attempts`
    None): recording a failure needs the same store that is down, and an outage is not the command's
    fault. Other failures (a poison message, a bug) get `poison_attempts` tries in all."""

    base_delay: float = 0.1
    max_delay: float = 5.0
    factor: float = 2.0
    jitter: float = 0.1  # +/- this fraction, so workers recovering together do not retry in lockstep
    poison_attempts: int = 3
    transient_attempts: int | None = None

    def delay(self, retry: int) -> float:
        """Pause before retry number `retry` (1 for the first retry)."""
        raw = min(self.max_delay, self.base_delay * self.factor ** max(0, retry - 1))
        return max(0.0, raw * (1 + random.uniform(-self.jitter, self.jitter)))  # noqa: S311 — not crypto

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> RetryPolicy:
        """SPICE_RETRY_BASE_DELAY, SPICE_RETRY_MAX_DELAY (seconds), SPICE_RETRY_POISON_ATTEMPTS."""
        return cls(base_delay=float(env.get("SPICE_RETRY_BASE_DELAY", cls.base_delay)),
                   max_delay=float(env.get("SPICE_RETRY_MAX_DELAY", cls.max_delay)),
                   poison_attempts=int(env.get("SPICE_RETRY_POISON_ATTEMPTS", cls.poison_attempts)))


class GaveUp(Exception):
    """Retries are exhausted: `error` is the last failure, after `attempts` attempts in all."""

    def __init__(self, error: BaseException, attempts: int) -> None:
        super().__init__(f"gave up after {attempts} attempt(s): {type(error).__name__}: {error}")
        self.error = error
        self.attempts = attempts


# Called before each retry with (attempt that failed, its error, pause before the next, transient?).
OnRetry = Callable[[int, BaseException, float, bool], Awaitable[None]]


async def retry(attempt: Callable[[], Awaitable[T]], policy: RetryPolicy, is_transient: Transient,
                on_retry: OnRetry | None = None, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> T:
    """Run `attempt` until it returns. Raises GaveUp when the policy's attempts run out; cancellation
    is never retried."""
    attempts = poison = transient = 0
    while True:
        attempts += 1
        try:
            return await attempt()
        except Exception as exc:  # noqa: BLE001 — classified below; CancelledError is not an Exception
            if is_transient(exc):
                transient += 1
                if policy.transient_attempts is not None and transient >= policy.transient_attempts:
                    raise GaveUp(exc, attempts) from exc
                pause = policy.delay(transient)
            else:
                poison += 1
                if poison >= policy.poison_attempts:
                    raise GaveUp(exc, attempts) from exc
                pause = policy.delay(poison)
            if on_retry is not None:
                await on_retry(attempts, exc, pause, is_transient(exc))
            await sleep(pause)
