"""The pace of a batch: one Pacer per ECS API, kept by the instance across invocations.

ECS quotas are per account, region and API, and shared with other callers; each API's
Pacer spaces its calls and adapts to Throttling (INTERFACE.md section 11, "Pace").
"""

from __future__ import annotations

import threading
from collections import deque

from reinit.ecs import EcsCallError
from reinit.errors import failed


class PastDeadline(Exception):
    """This call's turn would come after the invocation's deadline: it is not sent."""


class Pacer:
    """One ECS API's pace: calls spaced 1/rate apart, the rate adapted to what ECS admits.

    Like botocore's adaptive limiter, it cuts from a measured rate and climbs back in a
    concave-then-convex curve. Unlike it, it is built for quotas that count in fixed
    windows as well as in token buckets, and for a batch of known work:

    - Start: from `rate` (REINIT_FLEET_RATE, a starting point, not a ceiling), the rate
      doubles every second of successes until the first Throttling. A fresh pace (or one
      idle for IDLE seconds) lets one second's worth of calls go at once, as a full token
      bucket would: a batch's look-ups do not wait for the pace.
    - Cut: on Throttling, the rate becomes BETA times the rate ECS was measured to ADMIT
      since the last cut (at least the last 2 s, at most the last 60 s): in a token bucket
      that is the refill rate plus what the burst gave; over a fixed 60 s window it is
      the window's average, not the burst that emptied it. Calls sent before a cut do
      not cut again.
    - Hold: a Throttling answer to a call sent after the cut, with no success since, is
      not a rate problem but an empty window: nothing is sent for HOLD_FIRST, then twice
      as long at each further Throttling, up to HOLD_MAX, and then ONE call goes (the
      other workers wait for its answer); the first success ends it. A quota used up until
      the minute ends costs one probe every few seconds, not a collapse of the rate, nor
      a Throttling answer to every worker.
    - Climb: back to the measured rate along a concave curve (a steep start, flat near
      it) over RECOVER_SECONDS or RECOVER_CALLS successes, whichever is longer; then
      probe above it, PROBE more a step, a step being at least STEP_SECONDS and
      STEP_CALLS successes. Slow steps for a slow API keep Throttling to a few percent of
      calls; the probe follows a quota that rises.
    - A cap: the rate never climbs above twice the rate calls were really sent at, so an
      API used lightly does not build a rate its callers never tested.
    - Side by side (a chunk of a split batch, `share` < 1; docs/fleet.md): the chunks must
      take up what one of them leaves when it ends, at once, whatever rate it was left at.
      So a step waits for the pace's share of STEP_CALLS, the climb back after a cut lasts
      RECOVER_SHARED seconds at most, and after CALM_SECONDS without Throttling (the
      others may have finished) a step comes every STEP_SECONDS and, after CALM of them,
      the steps grow; the cut that ends such a climb starts from what was admitted over
      the last LOOKBACK_MIN, not from the average of the climb. Its rate never falls below
      FLOOR_SHARED of what it measured at its first cut, when all started side by side (nor
      of its start: under a 60 s window that cut comes after a burst): a chunk starved by
      the others for minutes is the one left last. None of this for CALM_LONG after a
      hold of HOLD_LONG (a long window: it is used up whatever the pace).
    """

    BETA = 0.9
    START_GROWTH = 2.0  # a second of successes multiplies the starting rate by this
    LOOKBACK_MIN, LOOKBACK_MAX = 2.0, 60.0
    HOLD_FIRST, HOLD_MAX = 0.25, 4.0
    RECOVER_SECONDS, RECOVER_CALLS = 1.0, 20
    PROBE, STEP_SECONDS, STEP_CALLS = 0.05, 1.0, 20
    CALM_SECONDS, CALM = 10.0, 6  # side by side: calm for this long, and this many steps, before steps grow
    RECOVER_SHARED = 5.0  # side by side: the climb back to the measured rate takes this long at most
    HOLD_LONG, CALM_LONG = 2.0, 120.0  # side by side, after a hold this long: as one invocation, calm after CALM_LONG
    FLOOR_SHARED = 0.2  # side by side: the floor, a part of the rate measured at the first cut
    IDLE = 10.0  # a gap this long between calls starts the measurements afresh
    PROBE_WAIT = 60.0  # real seconds a call waits for a probe's answer at most

    def __init__(self, clock, sleep, rate: float, floor: float = 0.5, share: float = 1.0):
        self.clock, self.sleep = clock, sleep
        self.share = share
        self.shared = share < 1.0  # one of several invocations side by side (docs/fleet.md)
        self.start, self.floor = rate, min(floor, rate)
        self.rate = rate
        self.known: float | None = None  # the admitted rate measured at the last cut
        self.throttles = 0
        self.cuts = 0
        self._cond = threading.Condition()
        self._next = clock()
        self._probe_out = False
        self._credit = rate
        self._active_since = clock()
        self._generation = 0  # bumped at every cut and hold: older calls' answers are stale
        self._cut_generation = 0
        self._cut_at = self._throttled_at = clock()
        self._emptied_at: float | None = None  # the last hold that grew past HOLD_LONG
        self._ok_since_cut = False
        self._hold = 0.0
        self._since_cut = 0  # successes since the cut
        self._step, self._step_at, self._step_calls = 0, clock(), 0
        self._calm_from: int | None = None  # the step at which the steps since the cut became calm
        self._climbed = False  # calm steps have grown since the cut
        self._sent: deque[float] = deque()  # send times, the last second or so
        self._admitted: deque[float] = deque()  # success times, the last LOOKBACK_MAX seconds

    # -- sending ---------------------------------------------------------------------
    def acquire(self, deadline: float | None = None) -> int:
        """Wait for this call's turn; return the generation it was sent in. A turn that
        would come after `deadline` is not taken (PastDeadline, and nothing is reserved)."""
        while True:
            with self._cond:
                while self._probe_out:  # holding: one call at a time finds out if the window is open
                    if not self._cond.wait(self.PROBE_WAIT):
                        self._probe_out = False  # its answer never came: do not wait for ever
                now = self.clock()
                if self._sent and now - self._sent[-1] > self.IDLE:
                    self._fresh(now)
                if deadline is not None and max(now, self._next if self._credit < 1 or self._hold else now) > deadline:
                    raise PastDeadline(deadline)
                if self._credit >= 1 and self._hold == 0:
                    self._credit -= 1
                    at = now
                    self._next = max(self._next, now + 1.0 / self.rate)
                else:
                    at = max(now, self._next)
                    self._next = at + 1.0 / self.rate
                generation = self._generation
                if at <= now:
                    return self._send(now, generation)
            self.sleep(at - now)
            with self._cond:
                if generation == self._generation and not self._probe_out:  # no cut or hold while it waited
                    return self._send(self.clock(), generation)
            # the slot was given at a pace that no longer holds: take a new one

    def _send(self, now: float, generation: int) -> int:
        if self._hold > 0:
            self._probe_out = True
        if not self._sent:
            self._active_since = now
        self._sent.append(now)
        while self._sent and self._sent[0] < now - self._span():
            self._sent.popleft()
        return generation

    def _fresh(self, now: float) -> None:
        """After a pause (or at first), measurements start again and a second's worth of
        calls may go at once, as a token bucket that has filled up allows."""
        self._sent.clear()
        self._admitted.clear()
        self._credit = self.rate
        self._active_since = now

    def _span(self) -> float:
        return max(1.0, 10.0 / self.rate)

    def measured(self) -> float:
        """Calls a second really sent, over the last second or so (0 before the first)."""
        with self._cond:
            return self._measured(self.clock())

    def _measured(self, now: float) -> float:
        span = self._span()
        recent = [t for t in self._sent if t >= now - span]
        if len(recent) < 2:
            return 0.0
        return len(recent) / max(now - recent[0], span / 2)

    def _admitted_rate(self, now: float, lookback: float) -> float:
        while self._admitted and self._admitted[0] < now - self.LOOKBACK_MAX:
            self._admitted.popleft()
        since = now - lookback
        count = sum(1 for t in self._admitted if t >= since)
        return count / max(1.0, now - max(since, self._active_since))

    # -- answers ---------------------------------------------------------------------
    def throttled(self, generation: int) -> None:
        with self._cond:
            self.throttles += 1
            self._throttled_at = self.clock()
            self._answered()
            if generation != self._generation:
                return  # sent before the last cut or hold: that one already answered it
            now = self.clock()
            self._generation += 1
            if self._ok_since_cut or self.known is None:
                self._cut(now)
            else:  # nothing got through since the cut: the window is empty, wait it out
                self._hold = self.HOLD_FIRST if self._hold == 0 else min(self.HOLD_MAX, 2 * self._hold)
                if self._hold >= self.HOLD_LONG:
                    self._emptied_at = now
                self._next = now + self._hold  # slots given before it are void
                self._credit = 0

    def failed(self, generation: int | None = None) -> None:
        """Any other answer (or none): it says nothing about the quota."""
        with self._cond:
            self._answered()

    def _answered(self) -> None:
        if self._probe_out:
            self._probe_out = False
            self._next = min(self._next, self.clock())
            self._cond.notify_all()

    def _cut(self, now: float) -> None:
        slow_start = self.known is None
        lookback = min(self.LOOKBACK_MAX, max(self.LOOKBACK_MIN, now - self._cut_at))
        if slow_start or self._climbed:  # a climb's average is far below what it reached
            lookback = self.LOOKBACK_MIN
        admitted = self._admitted_rate(now, lookback)
        self.known = max(self.floor, min(self.rate, admitted) if admitted > 0 else self.rate * self.BETA)
        if slow_start and self.shared:  # not above the start: a long window's first cut is a burst
            self.floor = max(self.floor, self.FLOOR_SHARED * min(self.start, self.known))
        self.rate = max(self.floor, self.known * self.BETA)
        self.cuts += 1
        self._cut_generation, self._cut_at = self._generation, now
        self._ok_since_cut, self._hold, self._since_cut = False, 0.0, 0
        self._step, self._step_at, self._step_calls = 0, now, 0
        self._calm_from, self._climbed = None, False
        self._next = now + 1.0 / self.rate
        self._credit = 0

    def succeeded(self, generation: int | None = None) -> None:
        with self._cond:
            now = self.clock()
            self._admitted.append(now)
            self._answered()
            if generation is not None and generation < self._cut_generation:
                return  # sent before the cut: says nothing about the new rate
            self._ok_since_cut, self._hold = True, 0.0
            self._grow(now)

    def _grow(self, now: float) -> None:
        cap = max(self.rate, self.start, 2 * self._measured(now))
        if self.known is None:
            rate = self.rate * self.START_GROWTH ** (1.0 / self.rate)
        else:
            self._since_cut += 1
            done = self._since_cut / max(self.RECOVER_CALLS, self.known * self.RECOVER_SECONDS)
            if self.shared and not self._long_window(now):
                done = max(done, (now - self._cut_at) / self.RECOVER_SHARED)
            if done < 1.0:
                rate = self.known * (1.0 - (1.0 - self.BETA) * (1.0 - done) ** 3)
                self._step_at = now
            else:
                rate = self.known * (1.0 + self.PROBE) ** self._probe_steps(now)
        self.rate = max(self.floor, min(rate, cap))

    def _long_window(self, now: float) -> bool:
        """An empty window lasted seconds lately: a long window, which the chunks use up
        whatever their pace, and where a faster climb only empties it sooner."""
        return self._emptied_at is not None and now - self._emptied_at < self.CALM_LONG

    def _probe_steps(self, now: float) -> float:
        """The probe's steps above the measured rate, one more counted at this success."""
        self._step_calls += 1
        # Side by side and CALM_SECONDS without a Throttling: the others may have finished,
        # and a chunk left alone at a small share must take up the quota at once, so a step
        # comes every STEP_SECONDS however few its calls, and after CALM of them they grow.
        long_window = self._long_window(now)
        quiet = now - max(self._cut_at, self._throttled_at)
        calm = self.shared and quiet >= (self.CALM_LONG if long_window else self.CALM_SECONDS)
        calls = self.STEP_CALLS * (1.0 if long_window else self.share)  # side by side, together as many as one
        if now - self._step_at >= self.STEP_SECONDS and (self._step_calls >= calls or calm):
            self._step, self._step_at, self._step_calls = self._step + 1, now, 0
        late = 0
        if not calm:
            self._calm_from = None
        else:
            if self._calm_from is None:
                self._calm_from = self._step
            late = max(0, self._step - self._calm_from - self.CALM)
        self._climbed = self._climbed or late > 0
        return self._step + late * (late + 1) / 2


class PacedEcs:
    """EcsApi with every call paced by its API's Pacer."""

    def __init__(self, ecs, paces: Paces, deadline: float | None = None):
        self._ecs = ecs
        self.paces = paces
        self.deadline = deadline  # no call is sent after it (INTERFACE.md section 13.5)
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
        try:
            generation = pacer.acquire(self.deadline)
        except PastDeadline:
            raise failed("WaitTimeout", f"{action} was not sent: at the pace ECS allows, it would have gone after "
                         "this invocation's deadline.", retryable=True) from None
        try:
            result = self._ecs.call(action, query)
        except EcsCallError as err:
            if err.kind == "throttled":
                pacer.throttled(generation)
            else:
                pacer.failed(generation)
            raise
        except BaseException:
            pacer.failed(generation)
            raise
        pacer.succeeded(generation)
        return result

    # The typed calls of EcsApi, routed through `call` above.
    def __getattr__(self, name):
        method = getattr(type(self._ecs), name)
        return lambda *a, **kw: method(self, *a, **kw)


class Paces:
    """Every API's Pacer for one (region, endpoint, credentials' account): a warm instance
    keeps what it learned, so the next batch starts at the pace the last one found.

    `share`: the part of the quota this invocation may count on, 1 / the chunks of a split
    batch that Function Compute runs side by side (docs/fleet.md). A share scales the start
    and the floor, so that the chunks together start where one invocation would, and
    together never sit above a small quota at their floors."""

    def __init__(self, clock, sleep, rate: float, share: float = 1.0):
        self.clock, self.sleep, self.rate, self.share = clock, sleep, rate, share
        self.pacers: dict[str, Pacer] = {}
        self._lock = threading.Lock()

    def get(self, action: str) -> Pacer:
        with self._lock:
            if action not in self.pacers:
                self.pacers[action] = Pacer(self.clock, self.sleep, self.rate * self.share, 0.5 * self.share, self.share)
            return self.pacers[action]

    def seed(self, action: str, learned: float) -> None:
        """Start `action` at a rate another invocation measured (a chunk's Pace): as if it had
        been measured here, so the pace neither starts slowly nor doubles past it. A pace
        this instance has already used is left as it learned it."""
        with self._lock:
            if action in self.pacers and self.pacers[action]._sent:
                return
            floor = min(learned, 0.5 * self.share)
            if self.share < 1.0:
                floor = max(floor, Pacer.FLOOR_SHARED * min(learned, self.rate * self.share))
            pacer = Pacer(self.clock, self.sleep, learned, floor, self.share)
            pacer.known = learned
            self.pacers[action] = pacer

    def throttles(self) -> int:
        with self._lock:
            return sum(p.throttles for p in self.pacers.values())
