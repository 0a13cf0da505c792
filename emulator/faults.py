"""Faults on demand: injected errors, latency, and per-API throttling.

`when` says where an injected error strikes:
- `before`: ECS answers the error and does nothing (a refusal);
- `after`: ECS carries the action out, then answers the error (an ambiguous 5xx);
- `drop`: the connection is closed before the action runs;
- `drop_after`: the action runs, then the connection is closed without an answer.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class Fault:
    action: str
    code: str
    status: int
    message: str
    times: int
    when: str = "before"
    skip: int = 0  # let this many matching calls through first


class Faults:
    def __init__(self, clock):
        self.clock = clock
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._latency: dict[str, float] = {}
        self._quota: dict[str, float] = {}  # action -> calls per second
        self._buckets: dict[str, tuple[float, float]] = {}  # action -> (tokens, at)
        self.throttled: dict[str, int] = {}

    def inject(self, action: str, code: str = "ServiceUnavailable", status: int = 503,
               message: str | None = None, times: int = 1, when: str = "before", skip: int = 0) -> None:
        if when not in ("before", "after", "drop", "drop_after"):
            raise ValueError(f"unknown fault point: {when}")
        with self._lock:
            self._faults.append(Fault(action, code, status, message or f"Injected fault: {code}", times, when, skip))

    def set_latency(self, seconds: float, action: str = "*") -> None:
        self._latency[action] = seconds

    def throttle(self, action: str, per_second: float) -> None:
        with self._lock:
            self._quota[action] = per_second
            self._buckets[action] = (per_second, self.clock.now())

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._latency.clear()
            self._quota.clear()
            self._buckets.clear()
            self.throttled.clear()

    def latency(self, action: str) -> float:
        return self._latency.get(action, self._latency.get("*", 0.0))

    def take(self, action: str) -> Fault | None:
        """The next injected fault for this action, used up once."""
        with self._lock:
            for fault in self._faults:
                if fault.action in (action, "*") and fault.times > 0:
                    if fault.skip > 0:
                        fault.skip -= 1
                        return None
                    fault.times -= 1
                    return fault
        return None

    def admit(self, action: str) -> bool:
        """A token bucket per API (capacity: one second of quota). False: throttled."""
        with self._lock:
            rate = self._quota.get(action)
            if rate is None:
                return True
            tokens, at = self._buckets[action]
            now = self.clock.now()
            tokens = min(rate, tokens + (now - at) * rate)
            if tokens < 1.0:
                self._buckets[action] = (tokens, now)
                self.throttled[action] = self.throttled.get(action, 0) + 1
                return False
            self._buckets[action] = (tokens - 1.0, now)
            return True
