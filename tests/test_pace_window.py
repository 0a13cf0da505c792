"""The pace side by side (issue 23, docs/fleet.md): the chunks of a split batch each pace
at their share of the quota, and the one left last must take up the whole quota as fast
as one invocation would. A fake clock throughout (ManualClock): nothing sleeps for real.

Found by the scale bench: against a fixed 1 s window of 20 calls, 10,000 disks in three
chunks took 1.10 to 1.16 times the limit, most of it at the end, where the last chunk,
alone at its share of the quota, waited for 20 successes of its own before each 5% step
(a step every 3 s, where one invocation at the quota takes one every second). Under a
fixed window a second spent under the quota is lost for good.
"""

from __future__ import annotations

from emulator.clock import ManualClock
from emulator.faults import Faults
from reinit.pace import Paces
from tests.test_pace import ACTION, drive

QUOTA = 20


def left_alone(share: float, seconds: float) -> float:
    """A chunk's pace that learned its share of a fixed 1 s window of QUOTA calls while the
    others ran (Paces.seed, as a hop is seeded), now alone against it: the highest rate it
    reaches within `seconds`, before its first Throttling."""
    clock = ManualClock()
    faults = Faults(clock)
    faults.set_quota(ACTION, "window", QUOTA, window=1.0)
    paces = Paces(clock.now, clock.advance, 10.0, share)
    paces.seed(ACTION, QUOTA * share)
    pacer = paces.get(ACTION)
    start, best = clock.now(), pacer.rate
    while clock.now() - start < seconds and pacer.throttles == 0:
        best = max(best, pacer.rate)
        drive(pacer, faults, clock, 1)
    return best


def test_the_last_chunk_alone_climbs_to_the_quota_as_fast_as_one_invocation():
    assert left_alone(1.0, 10.0) == QUOTA  # one invocation seeded at the quota: nothing to climb
    # From a third of the quota a 5% step a second is 23 steps: within 40 s it could be
    # there (a step every 20 of its own successes leaves it at 16/s).
    rate = left_alone(1 / 3, 40.0)
    assert rate >= 0.9 * QUOTA, rate


def test_a_chunk_side_by_side_still_takes_a_step_a_second_at_most():
    """The climb is faster in calls, not in time: a step waits STEP_SECONDS however many
    calls, so the chunks together probe no faster than one invocation."""
    clock = ManualClock()
    paces = Paces(clock.now, clock.advance, 10.0, 1 / 3)
    paces.seed(ACTION, 200.0)  # far below the (absent) quota: nothing throttles
    pacer = paces.get(ACTION)
    faults = Faults(clock)
    drive(pacer, faults, clock, 200)  # the climb back to what it learned (RECOVER)
    start, rate = clock.now(), pacer.rate
    drive(pacer, faults, clock, 2000)
    steps = (clock.now() - start) / pacer.STEP_SECONDS
    assert pacer.rate <= rate * (1 + pacer.PROBE) ** (steps + 1)


def test_a_long_window_found_empty_still_comes_back_to_its_average():
    """A chunk's pace against a 60 s window still comes back to the average it was admitted
    over the minute, not to the burst that emptied the window."""
    clock = ManualClock()
    faults = Faults(clock)
    start = clock.now()
    faults.set_quota(ACTION, "window", 600, window=60.0)
    paces = Paces(clock.now, clock.advance, 10.0)
    paces.seed(ACTION, 10.0)  # the window's average
    pacer = paces.get(ACTION)
    run = drive(pacer, faults, clock, 1500)  # two and a half windows
    assert run["elapsed"] <= 60 * 2 + 60 * 1.1, run["elapsed"]
    assert pacer.known <= 1.5 * 10.0, pacer.known
    assert run["throttles"] <= 0.05 * 1500
    assert clock.now() - start == run["elapsed"]
