"""One retry engine for every cloud call (ECS, MNS, Function Compute).

The rule: retry `Throttling*`, `ServiceUnavailable`, `InternalError` and network failures,
with full-jitter backoff, never past the invocation's deadline, and only while the
invocation's shared retry budget lasts (botocore's retry quota: a batch's workers draw on
one budget, so an outage does not multiply retries across hundreds of disks). A write is
repeated only where the service cannot have carried it out (throttled, refused,
unreachable).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reinit.ecs import EcsCallError
from reinit.errors import TRANSIENT_ECS_CODES

# Codes worth another try for a read (INTERFACE.md section 10).
RETRYABLE_CODES = TRANSIENT_ECS_CODES
RETRYABLE_PREFIXES = ("Throttling",)


def retryable_read(err, codes=RETRYABLE_CODES, prefixes=RETRYABLE_PREFIXES) -> bool:
    """A read may be repeated on throttling, a 5xx or a network failure."""
    if err.kind in ("throttled", "network", "unreachable", "server"):
        return True
    return err.code in codes or err.code.startswith(prefixes)


def retryable_write(err) -> bool:
    """A write may be repeated only where the service cannot have carried it out."""
    return err.kind in ("throttled", "unreachable")


def full_jitter(attempt: int, random: Callable[[], float], base: float = 0.5, cap: float = 8.0) -> float:
    """AWS's "full jitter": uniform in [0, min(cap, base * 2**attempt))."""
    return random() * min(cap, base * (2 ** attempt))


class RetryQuota:
    """A budget of retries shared by everything one invocation does (botocore's
    RetryQuotaChecker): a retry costs RETRY_COST (a timeout TIMEOUT_COST), a first-try
    success gives back SUCCESS_REFUND. When it is spent, failures are final at once."""

    CAPACITY, RETRY_COST, TIMEOUT_COST, SUCCESS_REFUND = 500, 5, 10, 1

    def __init__(self, capacity: int = CAPACITY):
        self.capacity = self.available = capacity
        self._lock = threading.Lock()
        self.denied = 0

    def acquire(self, err) -> int:
        """The cost taken for one retry of `err`, or 0 when the budget cannot pay it."""
        cost = self.TIMEOUT_COST if getattr(err, "kind", None) == "network" else self.RETRY_COST
        with self._lock:
            if cost > self.available:
                self.denied += 1
                return 0
            self.available -= cost
            return cost

    def release(self, amount: int) -> None:
        with self._lock:
            self.available = min(self.capacity, self.available + amount)


def _gave_up(err: Exception, why: str) -> None:
    """Notes on an ECS error why it was not retried again (the failure's message says it)."""
    if isinstance(err, EcsCallError):
        err.gave_up = why


@dataclass
class Retrier:
    """Calls a function again after retryable failures, sleeping on the injected clock."""

    clock: Callable[[], float]
    sleep: Callable[[float], None]
    random: Callable[[], float]
    deadline: float  # on `clock`; no retry is started that would end after it
    max_attempts: int = 6
    # Attempts a call may take where every failure so far is Throttling and a pace spaces the
    # calls (a batch: pace.PacedEcs). There a Throttling answer is the pace finding the quota,
    # not a fault: at 100,000 disks, 4 disks in a run failed after six in a row (docs/fleet.md).
    throttled_attempts: int | None = None
    on_retry: Callable[[Any], None] | None = None  # given the error retried (an EcsCallError, a PublishError)
    quota: RetryQuota | None = None
    errors: tuple[type[Exception], ...] = (EcsCallError,)  # what a call may fail with
    base: float = 0.5
    cap: float = 8.0

    def call(self, fn: Callable[[], object], retry_if: Callable[[Any], bool] = retryable_read):
        attempt, spent, throttled = 0, 0, True
        while True:
            began = self.clock()
            try:
                result = fn()
            except self.errors as err:
                attempt += 1
                throttled = throttled and getattr(err, "kind", None) == "throttled"
                limit = self.throttled_attempts if throttled and self.throttled_attempts else self.max_attempts
                delay = full_jitter(attempt, self.random, self.base, self.cap)
                took = self.clock() - began  # a retry that would end past the deadline is not started
                if not retry_if(err):
                    raise
                if attempt >= limit or self.clock() + delay + took >= self.deadline:
                    _gave_up(err, f"{attempt} attempts" if attempt >= limit else "the invocation's deadline too near")
                    raise
                cost = self.quota.acquire(err) if self.quota is not None else 1
                if not cost:
                    _gave_up(err, "the invocation's retry budget spent")
                    raise  # the invocation's retry budget is spent: fail now, not later
                spent += cost
                if self.on_retry:
                    self.on_retry(err)
                self.sleep(delay)
                continue
            if self.quota is not None:
                self.quota.release(spent or RetryQuota.SUCCESS_REFUND)
            return result
