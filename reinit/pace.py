"""The pace of a batch: one Pacer per ECS API, kept by the instance across invocations.

ECS quotas are per account, region and API, and shared with other callers; each API's
Pacer spaces its calls and adapts to Throttling (INTERFACE.md section 11, "Pace").
"""

from __future__ import annotations

import threading

from reinit.ecs import EcsCallError


class Pacer:
    """One API's pace: calls spaced 1/rate apart. On Throttling the rate drops by a third,
    and the ceiling it climbs back to (2% of it a success) becomes 90% of the rate that was
    throttled, so the pace settles just under the real quota instead of probing it again.
    Calls already in flight when the rate was cut do not cut it again.

    ECS throttles per API, per region, per minute; each API gets its own Pacer.
    """

    def __init__(self, clock, sleep, rate: float, floor: float = 0.5):
        self.clock, self.sleep = clock, sleep
        self.rate, self.floor, self.ceiling = rate, min(floor, rate), rate
        self._next = clock()
        self._lock = threading.Lock()
        self._generation = 0  # bumped at every cut
        self.throttles = 0

    def acquire(self) -> int:
        """Wait for this call's turn; return the generation it was sent in."""
        with self._lock:
            now = self.clock()
            at = max(now, self._next)
            self._next = at + 1.0 / self.rate
            generation = self._generation
        if at > now:
            self.sleep(at - now)
        return generation

    def throttled(self, generation: int) -> None:
        with self._lock:
            self.throttles += 1
            if generation != self._generation:
                return  # sent before the last cut: that cut already answered it
            self._generation += 1
            self.ceiling = max(self.floor, min(self.ceiling, self.rate * 0.9))
            self.rate = max(self.floor, self.rate * 2 / 3)

    def succeeded(self) -> None:
        with self._lock:
            self.rate = min(self.ceiling, self.rate + self.ceiling * 0.02)


class PacedEcs:
    """EcsApi with every call paced by its API's Pacer."""

    def __init__(self, ecs, paces: Paces):
        self._ecs = ecs
        self.paces = paces
        self.region = ecs.region
        self._throttles_before = paces.throttles()

    @property
    def throttles(self) -> int:
        """Throttling answers seen through this wrapper's lifetime (all APIs)."""
        return self.paces.throttles() - self._throttles_before

    def _pacer(self, action: str) -> Pacer:
        return self.paces.get(action)

    def call(self, action: str, query: dict) -> dict:
        pacer = self._pacer(action)
        generation = pacer.acquire()
        try:
            result = self._ecs.call(action, query)
        except EcsCallError as err:
            if err.kind == "throttled":
                pacer.throttled(generation)
            raise
        pacer.succeeded()
        return result

    # The typed calls of EcsApi, routed through `call` above.
    def __getattr__(self, name):
        method = getattr(type(self._ecs), name)
        return lambda *a, **kw: method(self, *a, **kw)


class Paces:
    """Every API's Pacer for one (region, endpoint, credentials' account): a warm instance
    keeps what it learned, so the next batch starts at the pace the last one found."""

    def __init__(self, clock, sleep, rate: float):
        self.clock, self.sleep, self.rate = clock, sleep, rate
        self.pacers: dict[str, Pacer] = {}
        self._lock = threading.Lock()

    def get(self, action: str) -> Pacer:
        with self._lock:
            if action not in self.pacers:
                self.pacers[action] = Pacer(self.clock, self.sleep, self.rate)
            return self.pacers[action]

    def throttles(self) -> int:
        with self._lock:
            return sum(p.throttles for p in self.pacers.values())
