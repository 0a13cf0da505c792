"""Retries: exponential backoff with full jitter, bounded by the time the function has left.

The rule: retry `Throttling*`, `ServiceUnavailable`, `InternalError` and network failures;
repeat a write only where ECS cannot have carried it out (throttled, refused, unreachable).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reinit.ecs import EcsCallError
from reinit.errors import TRANSIENT_ECS_CODES

# Codes worth another try for a read (INTERFACE.md section 10).
RETRYABLE_CODES = TRANSIENT_ECS_CODES
RETRYABLE_PREFIXES = ("Throttling",)


def retryable_read(err: EcsCallError, codes=RETRYABLE_CODES, prefixes=RETRYABLE_PREFIXES) -> bool:
    """A read may be repeated on throttling, a 5xx or a network failure."""
    if err.kind in ("throttled", "network", "unreachable", "server"):
        return True
    return err.code in codes or err.code.startswith(prefixes)


def retryable_write(err: EcsCallError) -> bool:
    """A write may be repeated only where ECS cannot have carried it out."""
    return err.kind in ("throttled", "unreachable")


def full_jitter(attempt: int, random: Callable[[], float], base: float = 0.5, cap: float = 8.0) -> float:
    """AWS's "full jitter": uniform in [0, min(cap, base * 2**attempt))."""
    return random() * min(cap, base * (2 ** attempt))


@dataclass
class Retrier:
    """Calls a function again after retryable failures, sleeping on the injected clock."""

    clock: Callable[[], float]
    sleep: Callable[[float], None]
    random: Callable[[], float]
    deadline: float  # on `clock`; no retry is started that would end after it
    max_attempts: int = 6
    on_retry: Callable[[EcsCallError], None] | None = None

    def call(self, fn: Callable[[], object], retry_if: Callable[[EcsCallError], bool] = retryable_read):
        attempt = 0
        while True:
            try:
                return fn()
            except EcsCallError as err:
                attempt += 1
                delay = full_jitter(attempt, self.random)
                if not retry_if(err) or attempt >= self.max_attempts or self.clock() + delay >= self.deadline:
                    raise
                if self.on_retry:
                    self.on_retry(err)
                self.sleep(delay)
