"""Faults on demand: injected errors, latency, and per-API quotas (throttling).

`when` says where an injected error strikes:
- `before`: ECS answers the error and does nothing (a refusal);
- `after`: ECS carries the action out, then answers the error (an ambiguous 5xx);
- `drop`: the connection is closed before the action runs;
- `drop_after`: the action runs, then the connection is closed without an answer.

ECS quotas are per account, region and API. A quota here is per API, in one of the forms
the function's pace must cope with (INTERFACE.md section 11, "Pace"):
- `bucket`: a token bucket: `limit` calls a second, bursts of up to `burst` calls
  (default: one second's worth);
- `window`: fixed windows of `window` seconds (1 s, 60 s...), `limit` calls in each,
  counted from `origin` (default: when the quota was set), as a per-minute quota counts.
A quota can be changed while a batch runs: at once (`set_quota` again) or at a set time
on the clock (`at=`).
"""

from __future__ import annotations

import math
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


@dataclass
class Quota:
    """One API's quota and where it stands."""

    kind: str  # "bucket" or "window"
    limit: float  # bucket: calls a second; window: calls a window
    window: float = 1.0  # seconds (window only)
    burst: float = 0.0  # bucket capacity (bucket only)
    origin: float = 0.0  # windows are counted from here (window only)
    tokens: float = 0.0  # bucket: tokens left at `at`
    at: float = 0.0
    index: int = -1  # window: which window `used` counts
    used: int = 0

    def admit(self, now: float) -> bool:
        if self.kind == "bucket":
            self.tokens = min(self.burst, self.tokens + max(0.0, now - self.at) * self.limit)
            self.at = now
            if self.tokens < 1.0:
                return False
            self.tokens -= 1.0
            return True
        index = math.floor((now - self.origin) / self.window)
        if index != self.index:
            self.index, self.used = index, 0
        if self.used >= self.limit:
            return False
        self.used += 1
        return True


class Faults:
    def __init__(self, clock):
        self.clock = clock
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._latency: dict[str, float] = {}
        self._quotas: dict[str, Quota] = {}
        self._changes: list[tuple[float, str, dict]] = []  # (at, action, set_quota's arguments)
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
        """A token bucket of `per_second` calls a second (bursts of one second's worth)."""
        self.set_quota(action, "bucket", per_second)

    def set_quota(self, action: str, kind: str = "bucket", limit: float = 1.0, window: float = 1.0,
                  burst: float | None = None, origin: float | None = None, at: float | None = None,
                  after: float | None = None) -> None:
        """Set (or change) one API's quota; `at`: from that time on the clock, `after`: that
        many seconds from now, else at once. A bucket changed mid-run keeps its tokens (up
        to the new burst); a window changed mid-run keeps the calls it has counted."""
        if after is not None:
            at = self.clock.now() + after
        if kind not in ("bucket", "window"):
            raise ValueError(f"unknown quota kind: {kind}")
        if limit <= 0 or window <= 0 or (burst is not None and burst < 1):
            raise ValueError("a quota's limit, window and burst must be positive")
        spec = {"kind": kind, "limit": limit, "window": window, "burst": burst, "origin": origin}
        with self._lock:
            if at is not None and at > self.clock.now():
                self._changes.append((at, action, spec))
                self._changes.sort(key=lambda c: c[0])
                return
            self._apply(action, spec, self.clock.now())

    def quota(self, action: str) -> Quota | None:
        with self._lock:
            self._apply_due(self.clock.now())
            return self._quotas.get(action)

    def _apply(self, action: str, spec: dict, now: float) -> None:
        old = self._quotas.get(action)
        kind, limit = spec["kind"], spec["limit"]
        burst = spec["burst"] if spec["burst"] is not None else max(1.0, limit)
        quota = Quota(kind, limit, spec["window"], burst, now if spec["origin"] is None else spec["origin"],
                      tokens=burst, at=now)
        if old is not None and old.kind == kind == "bucket":
            old.admit(now)  # bring its tokens up to now
            quota.tokens = min(burst, old.tokens)
        if old is not None and old.kind == kind == "window" and spec["origin"] is None:
            quota.origin, quota.index, quota.used = old.origin, old.index, old.used
        self._quotas[action] = quota

    def _apply_due(self, now: float) -> None:
        while self._changes and self._changes[0][0] <= now:
            at, action, spec = self._changes.pop(0)
            self._apply(action, spec, at)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._latency.clear()
            self._quotas.clear()
            self._changes.clear()
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
        """One call against the API's quota, if it has one. False: throttled."""
        with self._lock:
            now = self.clock.now()
            self._apply_due(now)
            quota = self._quotas.get(action)
            if quota is None or quota.admit(now):
                return True
            self.throttled[action] = self.throttled.get(action, 0) + 1
            return False
