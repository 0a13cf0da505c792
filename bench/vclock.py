"""Virtual time for threaded code: a discrete-event clock.

`sleep(d)` blocks the calling thread until virtual time reaches now + d. Time never moves
while any thread of the run is working: a scheduler thread moves it to the earliest
wake-up only when every other thread is either asleep on this clock or blocked where it
waits for another thread (a worker pool's queue, a future, a join). So an hour of
throttled fleet reset runs in seconds, and what happens in it does not depend on how
busy the machine is: CPU time costs no virtual time, only sleeps do (the emulated ECS
latency, the pace's spacing, the retry backoff).

How a thread is told to be blocked rather than working: by its current Python frame
(`sys._current_frames`). A thread in `Condition.wait` is blocked only while its waiter
is still queued on the condition: once notified, it counts as working until it sleeps or
blocks again, so a wake-up from another thread is never mistaken for quiet. Quiescence
must also be seen twice, a moment apart, before time moves. What remains is a pool
worker picking up its first task (a C-level queue), which can start a little late.

The run is the thread that made the clock and every thread started after it; threads
that were already running (servers, other tests' leftovers) are not waited for, unless
they sleep on this clock.
"""

from __future__ import annotations

import os
import sys
import threading
import time

_THREADING = os.path.dirname(threading.__file__)
# (file ends with, function): frames where a thread waits for another thread, not working.
_BLOCKED = {
    ("threading.py", "wait"),  # Condition.wait: futures, queues, events
    ("threading.py", "_wait_for_tstate_lock"),  # Thread.join
    ("concurrent/futures/thread.py", "_worker"),  # an idle pool worker: work_queue.get()
}


def _awaiting_request(frame) -> bool:
    """An HTTP server's thread that waits for the next request on a kept-alive connection
    (http.server's handle_one_request reading the request line): nothing to do until a
    client of the run sends one."""
    child = None
    while frame is not None:
        if frame.f_code.co_name == "handle_one_request" and child in ("readline", "readinto"):
            return True
        child, frame = frame.f_code.co_name, frame.f_back
    return False


def _still_waiting(frame) -> bool:
    """A thread in Condition.wait that nobody has notified yet."""
    local = frame.f_locals
    condition, waiter = local.get("self"), local.get("waiter")
    return waiter is not None and waiter in getattr(condition, "_waiters", ())


class VirtualClock:
    def __init__(self, start: float = 1000.0, stall: float | None = None):
        """`stall`: real seconds without quiet after which time moves all the same (tests:
        a thread waiting where this clock cannot see it must not hang the run)."""
        self._now = start
        self.stall = stall
        self._cond = threading.Condition()
        self._sleepers: dict[int, float] = {}  # thread ident -> wake time
        self._gates: dict[int, threading.Lock] = {}  # thread ident -> its gate, held until it is due
        self._stop = False
        self.advances = 0
        me = threading.current_thread()
        self._outsiders = {t for t in threading.enumerate() if t is not me}
        self._scheduler = threading.Thread(target=self._run, name="virtual-clock", daemon=True)
        self._scheduler.start()

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        ident = threading.get_ident()
        gate = threading.Lock()
        gate.acquire()
        with self._cond:
            wake = self._now + max(0.0, seconds)
            self._sleepers[ident] = wake
            if wake > self._now:
                self._gates[ident] = gate
            else:
                gate.release()
            self._cond.notify_all()  # the scheduler: a thread has gone quiet
        # Each sleeper waits on a gate of its own, opened by the scheduler when its time has
        # come: a move of time wakes only the threads that are due, not every sleeper (with
        # hundreds of workers side by side, waking them all at every step cost most of the run).
        gate.acquire()
        with self._cond:
            del self._sleepers[ident]

    advance = sleep  # the emulator's ManualClock interface

    def leave_out_running(self) -> None:
        """Threads running now, other than the caller, are not part of the run (a server
        started after the clock, waiting on its socket)."""
        me = threading.current_thread()
        self._outsiders |= {t for t in threading.enumerate() if t is not me}

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._scheduler.join()

    # -- the scheduler -----------------------------------------------------------------
    def _quiet(self) -> bool:
        """Every thread but this one asleep on the clock (and not due) or blocked. A frame
        chain read while its thread runs can change under the reader (seen once in 3.11: an
        f_back that was a function by then): that reading counts as not quiet, and the
        scheduler looks again, rather than dying and leaving every sleeper asleep."""
        try:
            return self._all_waiting()
        except (AttributeError, ValueError):
            return False

    def _all_waiting(self) -> bool:
        frames = sys._current_frames()
        threads = {t.ident: t for t in threading.enumerate()}
        me = threading.get_ident()
        for ident, frame in frames.items():
            if ident == me:
                continue
            wake = self._sleepers.get(ident)
            if wake is not None:
                if wake > self._now:
                    continue
                return False  # due: woken, not yet running
            thread = threads.get(ident)
            if thread is None or thread in self._outsiders:
                continue  # not part of the run
            name = frame.f_code.co_filename.replace("\\", "/")
            if not any(name.endswith(f) and frame.f_code.co_name == fn for f, fn in _BLOCKED):
                if not _awaiting_request(frame):
                    return False
                continue
            if frame.f_code.co_name == "wait" and not _still_waiting(frame):
                return False
        return True

    def _run(self) -> None:
        moved = time.monotonic()
        while True:
            with self._cond:
                if self._stop:
                    return
                stalled = self.stall is not None and time.monotonic() - moved > self.stall
                if not self._sleepers or not (stalled or self._quiet()):
                    self._cond.wait(0.0005)
                    continue
            time.sleep(0.0001)  # let a thread that was just woken show itself
            with self._cond:
                if self._stop:
                    return
                if self._sleepers and (stalled or self._quiet()):
                    self._now = max(self._now, min(self._sleepers.values()))
                    self.advances += 1
                    moved = time.monotonic()
                    for ident in [i for i in self._gates if self._sleepers[i] <= self._now]:
                        self._gates.pop(ident).release()
