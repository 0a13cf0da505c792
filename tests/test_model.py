"""A stateful, model-based test of the reliability promises (issue 9, item 10;
INTERFACE.md sections 4, 10 and 11): never twice, never hung, never silent.

Hypothesis drives the real handler (index.handler, and a second App for a concurrent
copy) against the emulator on loopback, with one ManualClock, and, in half of the runs,
a real redis-server as the idempotency store. A run is a sequence of steps: deliveries of
every trigger kind (single disks and small batches), redeliveries, platform retries of
invocations that failed, an operator repeating a request, two copies at once, a process
killed at a chosen HTTP call, ECS faults (before/after the action, dropped connections),
MNS faults, fast and slow state changes, jumps of the clock, and someone else starting
or stopping an instance. After every step the invariants are checked (see `Model.check`).

While the reliability fixes of issue 9 land, this test may fail: it is the check of them.

Size: REINIT_MODEL_EXAMPLES runs of at most REINIT_MODEL_STEPS steps (defaults: 200 and
40, about a minute on two cores); REINIT_MODEL_SHRINK=1 shrinks a failing run to a minimal
one; REINIT_MODEL_CHECK=never-twice,... fails only on the named invariants (the others are
still counted); REINIT_MODEL_MIN_STEPS makes a run prove its size. `make soak` (at least
100,000 steps, about 15 minutes):
    REINIT_MODEL_EXAMPLES=3200 REINIT_MODEL_STEPS=50 REINIT_MODEL_MIN_STEPS=100000 \
        .venv/bin/python -m pytest tests/test_model.py -q -s
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import index
from emulator.clock import ManualClock
from emulator.server import Emulator
from reinit.app import App, InvocationFailed
from tests.conftest import AK, LINUX_IMAGE, POLICY, REGION, SECRET, TOKEN, TOPIC, WEBHOOK_SECRET, disk_id, instance_id
from tests.model_support import (
    CloudWatch,
    CrashSwitch,
    Killed,
    LogTap,
    StepTag,
    StoreFaults,
    advance_redis,
    eventbridge_event,
    http_event,
    judge,
    timer_event,
)

EXAMPLES = int(os.environ.get("REINIT_MODEL_EXAMPLES", "200"))
STEPS = int(os.environ.get("REINIT_MODEL_STEPS", "40"))
# Which invariants fail the test: all by default. A comma list narrows it, to look for the
# next kind of violation while one is being fixed (never for `make test`).
CHECKED = os.environ.get("REINIT_MODEL_CHECK", "all")
MIN_STEPS = int(os.environ.get("REINIT_MODEL_MIN_STEPS", "0"))  # a soak run proves its size
# Shrinking a long failing run can take Hypothesis minutes: only where asked for.
SHRINK = os.environ.get("REINIT_MODEL_SHRINK", "") == "1"
TIMEOUT = 120  # FC_FUNCTION_TIMEOUT of every invocation
FAST_ENOUGH = 15.0  # every awaited change (stop, reinit, start) at most this: a WaitTimeout is a hang

# The fleet: tagged system disks on i1..i4, a tagged data disk on i2, an untagged data disk
# on i3 (it carries fleet=lab, so a Tags batch selects it), an untagged system disk on i5.
D = {n: disk_id(n) for n in range(1, 8)}
I = {n: instance_id(n) for n in range(1, 6)}  # noqa: E741
DISK_INSTANCE = {D[1]: I[1], D[2]: I[2], D[3]: I[3], D[4]: I[4], D[5]: I[5], D[6]: I[2], D[7]: I[3]}
UNTAGGED_DISKS = {D[5], D[7]}
UNTAGGED_INSTANCES = {I[5]}  # no tagged disk at all: never stopped, never started
KINDS = ("http", "eventbridge", "timer", "invoke")
TARGET_DISKS = [D[1], D[2], D[3], D[4], D[6]] * 3 + [D[5], D[7]]  # mostly tagged disks
TARGET_INSTANCES = [I[1], I[2], I[3], I[4]] * 3 + [I[5]]
OPTIONS = {  # None: the field is absent
    "StopInstance": [None, True, True, False],
    "WaitForCompletion": [None, True, True, False],
    "AutoStartInstance": [None, None, True, False],
    "DryRun": [None] * 9 + [True],
}
TIMINGS = (0.2, 0.6, 3.0, 5.0, 12.0, 500.0)  # 0.2 s: a reinit faster than the first look


def seed(statuses: dict[str, str]) -> dict:
    tags_ok = {"reinit-allowed": "true", "fleet": "lab"}
    disks = [
        {"DiskId": D[n], "InstanceId": I[n], "Type": "system", "ImageId": LINUX_IMAGE, "Tags": tags_ok}
        for n in (1, 2, 3, 4)
    ]
    disks += [
        {"DiskId": D[5], "InstanceId": I[5], "Type": "system", "ImageId": LINUX_IMAGE, "Tags": {"fleet": "lab"}},
        {"DiskId": D[6], "InstanceId": I[2], "Type": "data", "Tags": tags_ok},
        {"DiskId": D[7], "InstanceId": I[3], "Type": "data", "Tags": {"fleet": "lab"}},
    ]
    return {
        "region": REGION,
        "timings": {"stop": 3.0, "start": 3.0, "reinit": 5.0},
        "credentials": [{"AccessKeyId": AK, "AccessKeySecret": SECRET, "SecurityToken": TOKEN}],
        "topics": [TOPIC],
        "images": [{"ImageId": LINUX_IMAGE, "OSType": "linux"}],
        # Tagged as the RAM policy's Stop/StartInstance condition reads it, but for the untagged one.
        "instances": [{"InstanceId": i, "Status": statuses[i], "ImageId": LINUX_IMAGE,
                       "Tags": {} if i in UNTAGGED_INSTANCES else {"reinit-allowed": "true"}} for i in I.values()],
        "disks": disks,
    }


@dataclass
class Figures:
    runs: int = 0
    steps: int = 0
    delivery_steps: int = 0
    deliveries: int = 0
    faults: int = 0  # injected faults that struck (ECS and MNS), and process kills
    crashes: int = 0
    wipes: int = 0
    violations: int = 0  # steps that broke an invariant (checked or not)
    by_invariant: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)  # invariant -> its first violation, with the run so far
    logged_only: int = 0  # outcomes that reached only the log (topic down, no store, a write done)
    outcomes: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    first_violation: str | None = None

    def line(self, seconds: float) -> str:
        top = ", ".join(f"{k} {v}" for k, v in self.outcomes.most_common(8))
        return (f"model: {self.runs} runs, {self.steps} steps ({self.delivery_steps} with deliveries: {self.deliveries}), "
                f"{self.faults} faults injected ({self.crashes} process kills), {self.wipes} wipes, "
                f"{self.violations} violations, {self.logged_only} outcomes only logged; {seconds:.0f} s\n"
                f"model: outcomes: {top}"
                + (f"\nmodel: violations by invariant: {dict(self.by_invariant)}" if self.by_invariant else ""))


@dataclass(eq=False)  # identity: two deliveries of equal content are still two
class Delivery:
    """One request as a trigger delivers it, and what became of it."""

    kind: str
    request: dict  # the request fields (for eventbridge: `data`)
    event: dict  # the event as sent
    key: str  # the idempotency key INTERFACE.md section 11 gives it
    request_id: str  # Function Compute's request id (kept across its own async retries)
    headers: dict = field(default_factory=dict)
    raised: bool = False
    crashed: bool = False
    retries: int = 0
    said_retryable: bool = False
    duplicate: bool = False  # a redelivery, a concurrent copy, an unasked repeat, or killed once: unguarded without a store

    def invited(self) -> bool:
        """The function asked for this repeat (it failed the invocation, or said Retryable:
        true) of a delivery that was not itself an unsuppressed duplicate."""
        return (self.raised or self.said_retryable) and not self.crashed and not self.duplicate


@dataclass(eq=False)
class Copy:
    delivery: Delivery
    request_id: str
    app: App
    answer: object = None
    results: list = field(default_factory=list)  # per-disk result objects
    summary: dict | None = None
    raised: bool = False
    crashed: bool = False
    escaped: str | None = None
    authenticated: bool = True


def make_model(redis_url: str | None, figures: Figures):
    import redis

    redis_client = redis.Redis.from_url(redis_url) if redis_url else None
    if redis_client is not None:
        STORE_FAULTS.exempt.add(id(redis_client))  # the model's own look at the store never stumbles

    class Model(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            figures.runs += 1
            self.cloud = None
            self.n = 0
            self.history: list[Delivery] = []
            self.retry_queue: list[Delivery] = []
            self.switch = SWITCH
            self.switch.reset()
            STORE_FAULTS.reset()
            self.trace: list[str] = []  # the run so far, one line a step: printed with a violation

        # -- set-up ----------------------------------------------------------------------
        @initialize(store=st.booleans(), statuses=st.lists(st.sampled_from(["Stopped", "Running"]), min_size=5, max_size=5))
        def start(self, store, statuses):
            self.store = bool(store and redis_client is not None)
            self.clock = ManualClock()
            self.cloud = Emulator(seed(dict(zip(I.values(), statuses, strict=True))), clock=self.clock, ram_policy=POLICY)
            self.cloud._server.handle_error = lambda *_: None  # a killed process resets its connections
            self.cloud.start()
            self.watch = CloudWatch(self.cloud.ecs, set(UNTAGGED_DISKS), set(UNTAGGED_INSTANCES))
            self.watch.install()
            self.env = {
                "REINIT_REGION": REGION,
                "REINIT_ECS_ENDPOINT": self.cloud.endpoint,
                "REINIT_MNS_ENDPOINT": self.cloud.endpoint,
                "REINIT_TOPIC": TOPIC,
                "REINIT_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "ALIBABA_CLOUD_ACCESS_KEY_ID": AK,
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET,
                "ALIBABA_CLOUD_SECURITY_TOKEN": TOKEN,
                "FC_FUNCTION_TIMEOUT": str(TIMEOUT),
            }
            if self.store:
                redis_client.flushdb()
                self.env["REINIT_IDEMPOTENCY_URL"] = redis_url
            self.app = self.new_app()
            self.synced = self.clock.now()
            self.injected_outage = False
            self.trace.append(f"start: store={self.store}, instances {statuses}")

        def new_app(self) -> App:
            """A new Function Compute instance (a new process)."""
            app = App(env=self.env, clock=self.clock.now, sleep=self.clock.advance, random=lambda: 0.5)
            index._app = app
            return app

        def teardown(self):
            if self.cloud is not None:
                self.cloud.stop()

        # -- building requests -------------------------------------------------------------
        def next_id(self, prefix: str) -> str:
            self.n += 1
            return f"{prefix}-{figures.runs}-{self.n}"

        def draw_request(self, data, kind: str) -> dict:
            shape = data.draw(st.sampled_from(["disk", "disk", "instance", "ids", "tags"] if kind != "eventbridge"
                                              else ["disk", "instance", "lower-disk", "lower-instance"]), label="shape")
            if shape == "disk":
                request = {"DiskId": data.draw(st.sampled_from(TARGET_DISKS), label="disk")}
            elif shape == "lower-disk":
                request = {"diskId": data.draw(st.sampled_from(TARGET_DISKS), label="disk")}
            elif shape == "instance":
                request = {"InstanceId": data.draw(st.sampled_from(TARGET_INSTANCES), label="instance")}
            elif shape == "lower-instance":
                request = {"instanceId": data.draw(st.sampled_from(TARGET_INSTANCES), label="instance")}
            elif shape == "ids":
                request = {"DiskIds": data.draw(st.lists(st.sampled_from(sorted(DISK_INSTANCE)), min_size=2, max_size=3,
                                                         unique=True), label="disks")}
            else:
                request = {"Tags": [{"Key": "fleet", "Value": "lab"}]}
            for name, values in OPTIONS.items():
                value = data.draw(st.sampled_from(values), label=name)
                if value is not None:
                    request[name] = value
            if kind in ("http", "invoke", "timer") and data.draw(st.booleans(), label="client token"):
                request["ClientToken"] = self.next_id(f"tok-{kind}")
            return request

        def build(self, kind: str, request: dict, request_id: str, headers: dict | None = None) -> Delivery:
            headers = dict(headers or {})
            if kind == "http":
                event = http_event(request, request_id, self.env["REINIT_WEBHOOK_SECRET"], self.timestamp(), headers)
                key = request.get("ClientToken") or headers.get("Idempotency-Key") or request_id
                key = f"http:{key}"
            elif kind == "eventbridge":
                event_id = self.next_id("evt")
                event, key = eventbridge_event(event_id, request), f"eventbridge:{event_id}"
            elif kind == "timer":
                when = f"2026-11-27T{self.n % 24:02d}:{self.n % 60:02d}:00Z#{self.next_id('t')}"
                event = timer_event("nightly-reset", when, request)
                key = "timer:" + (request.get("ClientToken") or f"nightly-reset@{when}")
            else:
                event = dict(request)
                key = "invoke:" + (request.get("ClientToken") or request_id)
            return self.remember(Delivery(kind, request, event, key, request_id, headers))

        def remember(self, d: Delivery) -> Delivery:
            # Every delivery drawn joins the history when it is drawn, whatever then becomes
            # of it: what Hypothesis draws must never depend on outcomes.
            self.history.append(d)
            return d

        def timestamp(self) -> int:
            # A fresh signature for each delivery: signed N seconds ago, inside the window.
            return int(time.time()) - (self.n % 250)

        def new_delivery(self, data) -> Delivery:
            kind = data.draw(st.sampled_from(KINDS), label="kind")
            request = self.draw_request(data, kind)
            headers = {}
            if kind == "http" and data.draw(st.booleans(), label="idempotency-key header"):
                headers["Idempotency-Key"] = self.next_id("ik")
            return self.build(kind, request, self.next_id("req"), headers)

        # -- one step ------------------------------------------------------------------------
        def run_step(self, label: str, copies: list[Copy], strict: bool, crash: tuple[int, str] | None = None):
            delivery = copies[0].delivery
            self.watch.tag = StepTag(delivery.key, strict, f"{label} {delivery.kind} {delivery.key}")
            far = self.long_change_pending()
            marks = (len(self.cloud.messages(TOPIC)), len(self.cloud.requests), len(self.watch.wipes),
                     len(self.watch.stops), self.remaining_faults(), self.clock.now(), STORE_FAULTS.struck)
            TAP.take()
            if crash:
                self.switch.arm(*crash)

            def call(copy: Copy, via_index: bool) -> None:
                ctx = SimpleNamespace(request_id=copy.request_id, credentials=None,
                                      function=SimpleNamespace(name="reinit", timeout=None))
                raw = json.dumps(copy.delivery.event).encode()
                try:
                    copy.answer = index.handler(raw, ctx) if via_index else copy.app.handle(raw, ctx)
                except InvocationFailed as failed:
                    copy.raised, copy.answer = True, json.loads(str(failed))
                except Killed:
                    copy.crashed = True
                except BaseException as err:  # noqa: BLE001 - anything else escaping is a finding
                    copy.escaped = f"{type(err).__name__}: {err}"[:300]

            if len(copies) == 1:
                call(copies[0], True)
            else:
                threads = [threading.Thread(target=call, args=(c, i == 0)) for i, c in enumerate(copies)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(timeout=120)
            killed = self.switch.hit
            self.switch.reset()
            self.watch.tag = StepTag()
            if killed:
                for c in copies:
                    c.crashed = True  # a dead process answers nothing, whatever it returned
                figures.crashes += 1
                figures.faults += 1
                self.app = self.new_app()

            messages = self.cloud.messages(TOPIC)[marks[0]:]
            lines = TAP.take()
            wipes = self.watch.wipes[marks[2]:]
            stops = self.watch.stops[marks[3]:]
            figures.faults += marks[4] - self.remaining_faults() + STORE_FAULTS.struck - marks[6]
            figures.wipes += len(wipes)
            figures.delivery_steps += 1
            for c in copies:
                figures.deliveries += 1
                figures.kinds[c.delivery.kind] += 1
                self.unpack(c)
                figures.outcomes.update("crashed" if c.crashed else f"{r.get('Outcome')}/{r.get('Code')}"
                                        for r in (c.results or [{}]))
            calls = self.cloud.requests[marks[1]:]
            problems = self.check(copies, messages, lines, wipes, stops, marks[5], label, far, calls)
            self.trace.append(self.describe(label, copies, strict, killed, calls))
            self.sync_redis()
            for c in copies:
                d = c.delivery
                d.raised, d.crashed = c.raised, c.crashed
                # Without a store, nothing tells a retry what a killed attempt did: like a
                # duplicate, the delivery is no longer held to never-twice.
                d.duplicate = d.duplicate or c.crashed
                # A batch's per-disk Retryable invites a repeat of that disk, not of the whole batch.
                d.said_retryable = c.summary is None and any(r.get("Retryable") is True for r in c.results)
                if (c.raised or c.crashed) and d.retries < 3 and d not in self.retry_queue:
                    self.retry_queue.append(d)
            self.scheduled_meanwhile = False
            self.fail_on(problems)

        def describe(self, label, copies, strict, killed, calls) -> str:
            d = copies[0].delivery
            answers = "; ".join(
                "killed" if c.crashed else c.escaped or ", ".join(
                    f"{r.get('DiskId')}: {r.get('Outcome')}/{r.get('Code')} R={r.get('Retryable')}"
                    + (" (raised)" if c.raised else "") for r in c.results) for c in copies)
            seen = ", ".join(f"{x['Action']}({(x.get('Params') or {}).get('DiskId') or (x.get('Params') or {}).get('InstanceId') or ''})"
                             f"{'=' + x['Code'] if x.get('Code') else ''}" for x in calls if x.get("Service") == "ecs"
                             and x["Action"] not in ("DescribeDisks", "DescribeInstances"))
            return (f"{label}{' x2' if len(copies) > 1 else ''} {d.kind} {json.dumps(d.request)} key={d.key} "
                    f"strict={strict}{' killed ' + killed if killed else ''} -> {answers} | writes: {seen or '-'} "
                    f"| t={self.clock.now():.1f}")

        def unpack(self, c: Copy) -> None:
            answer = c.answer
            if c.crashed or c.escaped or answer is None:
                return
            if c.delivery.kind == "http" and isinstance(answer, dict) and "statusCode" in answer and not c.raised:
                if answer["statusCode"] in (401, 405, 413):
                    c.authenticated = False
                answer = json.loads(answer["body"])
            if answer.get("Schema") == "reinit.batch.v1":
                c.summary, c.results = answer, list(answer.get("Results") or [])
            else:
                c.results = [answer]

        def remaining_faults(self) -> int:
            return sum(f.times for f in self.cloud.faults._faults)

        def sync_redis(self) -> None:
            now = self.clock.now()
            if self.store and now > self.synced:
                advance_redis(redis_client, now - self.synced)
            self.synced = now

        def fail_on(self, problems: list[str]) -> None:
            problems, self.watch.violations = problems + self.watch.violations, []
            judge(figures, problems, self.trace, 40, CHECKED)

        # -- the invariants ------------------------------------------------------------------
        def long_change_pending(self) -> bool:
            """A state change scheduled earlier (under slow timings) still has long to run."""
            b, now = self.cloud.ecs, self.clock.now()
            with b.lock:
                return any(at - now > FAST_ENOUGH for res in (*b.instances.values(), *b.disks.values())
                           for at, _ in res.pending)

        def check(self, copies, messages, lines, wipes, stops, clock_before, label, far=False, calls=()) -> list[str]:
            """The invariants of one step (each problem is prefixed with the invariant's name):
            - never-twice (CloudWatch.on_wipe): a second ReInitDisk for the same (key, disk) after
              the instance was Starting/Running since the first. With a store, for every delivery
              of the key; without one, only for repeats the function asked for (a failed
              invocation, or Retryable: true on a single request), since INTERFACE.md section 11
              suppresses duplicates only with a store;
            - untagged-touched (also `untagged_untouched`): ReInitDisk, StopInstance, StartInstance
              on a disk or instance without the required tag;
            - never-silent: every authenticated delivery's outcome (each disk, and a batch's
              summary) is published, or its invocation fails. The log may carry it instead for
              HTTP (the caller has it), and, without a store, where failing the invocation could
              wipe again: a disk whose write was attempted and whose result is not Retryable
              (a batch: any such disk);
            - retryable-unsafe: without a store, Retryable: true for a disk this invocation wiped
              whose instance is or will be running;
            - never-hung: no WaitTimeout while every awaited change is fast, and no invocation
              past its timeout;
            - restart-symmetry: an instance the function stopped is running again (or will be),
              is kept down by AutoStartInstance: false after its wipe, or a result or a message
              published in the step names it."""
            problems: list[str] = []
            attempted = {(x.get("Params") or {}).get("DiskId") for x in calls if x.get("Action") == "ReInitDisk"}
            attempted |= {disk for disk, inst in DISK_INSTANCE.items()
                          for x in calls if x.get("Action") == "StopInstance" and (x.get("Params") or {}).get("InstanceId") == inst}

            def unsafe_to_fail(r: dict) -> bool:  # failing the invocation would invite a second wipe
                return not self.store and r.get("DiskId") in attempted and r.get("Retryable") is not True
            elapsed = self.clock.now() - clock_before
            timings = self.cloud.ecs.timings
            slow = max(timings["stop"], timings["reinit"], timings["start"]) > FAST_ENOUGH
            slow = slow or far or len(copies) > 1 or self.injected_outage or self.scheduled_meanwhile
            all_results = [r for c in copies for r in c.results] + [c.summary for c in copies if c.summary]
            for c in copies:
                d = c.delivery
                if c.escaped:
                    problems.append(f"never-silent: {label} {d.kind}: the handler raised {c.escaped}")
                    continue
                if c.crashed or not c.authenticated:
                    continue
                # Every key of the model names one request: a Conflict means a retry was taken for
                # another request (a rotated secret in the fingerprint, say) and dropped for good.
                for r in c.results:
                    if r.get("Code") == "InvalidParameter.Conflict":
                        problems.append(f"same-request-conflict: {label} {d.kind} key {d.key}: {r.get('Message')}")
                # Every authenticated delivery's outcome is published, or its invocation fails.
                if not c.raised:
                    mine = [m for m in messages if json.loads(m["MessageBody"]).get("InvocationId") == c.request_id]
                    bodies = [json.loads(m["MessageBody"]) for m in mine]
                    logged = [x.get("notification") or {} for x in lines
                              if x.get("event", "").startswith("notify.") and x.get("invocation") == c.request_id
                              and isinstance(x.get("notification"), dict)]
                    wanted = [r for r in c.results]
                    batch_unsafe = c.summary is not None and any(unsafe_to_fail(r) for r in c.results)
                    if c.summary:
                        wanted.append(c.summary)
                    for r in wanted:
                        schema = r.get("Schema")
                        if any(b.get("Schema") == schema and b.get("DiskId") == r.get("DiskId") for b in bodies):
                            continue
                        if any(n.get("Schema") == schema and n.get("DiskId") == r.get("DiskId") for n in logged) and \
                                (d.kind == "http" or batch_unsafe or unsafe_to_fail(r)):
                            figures.logged_only += 1
                            continue
                        problems.append(
                            f"never-silent: {label} {d.kind} ({c.request_id}): the outcome {r.get('Outcome')}/"
                            f"{r.get('Code')} for disk {r.get('DiskId')} was neither published nor a failed invocation")
                # Retryable: true only where a repeat is safe (without a store nothing guards a repeat).
                if not self.store and len(copies) == 1:  # which copy wiped is not known
                    for r in c.results:
                        disk = r.get("DiskId")
                        if r.get("Retryable") is True and disk in DISK_INSTANCE and \
                                any(w.disk == disk and w.key == d.key for w in wipes) and \
                                self.watch.dirty_since_wipe(d.key, disk, DISK_INSTANCE[disk]):
                            problems.append(
                                f"retryable-unsafe: {label} {d.kind}: {r.get('Outcome')}/{r.get('Code')} Retryable "
                                f"true for disk {disk}, which this invocation reinitialized and whose instance "
                                f"{DISK_INSTANCE[disk]} is or will be running (a repeat would wipe what it wrote)")
                # Never hung: with every awaited change fast, no wait runs out.
                for r in c.results:
                    # A Duplicate repeats a stored outcome, waited for under the timings of its day.
                    if r.get("Code") == "WaitTimeout" and not slow and not r.get("Duplicate"):
                        problems.append(
                            f"never-hung: {label} {d.kind}: WaitTimeout for disk {r.get('DiskId')} although stop, "
                            f"reinit and start take at most {FAST_ENOUGH:.0f} s ({timings}); {r.get('Message')}")
            # A batch's workers sleep on one ManualClock, so their polls add up: each may
            # overrun the deadline it checked by the others' sleeps (one poll each, 2 s).
            request = copies[0].delivery.request if copies else {}
            slack = 0.5 + (2.0 * 7 if "DiskIds" in request or "Tags" in request else 0.0)
            if len(copies) == 1 and not copies[0].crashed and elapsed > TIMEOUT + slack:
                problems.append(f"never-hung: {label}: the invocation took {elapsed:.1f} s of a {TIMEOUT} s timeout")
            # Every instance the function stopped is running again, or is named in a result or message.
            crashed = any(c.crashed for c in copies)
            keep_down = any(c.delivery.request.get("AutoStartInstance") is False for c in copies)
            wiped_instances = {DISK_INSTANCE.get(w.disk) for w in wipes}
            # Named in an answer, or in a message a copy published: the answer of an invocation
            # that failed is its summary, which lists no success (the success, naming the
            # instance it could not start again, went out as its own message).
            published = [json.loads(m["MessageBody"]) for m in messages]
            texts = " ".join(str(r.get("Message")) for r in [*all_results, *published] if r)
            for inst in sorted({i for i, _ in stops}):
                if crashed or (keep_down and inst in wiped_instances) or self.watch.will_be_active(inst) or inst in texts:
                    continue
                problems.append(f"restart-symmetry: {label}: the function stopped {inst}; it is "
                                f"{self.watch.status(inst)} and no result names it")
            return problems

        @invariant()
        def untagged_untouched(self):
            if self.cloud is None:
                return
            figures.steps += 1
            problems = [f"untagged-touched: {c['Action']} was called on {c['Params'].get('DiskId') or c['Params'].get('InstanceId')}"
                        for c in self.cloud.calls()
                        if (c["Action"] == "ReInitDisk" and c["Params"].get("DiskId") in UNTAGGED_DISKS)
                        or (c["Action"] in ("StopInstance", "StartInstance") and c["Params"].get("InstanceId") in UNTAGGED_INSTANCES)]
            self.fail_on(problems)

        # -- deliveries ----------------------------------------------------------------------
        @rule(data=st.data())
        def deliver(self, data):
            d = self.new_delivery(data)
            self.run_step("deliver", [Copy(d, d.request_id, self.app)], strict=self.store)

        @precondition(lambda self: self.history)
        @rule(data=st.data())
        def redeliver(self, data):
            """The trigger delivers the same event again (at least once): a new invocation."""
            old = data.draw(st.sampled_from(self.history), label="redelivered")
            rid = self.next_id("req")
            d = self.remember(Delivery(old.kind, old.request, old.event, old.key if old.kind != "invoke" or
                                       old.request.get("ClientToken") else f"invoke:{rid}", rid, old.headers,
                                       duplicate=True))
            self.run_step("redeliver", [Copy(d, rid, self.app)], strict=self.store)

        @rule(pick=st.integers(0, 1000))
        def platform_retry(self, pick):
            """Function Compute retries an async invocation that failed: same event, same request id.
            (The pick is an index, so that what Hypothesis draws never depends on outcomes.)"""
            if not self.retry_queue:
                return
            d = self.retry_queue.pop(pick % len(self.retry_queue))
            strict = self.store or d.invited()
            d.retries += 1
            self.run_step("platform-retry", [Copy(d, d.request_id, self.app)], strict=strict)

        @precondition(lambda self: any(d.kind in ("http", "invoke") for d in self.history))
        @rule(data=st.data())
        def operator_repeat(self, data):
            """An operator sends the same request again (a new signature, a new request id)."""
            old = data.draw(st.sampled_from([d for d in self.history if d.kind in ("http", "invoke")]), label="repeated")
            d = self.build(old.kind, old.request, self.next_id("req"), old.headers)
            invited = old.invited() and d.key == old.key
            d.duplicate = d.key == old.key and not invited  # the same request again, unasked for
            self.run_step("operator-repeat", [Copy(d, d.request_id, self.app)], strict=self.store or invited)
            if not self.store and d.key == old.key:
                # One answer invites one repeat: once the operator has made it, the platform's
                # own retry of the old invocation is, without a store, an unguarded duplicate
                # (nothing tells it that the request was carried out since).
                old.duplicate = True

        @rule(data=st.data())
        def concurrent_copies(self, data):
            """Two copies of one event at once, on two instances of the function."""
            if self.history and data.draw(st.booleans(), label="old event"):
                d = data.draw(st.sampled_from(self.history), label="event")
            else:
                d = self.new_delivery(data)
            same_rid = d.kind != "invoke" or "ClientToken" not in d.request
            second = d.request_id if same_rid else self.next_id("req")
            d.duplicate = True
            other = App(env=self.env, clock=self.clock.now, sleep=self.clock.advance, random=lambda: 0.5)
            self.run_step("concurrent", [Copy(d, d.request_id, self.app), Copy(d, second, other)], strict=self.store)

        @rule(data=st.data(), k=st.integers(1, 9), when=st.sampled_from(["before", "after"]))
        def killed_mid_call(self, data, k, when):
            """The process dies at its k-th HTTP call (before it leaves, or after the answer came)."""
            retry, pick = data.draw(st.booleans(), label="a retry"), data.draw(st.integers(0, 1000), label="pick")
            d, strict = self.new_delivery(data), self.store  # drawn either way: draws never depend on outcomes
            if retry and self.retry_queue:
                d = self.retry_queue.pop(pick % len(self.retry_queue))
                d.retries += 1
                strict = self.store or d.invited()
            self.run_step(f"killed-at-{k}-{when}", [Copy(d, d.request_id, self.app)], strict=strict, crash=(k, when))

        # -- the world around it -------------------------------------------------------------
        @rule(action=st.sampled_from(["ReInitDisk", "ReInitDisk", "DescribeDisks", "DescribeInstances",
                                      "StopInstance", "StartInstance"]),
              when=st.sampled_from(["before", "after", "drop", "drop_after"]),
              code=st.sampled_from([("ServiceUnavailable", 503), ("InternalError", 500), ("Throttling", 400)]),
              times=st.sampled_from([1, 1, 2, 3, 20]), skip=st.integers(0, 3))
        def ecs_fault(self, action, when, code, times, skip):
            if code[0] == "Throttling" and when in ("after", "drop_after"):
                when = "before"  # ECS never runs a throttled call
            self.cloud.faults.inject(action, code=code[0], status=code[1], times=times, when=when, skip=skip)
            self.trace.append(f"ecs fault: {action} {code[0]} {when} x{times} skip {skip}")
            self.injected_outage = self.injected_outage or times >= 20

        @rule(when=st.sampled_from(["before", "drop"]), times=st.sampled_from([1, 2, 3, 20]))
        def mns_fault(self, when, times):
            self.cloud.faults.inject("PublishMessage", code="ServiceUnavailable", status=503, times=times, when=when)
            self.trace.append(f"mns fault: PublishMessage {when} x{times}")

        @rule()
        def faults_clear(self):
            self.cloud.faults.clear()
            STORE_FAULTS.reset()
            self.injected_outage = False
            self.trace.append("faults cleared")

        @rule(what=st.sampled_from(["stop", "start", "reinit"]), seconds=st.sampled_from(TIMINGS))
        def state_change_speed(self, what, seconds):
            self.cloud.ecs.timings[what] = seconds
            self.trace.append(f"timings: {what} takes {seconds} s")

        @rule(seconds=st.sampled_from([0.5, 2.0, 7.0, 30.0, 90.0, 400.0, 700.0]))
        def clock_jumps(self, seconds):
            self.clock.advance(seconds)
            self.sync_redis()
            self.trace.append(f"clock +{seconds} s")

        @rule(instance=st.sampled_from(sorted(I.values())), action=st.sampled_from(["start", "stop"]),
              delay=st.sampled_from([0.0, 0.0, 0.5, 2.0, 6.0]))
        def someone_else(self, instance, action, delay):
            """A person or another tool starts (now or in a moment) or stops an instance."""
            done = self.watch.external(instance, action, delay if action == "start" else 0.0)
            self.trace.append(f"someone else: {done}")
            self.scheduled_meanwhile = delay > 0

        scheduled_meanwhile = False

        # -- the store's failures (issue 20) --------------------------------------------------
        @precondition(lambda self: self.store)
        @rule()
        def store_restarts_empty(self):
            """A store without persistence restarts: every record is gone."""
            redis_client.flushdb()
            self.trace.append("store restarted empty")

        @precondition(lambda self: self.store)
        @rule(pattern=st.sampled_from(["reinit:event:*", "reinit:request:*", "reinit:*"]), pick=st.integers(0, 1000))
        def store_evicts(self, pattern, pick):
            """A volatile-* policy evicts keys that have an expiry: one, or all that match."""
            keys = sorted(redis_client.scan_iter(pattern))
            gone = keys if pick % 2 else keys[pick % len(keys):][:1] if keys else []
            for key in gone:
                redis_client.delete(key)
            self.trace.append(f"store evicted {len(gone)} of {pattern}")

        @precondition(lambda self: self.store)
        @rule(when=st.sampled_from(["after", "after", "before"]), times=st.sampled_from([1, 1, 2, 3]))
        def store_stumbles(self, when, times):
            """The next writes to the store fail: unreachable (before), or run with the answer lost (after)."""
            STORE_FAULTS.arm(when, times)
            self.trace.append(f"store fault: {when} x{times}")

        @precondition(lambda self: self.store and self.watch.ttl is None)
        @rule()
        def store_ttl_below_the_timeout(self):
            """REINIT_IDEMPOTENCY_TTL shorter than the function's timeout: no claim may expire
            under its holder (and past the TTL the same key is a new request)."""
            self.env["REINIT_IDEMPOTENCY_TTL"] = "30"
            self.watch.ttl = 30.0
            self.trace.append("store TTL 30 s (timeout 120 s)")

        @rule()
        def secret_rotated(self):
            """The webhook secret rotates between an invocation and its retries."""
            self.env["REINIT_WEBHOOK_SECRET"] = self.next_id("whsec-rotated")
            self.trace.append("webhook secret rotated")

        @rule(disk=st.sampled_from([D[1], D[2], D[3], D[4], D[6]]),
              how=st.sampled_from(["remove-now", "remove-at-stop", "remove-at-stop", "restore"]))
        def tags_changed(self, disk, how):
            """Someone else takes a disk out of the fleet (now, or while its instance stops), or puts it back."""
            b = self.cloud.ecs
            with b.lock:
                if how == "restore":
                    b.disks[disk].tags["reinit-allowed"] = "true"
                    self.watch.untag_at_stop.pop(DISK_INSTANCE[disk], None)
                elif how == "remove-now":
                    b.disks[disk].tags.pop("reinit-allowed", None)
                else:
                    self.watch.untag_at_stop[DISK_INSTANCE[disk]] = disk
            self.trace.append(f"someone else: tag of {disk}: {how}")

    return Model


PHASES = [Phase.explicit, Phase.reuse, Phase.generate, *([Phase.shrink] if SHRINK else [])]
SWITCH = CrashSwitch()
STORE_FAULTS = StoreFaults()
TAP = LogTap()


def test_reliability_model(redis_url, monkeypatch, capsys):
    figures = Figures()
    SWITCH.install(monkeypatch)
    STORE_FAULTS.install(monkeypatch)
    logger = logging.getLogger("reinit")
    monkeypatch.setattr(logger, "handlers", [TAP])
    monkeypatch.setattr(logger, "propagate", False)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    monkeypatch.setattr(index, "_app", index._app)
    Model = make_model(redis_url, figures)
    began = time.monotonic()
    try:
        run_state_machine_as_test(Model, settings=settings(
            max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False, phases=PHASES))
    finally:
        logger.setLevel(old_level)
        with capsys.disabled():
            print("\n" + figures.line(time.monotonic() - began))
            if figures.first_violation:
                print("model: first violation: " + figures.first_violation)
            if CHECKED != "all" and os.environ.get("REINIT_MODEL_EXAMPLES_OUT"):
                with open(os.environ["REINIT_MODEL_EXAMPLES_OUT"], "w") as out:
                    out.write("\n\n".join(figures.examples.values()) + "\n")
    assert figures.first_violation is None
    assert figures.steps >= MIN_STEPS, f"only {figures.steps} steps were explored; REINIT_MODEL_MIN_STEPS is {MIN_STEPS}"
