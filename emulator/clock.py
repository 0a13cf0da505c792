"""Clocks for the emulator: real time for `python -m emulator`, manual time for tests.

Cloud state moves with the clock (an instance takes `stop` seconds to stop...). Tests
give the emulator and the function the same ManualClock, so nothing sleeps for real.
"""

import threading
import time


class RealClock:
    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ManualClock:
    """Time that moves only when someone sleeps on it (or calls advance)."""

    def __init__(self, start: float = 1000.0):
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += max(0.0, seconds)

    sleep = advance
