"""The pace (INTERFACE.md section 11, "Pace") and the emulator's ECS quotas it is measured
against. A fake clock throughout: the pace's sleeps move time, nothing sleeps for real.

The convergence tests drive one Pacer with one caller that sends each call until ECS
admits it (a throttled call is sent again), as a batch worker does; the limits are the
benchmark's (bench/fleet.py), with the margins the issue sets.
"""

from __future__ import annotations

import pytest

from emulator.clock import ManualClock
from emulator.faults import Faults
from reinit.ecs import EcsCallError
from reinit.pace import PacedEcs, Pacer, Paces

ACTION = "ReInitDisk"
LATENCY = 0.005


def drive(pacer: Pacer, faults: Faults, clock: ManualClock, n: int, action: str = ACTION) -> dict:
    """Get n calls admitted, one at a time. Returns the time taken, Throttling answers,
    the most times one call was throttled, and the admitted calls' times."""
    start = clock.now()
    throttles, longest, admitted = 0, 0, []
    for _ in range(n):
        tries = 0
        while True:
            generation = pacer.acquire()
            clock.advance(LATENCY)
            if faults.admit(action):
                pacer.succeeded(generation)
                admitted.append(clock.now() - start)
                break
            pacer.throttled(generation)
            throttles, tries = throttles + 1, tries + 1
        longest = max(longest, tries)
    return {"elapsed": clock.now() - start, "throttles": throttles, "longest": longest, "admitted": admitted}


@pytest.fixture
def clock():
    return ManualClock()


def pacer_for(clock: ManualClock, rate: float = 10.0) -> Pacer:
    return Pacer(clock.now, clock.advance, rate)


# -- the emulator's quotas ------------------------------------------------------------------
def admitted_in(faults: Faults, clock: ManualClock, seconds: float, every: float, action: str = ACTION) -> int:
    count = 0
    for _ in range(round(seconds / every)):
        count += faults.admit(action)
        clock.advance(every)
    return count


def test_a_token_bucket_admits_its_rate_after_a_burst_of_one_seconds_worth(clock):
    faults = Faults(clock)
    faults.set_quota(ACTION, "bucket", 20)
    assert sum(faults.admit(ACTION) for _ in range(25)) == 20  # the burst, at one instant
    assert faults.throttled[ACTION] == 5
    assert admitted_in(faults, clock, 10.0, 0.01) == pytest.approx(200, abs=2)  # then 20 a second
    assert faults.admit("DescribeDisks")  # per API: others are not limited


def test_throttle_is_a_token_bucket_as_before(clock):
    faults = Faults(clock)
    faults.throttle(ACTION, per_second=2)
    assert [faults.admit(ACTION) for _ in range(3)] == [True, True, False]
    clock.advance(0.5)
    assert faults.admit(ACTION) and not faults.admit(ACTION)


def test_a_bucket_burst_can_be_set_apart_from_its_rate(clock):
    faults = Faults(clock)
    faults.set_quota(ACTION, "bucket", 5, burst=1)
    assert [faults.admit(ACTION) for _ in range(2)] == [True, False]
    clock.advance(0.2)
    assert faults.admit(ACTION)


def test_a_fixed_one_second_window_admits_its_limit_in_each_window(clock):
    faults = Faults(clock)
    faults.set_quota(ACTION, "window", 20, window=1.0)
    assert sum(faults.admit(ACTION) for _ in range(30)) == 20
    clock.advance(0.99)
    assert not faults.admit(ACTION)  # still the same window
    clock.advance(0.01)
    assert sum(faults.admit(ACTION) for _ in range(30)) == 20  # a new window
    clock.advance(0.5)
    assert admitted_in(faults, clock, 5.0, 0.001) == 100  # the rest of this one, four more, half of the next


def test_a_fixed_sixty_second_window_punishes_a_burst_until_the_minute_ends(clock):
    faults = Faults(clock)
    start = clock.now()
    faults.set_quota(ACTION, "window", 600, window=60.0)
    assert admitted_in(faults, clock, 30.0, 0.02) == 600  # 1,500 tried at 50/s: 600 got through
    assert admitted_in(faults, clock, 29.0, 0.1) == 0  # nothing for the rest of the minute
    clock.advance(start + 59.99 - clock.now())
    assert not faults.admit(ACTION)
    clock.advance(0.01)
    assert faults.admit(ACTION)


def test_a_quota_can_change_while_calls_run(clock):
    faults = Faults(clock)
    faults.set_quota(ACTION, "bucket", 20)
    faults.set_quota(ACTION, "bucket", 10, after=10)
    assert admitted_in(faults, clock, 9.99, 0.01) == pytest.approx(20 + 200, abs=2)
    assert faults.quota(ACTION).limit == 20
    clock.advance(0.02)
    assert faults.quota(ACTION).limit == 10
    assert admitted_in(faults, clock, 10.0, 0.01) == pytest.approx(100, abs=2)
    faults.set_quota(ACTION, "window", 3, window=1.0)  # at once
    assert sum(faults.admit(ACTION) for _ in range(5)) == 3
    faults.clear()
    assert all(faults.admit(ACTION) for _ in range(100)) and faults.quota(ACTION) is None


def test_a_quota_must_make_sense(clock):
    faults = Faults(clock)
    for bad in ({"kind": "leaky"}, {"limit": 0}, {"window": 0}, {"burst": 0.5}):
        with pytest.raises(ValueError):
            faults.set_quota(ACTION, **bad)


# -- convergence ---------------------------------------------------------------------------
N = 1000


def check(run: dict, limit_seconds: float, factor: float) -> None:
    calls = N + run["throttles"]
    assert run["elapsed"] <= factor * limit_seconds, run["elapsed"]
    assert run["throttles"] <= 0.05 * calls, run["throttles"]


@pytest.mark.parametrize("quota", [5, 20, 50])
def test_the_pace_converges_on_a_token_bucket_from_the_default_start(clock, quota):
    faults, pacer = Faults(clock), pacer_for(clock, 10.0)
    faults.set_quota(ACTION, "bucket", quota)
    run = drive(pacer, faults, clock, N)
    check(run, N / quota, 1.1)
    assert pacer.known == pytest.approx(quota, rel=0.25)  # what it learned is the quota
    if quota > 10:
        assert max(pacer.known, pacer.rate) > 10  # the start was not a ceiling


def test_the_pace_converges_on_a_fixed_one_second_window(clock):
    faults, pacer = Faults(clock), pacer_for(clock)
    faults.set_quota(ACTION, "window", 20, window=1.0)
    run = drive(pacer, faults, clock, N)
    check(run, N / 20, 1.1)


def test_the_pace_rides_a_fixed_sixty_second_window_without_collapsing(clock):
    faults, pacer = Faults(clock), pacer_for(clock)
    faults.set_quota(ACTION, "window", 600, window=60.0)
    run = drive(pacer, faults, clock, N)
    check(run, N / 10, 1.1)
    # The empty window was waited out with a few probes, not by cutting the rate to the floor:
    assert pacer.cuts <= 4 and pacer.rate >= 5


def test_the_pace_follows_a_quota_halved_mid_run(clock):
    faults, pacer = Faults(clock), pacer_for(clock)
    faults.set_quota(ACTION, "bucket", 20)
    faults.set_quota(ACTION, "bucket", 10, at=clock.now() + 25)
    run = drive(pacer, faults, clock, N)
    check(run, 25 + (N - 500) / 10, 1.2)
    late = [t for t in run["admitted"] if t >= run["elapsed"] - 20]
    assert len(late) / 20 == pytest.approx(10, rel=0.1)  # settled on the new quota
    assert pacer.known == pytest.approx(10, rel=0.25)


def test_the_pace_climbs_back_when_a_quota_rises(clock):
    faults, pacer = Faults(clock), pacer_for(clock)
    faults.set_quota(ACTION, "bucket", 10)
    drive(pacer, faults, clock, 300)
    assert pacer.rate < 12
    faults.set_quota(ACTION, "bucket", 30)
    run = drive(pacer, faults, clock, 1500)
    late = [t for t in run["admitted"] if t >= run["elapsed"] - 10]
    assert len(late) / 10 >= 0.85 * 30


def test_without_a_quota_the_start_is_not_a_ceiling(clock):
    faults, pacer = Faults(clock), pacer_for(clock, 10.0)
    run = drive(pacer, faults, clock, 400)
    assert run["throttles"] == 0 and pacer.rate > 40
    assert run["elapsed"] < 400 / 10 / 2


# -- the rules, one at a time ----------------------------------------------------------------
def test_a_cut_starts_from_the_measured_rate_not_the_nominal_one(clock):
    pacer = pacer_for(clock, 100.0)  # allowed 100 a second...
    for _ in range(50):  # ...but its callers send 10 a second
        pacer.succeeded(pacer.acquire())
        clock.advance(0.1)
    generation = pacer.acquire()
    pacer.throttled(generation)
    assert pacer.rate == pytest.approx(0.9 * 10, rel=0.1)  # botocore's min(measured, fill) would agree;
    assert pacer.known == pytest.approx(10, rel=0.1)  # a ceiling of 90% of nominal would say 90


def test_calls_sent_before_a_cut_do_not_cut_again(clock):
    pacer = pacer_for(clock, 20.0)
    for _ in range(40):
        pacer.succeeded(pacer.acquire())
    in_flight = [pacer.acquire() for _ in range(5)]
    pacer.throttled(in_flight[0])
    rate = pacer.rate
    for generation in in_flight[1:]:
        pacer.throttled(generation)
    assert pacer.rate == rate and pacer.cuts == 1 and pacer.throttles == 5


def test_an_empty_window_is_waited_out_with_growing_holds_not_cuts(clock):
    pacer = pacer_for(clock, 20.0)
    for _ in range(40):
        pacer.succeeded(pacer.acquire())
    pacer.throttled(pacer.acquire())  # the cut
    rate, gaps = pacer.rate, []
    for _ in range(6):  # every call after it is throttled too: the window is empty
        before = clock.now()
        generation = pacer.acquire()
        gaps.append(round(clock.now() - before, 3))
        pacer.throttled(generation)
    assert pacer.rate == rate and pacer.cuts == 1
    assert gaps[1:] == [0.25, 0.5, 1.0, 2.0, 4.0]  # waits double, up to HOLD_MAX
    before = clock.now()
    pacer.succeeded(pacer.acquire())  # the window opened again
    pacer.succeeded(pacer.acquire())
    assert clock.now() - before == pytest.approx(4.0 + 1 / pacer.rate, rel=0.05)  # back to the pace


def test_another_failure_of_a_probe_lets_the_next_call_go(clock):
    pacer = pacer_for(clock, 20.0)
    for _ in range(40):
        pacer.succeeded(pacer.acquire())
    pacer.throttled(pacer.acquire())
    pacer.throttled(pacer.acquire())  # holding now: the next call is a probe
    probe = pacer.acquire()
    pacer.failed(probe)  # e.g. a 503: says nothing about the quota
    pacer.succeeded(pacer.acquire())  # would wait for ever if the probe were still out


def test_a_fresh_pacer_lets_a_seconds_worth_go_at_once(clock):
    pacer = pacer_for(clock, 10.0)
    start = clock.now()
    for _ in range(10):
        pacer.succeeded(pacer.acquire())
    assert clock.now() == start
    pacer.acquire()
    assert clock.now() == pytest.approx(start + 0.1)  # then the pace


def test_each_api_has_its_own_pace_and_a_warm_instance_keeps_it(clock):
    paces = Paces(clock.now, clock.advance, 10.0)
    faults = Faults(clock)
    faults.set_quota(ACTION, "bucket", 5)
    drive(paces.get(ACTION), faults, clock, 200)
    drive(paces.get("DescribeDisks"), faults, clock, 200, action="DescribeDisks")
    assert paces.get(ACTION).rate < 7 and paces.get("DescribeDisks").rate > 20
    assert paces.get(ACTION) is paces.get(ACTION)  # the next batch starts where this one ended
    assert paces.throttles() == paces.get(ACTION).throttles > 0


class FakeEcs:
    region = "cn-hangzhou"

    def __init__(self, faults: Faults):
        self.faults, self.calls = faults, 0

    def call(self, action, query):
        self.calls += 1
        if not self.faults.admit(action):
            raise EcsCallError(action, "throttled", "Throttling", "Request was denied due to request throttling.", 400)
        if query.get("fail"):
            raise EcsCallError(action, "server", "ServiceUnavailable", "down", 503)
        return {"RequestId": "r"}


def test_paced_ecs_tells_the_pace_each_answer_and_counts_throttles(clock):
    faults = Faults(clock)
    faults.set_quota(ACTION, "bucket", 1)
    paces = Paces(clock.now, clock.advance, 10.0)
    paces.get(ACTION).throttles = 3  # an earlier batch's
    paced = PacedEcs(FakeEcs(faults), paces)
    assert paced.call(ACTION, {}) == {"RequestId": "r"}
    with pytest.raises(EcsCallError) as err:
        paced.call(ACTION, {})
    assert err.value.kind == "throttled" and paced.throttles == 1  # only this batch's
    assert paces.get(ACTION).cuts == 1
    with pytest.raises(EcsCallError):
        paced.call("DescribeDisks", {"fail": True})
    assert paces.get("DescribeDisks").throttles == 0


# -- several callers at once ------------------------------------------------------------------
def test_eight_workers_wait_out_an_empty_window_with_one_probe_at_a_time():
    """A batch's eight workers against a 60 s window, on the benchmark's discrete-event
    clock (time moves only when every worker sleeps). While the window is empty only one
    call at a time goes out to see whether it has opened, so Throttling stays rare and no
    call comes near the Retrier's six attempts."""
    import threading

    from bench.vclock import VirtualClock

    clock = VirtualClock()
    try:
        faults, pacer = Faults(clock), Pacer(clock.now, clock.sleep, 10.0)
        start = clock.now()
        faults.set_quota(ACTION, "window", 200, window=60.0)
        work, lock, worst, blocked = list(range(400)), threading.Lock(), [], []

        def worker():
            while True:
                with lock:
                    if not work:
                        return
                    work.pop()
                tries = 0
                while True:
                    generation = pacer.acquire()
                    clock.sleep(0.02)
                    if faults.admit(ACTION):
                        pacer.succeeded(generation)
                        break
                    pacer.throttled(generation)
                    tries += 1
                    if clock.now() - start > 10:  # the window is used up by then
                        blocked.append(clock.now() - start)
                    clock.sleep(0.5)  # the Retrier's backoff, about
                with lock:
                    worst.append(tries)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)  # a bound, should the clock ever stall
        assert not any(t.is_alive() for t in threads)
        elapsed = clock.now() - start
    finally:
        clock.close()
    assert len(worst) == 400 and 60 <= elapsed <= 70  # the first window used up, then the second
    assert len(blocked) <= 50 / Pacer.HOLD_MAX + 4  # one probe per hold, not one per worker
    assert faults.throttled[ACTION] <= 0.06 * 400
    assert max(worst) < 6
