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


def test_a_chunk_left_alone_under_a_bucket_keeps_the_quota_after_its_first_throttling():
    """The climb of a chunk left alone ends in a Throttling; the cut starts from what was
    admitted over the last 2 s, not from the average of the whole climb (which cut it to
    about half the quota and started the climb again)."""
    clock = ManualClock()
    faults = Faults(clock)
    faults.set_quota(ACTION, "bucket", QUOTA)
    paces = Paces(clock.now, clock.advance, 10.0, 1 / 3)
    paces.seed(ACTION, QUOTA / 3)
    pacer = paces.get(ACTION)
    while pacer.cuts == 0:  # the climb, to its first Throttling
        drive(pacer, faults, clock, 1)
    assert pacer.known >= 0.9 * QUOTA, pacer.known
    run = drive(pacer, faults, clock, 60 * QUOTA)
    late = [t for t in run["admitted"] if t >= run["elapsed"] - 30.0]
    assert len(late) >= 0.9 * QUOTA * 30.0, len(late) / 30.0
    assert run["throttles"] <= 0.05 * 60 * QUOTA


def test_a_slow_chunk_comes_back_to_its_measured_rate_within_seconds_of_a_cut():
    """Side by side, a chunk held at a fraction of a call a second must not need 20 of its
    own successes (a minute and more) to come back to the rate it measured: a few seconds."""
    clock = ManualClock()
    paces = Paces(clock.now, clock.advance, 10.0, 1 / 3)
    paces.seed(ACTION, 0.5)
    pacer = paces.get(ACTION)
    faults = Faults(clock)  # no quota: every call is admitted, but one
    drive(pacer, faults, clock, 2)
    pacer.throttled(pacer.acquire())
    assert pacer.cuts == 1
    known, start = pacer.known, clock.now()
    drive(pacer, faults, clock, 5)  # of the 20 successes that one invocation's climb takes
    assert clock.now() - start <= 15.0
    assert pacer.rate >= 0.999 * known, (pacer.rate, known)


def test_a_chunk_starved_by_the_others_keeps_a_part_of_its_first_measured_rate():
    """Under a bucket another chunk keeps empty, every call of this one meets Throttling:
    its pace falls to its floor, and the floor is a part of the rate it measured while all
    started side by side (or its start, if less), not a share of half a call a second (0.17/s,
    the chunk left last under the halved bucket)."""
    clock = ManualClock()
    faults = Faults(clock)
    faults.set_quota(ACTION, "bucket", QUOTA)
    paces = Paces(clock.now, clock.advance, 10.0, 1 / 3)
    pacer = paces.get(ACTION)
    while pacer.known is None:  # the start, to its first Throttling
        drive(pacer, faults, clock, 1)
    first = pacer.known
    faults.set_quota(ACTION, "bucket", 0.1, burst=1)  # the others take (almost) everything
    drive(pacer, faults, clock, 20)
    assert pacer.rate >= 0.2 * min(first, 10.0 / 3) - 1e-9 > 0.5, (pacer.rate, first)  # its start: 10/s, a third


def test_one_invocation_keeps_the_floor_and_steps_it_had():
    """Not side by side (share 1): none of the above applies."""
    clock = ManualClock()
    paces = Paces(clock.now, clock.advance, 10.0)
    pacer = paces.get(ACTION)
    faults = Faults(clock)
    faults.set_quota(ACTION, "bucket", QUOTA)
    while pacer.known is None:
        drive(pacer, faults, clock, 1)
    assert pacer.floor == 0.5


def test_side_by_side_under_a_long_window_the_pace_neither_bursts_nor_climbs_faster():
    """Under a 60 s window the first cut comes after a burst, and a window is used up
    whatever the pace: after an empty window lasted seconds, a chunk climbs as one
    invocation does (a climb every 10 s calm emptied each window sooner, cut from the
    burst, 7% of calls throttled), and its floor is not a fifth of that burst (15/s)."""
    clock = ManualClock()
    faults = Faults(clock)
    faults.set_quota(ACTION, "window", 200, window=60.0)  # a third of 600 a minute
    paces = Paces(clock.now, clock.advance, 10.0, 1 / 3)
    pacer = paces.get(ACTION)
    run = drive(pacer, faults, clock, 2000)
    assert run["elapsed"] <= 2000 / 200 * 60 * 1.1, run["elapsed"]
    assert run["throttles"] <= 0.05 * 2000, run["throttles"]
    assert pacer.known <= 1.5 * 200 / 60, pacer.known
    assert pacer.floor <= 0.2 * 10.0 / 3 + 1e-9, pacer.floor
