"""The model-based test of the hand-offs between invocations (issue 19; INTERFACE.md section
13.5; docs/handoffs.md): the world of tests/test_model.py widened past one invocation.

Hypothesis drives the real handler against the emulator and a real redis-server, with one
ManualClock (wall time moves with it, so claims expire). The world: deliveries of single
requests with evidence snapshots (which outlast the invocation and are continued) and of
batches (split into chunks); an FC that queues the async invocations the function makes
(continuations, chunks), runs them in the order the test draws, retries an invocation that
failed or was killed (same request id, at most RETRIES times, then its failure destination)
and answers 409 to a task id it has seen; the process killed at any HTTP call, among them
right after FC accepted an InvokeFunction and before the store recorded it; another day
(every record's TTL expires, and a ClientToken is used again: a new request); disks
detached and attached to another instance while a snapshot runs; MNS outages of a few
seconds; ECS and FC faults; a slow pace and short timeouts, so that a batch reaches its
deadline.

A request of the model is (idempotency key, day): what the function must treat as one.
Invariants:
- never-twice: no disk is wiped twice for one request with its instance active in between;
- never-silent: every invocation that ends normally published every outcome it answered,
  and by the end of the day every disk a request named has a final outcome published by
  one of its invocations (parent, retry, continuation, chunk), or an invocation of it
  failed for good (FC's failure destination has it);
- restart-symmetry: an instance the function stopped is running again (or will be), or a
  message of that request names it, or the request failed for good;
- evidence: a SnapshotId in a message was created for the same request;
- deadline: no ECS write (StopInstance, StartInstance, CreateSnapshot, ReInitDisk,
  TagResources) is sent after the invocation's deadline less its margin.

Size: REINIT_HANDOFF_EXAMPLES runs of at most REINIT_HANDOFF_STEPS steps (defaults 25 and
30, about 15 s); REINIT_HANDOFF_MIN_STEPS makes a soak prove its size;
REINIT_HANDOFF_SHRINK=1 shrinks a failing run. The soak (`make soak`) runs 100,000 steps.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter, defaultdict
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
from reinit import fleet
from reinit.app import PASSING, App, InvocationFailed
from tests.conftest import AK, LINUX_IMAGE, REGION, SECRET, TOKEN, TOPIC, WEBHOOK_SECRET, disk_id, instance_id
from tests.model_support import (
    ACTIVE,
    CloudWatch,
    CrashSwitch,
    Killed,
    LogTap,
    StepTag,
    advance_redis,
    judge,
    timer_event,
)

EXAMPLES = int(os.environ.get("REINIT_HANDOFF_EXAMPLES", "25"))
STEPS = int(os.environ.get("REINIT_HANDOFF_STEPS", "30"))
MIN_STEPS = int(os.environ.get("REINIT_HANDOFF_MIN_STEPS", "0"))
SHRINK = os.environ.get("REINIT_HANDOFF_SHRINK", "") == "1"
RETRIES = 3  # FC's retries of a failed async invocation (its default), then the failure destination
DAY = 2 * 86400  # "another day": longer than the records' TTL (REINIT_IDEMPOTENCY_TTL's default, a day)
D = {n: disk_id(n) for n in range(1, 5)}
I = {n: instance_id(n) for n in range(1, 7)}  # noqa: E741 - 5 and 6 have no disk of their own at first
TOKENS = ["tok-a", "tok-b", "tok-c"]
WRITES = ("ReInitDisk", "StopInstance", "StartInstance", "CreateSnapshot", "TagResources")


def seed(statuses: list[str], snapshot_seconds: float) -> dict:
    return {
        "region": REGION,
        "timings": {"stop": 3.0, "start": 3.0, "reinit": 5.0, "snapshot": snapshot_seconds},
        "credentials": [{"AccessKeyId": AK, "AccessKeySecret": SECRET, "SecurityToken": TOKEN}],
        "topics": [TOPIC],
        "images": [{"ImageId": LINUX_IMAGE, "OSType": "linux"}],
        "instances": [{"InstanceId": I[n], "Status": statuses[n - 1] if n <= 4 else "Stopped", "ImageId": LINUX_IMAGE}
                      for n in I],
        "disks": [{"DiskId": D[n], "InstanceId": I[n], "Type": "system", "ImageId": LINUX_IMAGE,
                   "Tags": {"reinit-allowed": "true"}} for n in D],
    }


@dataclass
class Figures:
    runs: int = 0
    steps: int = 0
    invocations: int = 0
    deliveries: int = 0
    fc_runs: int = 0  # queued async invocations run (continuations, chunks, retries)
    handoffs: int = 0  # InvokeFunction accepted (202)
    repeats_409: int = 0  # InvokeFunction answered 409: the task was there already
    continuations: int = 0
    chunks: int = 0
    kills: int = 0
    kills_after_invoke: int = 0  # killed right after FC accepted an InvokeFunction
    retries: int = 0
    failed_for_good: int = 0
    days: int = 0  # TTL expiries: every record expired
    reused_keys: int = 0  # a ClientToken used again on another day
    disk_moves: int = 0
    mns_outages: int = 0
    deadline_cuts: int = 0  # batch disks not attempted: their turn would come after the deadline
    wipes: int = 0
    violations: int = 0
    by_invariant: Counter = field(default_factory=Counter)
    first_violation: str | None = None

    def line(self, seconds: float) -> str:
        return (f"handoffs model: {self.runs} runs, {self.steps} steps, {self.invocations} invocations "
                f"({self.deliveries} deliveries, {self.fc_runs} run by FC's queue: {self.continuations} continuations, "
                f"{self.chunks} chunks; {self.retries} FC retries, {self.failed_for_good} failed for good), "
                f"{self.handoffs} hand-offs accepted, {self.repeats_409} answered 409, {self.kills} kills "
                f"({self.kills_after_invoke} right after an accepted InvokeFunction), {self.days} TTL expiries "
                f"(days), {self.reused_keys} keys reused on another day, {self.disk_moves} disk moves, "
                f"{self.mns_outages} MNS outages, {self.deadline_cuts} disks cut at the deadline, {self.wipes} wipes, "
                f"{self.violations} violations; {seconds:.0f} s"
                + (f"\nhandoffs model: violations by invariant: {dict(self.by_invariant)}" if self.by_invariant else ""))


@dataclass(eq=False)
class Job:
    """One async invocation as FC holds it: its payload and request id (kept across retries)."""

    event: bytes
    request_id: str
    origin: str  # the model request it belongs to
    kind: str  # delivery, continuation, chunk
    retries: int = 0


@dataclass
class Request:
    origin: str
    targets: list  # the disks it names
    failed_for_good: bool = False


def make_model(redis_url: str, figures: Figures):
    import redis

    redis_client = redis.Redis.from_url(redis_url)

    class Model(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            figures.runs += 1
            self.cloud = None
            self.trace: list[str] = []

        @initialize(statuses=st.lists(st.sampled_from(["Stopped", "Running"]), min_size=4, max_size=4),
                    snapshot=st.sampled_from([20.0, 100.0, 400.0]), timeout=st.sampled_from([30, 60, 120, 300]),
                    chunk=st.sampled_from(["1", "2", "8"]), rate=st.sampled_from([None, "0.1", "0.1", "0.5"]))
        def start(self, statuses, snapshot, timeout, chunk, rate):
            self.clock = ManualClock()
            self.cloud = Emulator(seed(statuses, snapshot), clock=self.clock)
            self.cloud._server.handle_error = lambda *_: None  # a killed process resets its connections
            self.cloud.start()
            self.watch = CloudWatch(self.cloud.ecs)
            self.watch.install()
            self.timeout = timeout
            self.cloud.fc.register("reinit", None, timeout=timeout, async_task=True)
            self.env = {
                "REINIT_REGION": REGION, "REINIT_ECS_ENDPOINT": self.cloud.endpoint,
                "REINIT_MNS_ENDPOINT": self.cloud.endpoint, "REINIT_FC_ENDPOINT": self.cloud.endpoint,
                "REINIT_FUNCTION_NAME": "reinit", "REINIT_TOPIC": TOPIC, "REINIT_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "ALIBABA_CLOUD_ACCESS_KEY_ID": AK, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET,
                "ALIBABA_CLOUD_SECURITY_TOKEN": TOKEN, "REINIT_IDEMPOTENCY_URL": redis_url,
                "REINIT_FLEET_CHUNK": chunk, "REINIT_POLL_SECONDS": "5",
            }
            if rate:
                self.env["REINIT_FLEET_RATE"] = rate
            redis_client.flushdb()
            self.wall0 = time.time()
            self.app = self.new_app()
            self.synced = self.clock.now()
            self.day = 0
            self.n = 0
            self.queue: list[Job] = []
            self.requests: dict[str, Request] = {}
            self.bodies: dict[str, dict] = {}  # token -> today's request body for it
            self.deliveries: list[Job] = []  # today's, for redeliveries
            self.origin_of: dict[str, str] = {}  # invocation request id -> model request
            self.kind_of: dict[str, str] = {}  # invocation request id -> delivery, continuation, chunk
            self.snapshot_owner: dict[str, str] = {}
            self.writes: list[tuple[str, float]] = []  # (action, when) in the current job
            self.stops: list[tuple[str, str]] = []  # (instance, model request) today
            self.messages_seen = 0
            self.origin = ""
            self.kill_after_invoke = False
            self.hook_cloud()
            self.trace.append(f"start: instances {statuses}, snapshot {snapshot} s, timeout {timeout} s, "
                              f"chunk {chunk}, rate {rate}")

        def new_app(self) -> App:
            app = App(env=self.env, clock=self.clock.now, sleep=self.clock.advance, random=lambda: 0.5,
                      wall=lambda: self.wall0 + self.clock.now())
            index._app = app
            return app

        def hook_cloud(self) -> None:
            """Note each write with its time, who made each snapshot, and which request queued each job."""
            b, fc = self.cloud.ecs, self.cloud.fc
            for name, action in (("reinit_disk", "ReInitDisk"), ("stop_instance", "StopInstance"),
                                 ("start_instance", "StartInstance"), ("tag_resources", "TagResources"),
                                 ("untag_resources", "UntagResources")):
                real = getattr(b, name)

                def noted(*args, _real=real, _action=action, **kwargs):
                    self.writes.append((_action, self.clock.now()))
                    result = _real(*args, **kwargs)
                    if _action == "StopInstance":
                        self.stops.append((args[0], self.origin))
                    return result

                setattr(b, name, noted)
            create = b.create_snapshot

            def create_snapshot(*args, **kwargs):
                self.writes.append(("CreateSnapshot", self.clock.now()))
                snapshot_id = create(*args, **kwargs)
                self.snapshot_owner.setdefault(snapshot_id, self.origin)
                return snapshot_id

            b.create_snapshot = create_snapshot
            invoke = fc.invoke_async

            def invoke_async(name, payload, task_id=None):
                try:
                    request_id = invoke(name, payload, task_id)
                except Exception:
                    figures.repeats_409 += 1
                    raise
                figures.handoffs += 1
                if self.kill_after_invoke:  # the process dies as FC's 202 comes back, before the store hears of it
                    with SWITCH._lock:
                        SWITCH.armed = (SWITCH.count, "after")
                body = json.loads(payload)
                kind = "continuation" if "Continuation" in body else "chunk"
                with fc._lock:
                    fc.queue.pop()  # the model is FC's queue: it runs the job when a rule says so
                self.queue.append(Job(payload, request_id, self.origin, kind))
                self.origin_of[request_id] = self.origin
                return request_id

            fc.invoke_async = invoke_async

        def teardown(self):
            if self.cloud is not None:
                try:
                    self.end_of_day()
                finally:
                    self.cloud.stop()

        # -- requests ------------------------------------------------------------------------
        def next_id(self, prefix: str) -> str:
            self.n += 1
            return f"{prefix}-{figures.runs}-{self.n}"

        def draw_body(self, data) -> dict:
            if data.draw(st.integers(0, 9), label="shape") < 7:
                body = {"DiskId": data.draw(st.sampled_from(sorted(D.values())), label="disk"), "Snapshot": True}
                if data.draw(st.booleans(), label="stop"):
                    body["StopInstance"] = True
            else:
                body = {"DiskIds": data.draw(st.lists(st.sampled_from(sorted(D.values())), min_size=2, max_size=4,
                                                      unique=True), label="disks"), "StopInstance": True}
                if data.draw(st.integers(0, 2), label="batch snapshot") == 0:
                    body["Snapshot"] = True
            if data.draw(st.booleans(), label="wait"):
                body["WaitForCompletion"] = True
            return body

        def new_delivery(self, data) -> Job:
            kind = data.draw(st.sampled_from(["invoke", "timer"]), label="kind")
            token = data.draw(st.sampled_from([None, *TOKENS]), label="token")
            body = self.bodies.get(token) if token else None
            if body is None:
                body = self.draw_body(data)
                if token:
                    body = {**body, "ClientToken": token}
                    self.bodies[token] = body
                    figures.reused_keys += self.day > 0
            rid = self.next_id("1-req")
            if kind == "timer":
                when = f"2026-12-{1 + self.day:02d}T02:00:00Z#{self.next_id('t')}"
                event, key = timer_event("nightly", when, body), f"timer:{token or 'nightly@' + when}"
            else:
                event, key = dict(body), f"invoke:{token or rid}"
            if token:
                key = f"client-token:{token}"
            origin = f"{key}@day{self.day}"
            targets = [body["DiskId"]] if "DiskId" in body else list(body["DiskIds"])
            self.requests.setdefault(origin, Request(origin, targets))
            job = Job(json.dumps(event).encode(), rid, origin, "delivery")
            self.deliveries.append(job)
            return job

        # -- running one invocation ------------------------------------------------------------
        def run_job(self, job: Job, crash: tuple[int, str] | None = None) -> None:
            self.origin = job.origin
            self.origin_of[job.request_id] = job.origin
            self.kind_of[job.request_id] = job.kind
            self.watch.tag = StepTag(job.origin, True, f"{job.kind} {job.origin}")
            marks = (len(self.cloud.requests), len(self.watch.wipes))
            stops_mark = len(self.stops)
            self.writes = []
            TAP.take()
            start = self.clock.now()
            self.kill_after_invoke = crash is not None and crash[1] == "after-invoke"
            if crash:
                SWITCH.arm(10**9 if self.kill_after_invoke else crash[0], "after" if self.kill_after_invoke else crash[1])
            ctx = SimpleNamespace(request_id=job.request_id, credentials=None,
                                  function=SimpleNamespace(name="reinit", timeout=self.timeout))
            answer, raised, escaped = None, False, None
            try:
                answer = index.handler(job.event, ctx)
            except InvocationFailed as failed:
                raised, answer = True, json.loads(str(failed))
            except Killed:
                pass
            except BaseException as err:  # noqa: BLE001 - anything else escaping is a finding
                escaped = f"{type(err).__name__}: {err}"[:300]
            killed = SWITCH.hit
            SWITCH.reset()
            self.kill_after_invoke = False
            self.watch.tag = StepTag()
            figures.invocations += 1
            figures.wipes += len(self.watch.wipes) - marks[1]
            calls = self.cloud.requests[marks[0]:]
            if killed or raised:
                # As in tests/test_model.py: what a killed process stopped, its retry may not know
                # (the claim records it only once ReInitDisk is near): not held to restart-symmetry.
                # Nor what an invocation that failed stopped: where the message naming it could
                # not be published, FC's retry does not know it either (a known limit: a
                # released claim keeps no StoppedByUs; docs/handoffs.md).
                self.stops[stops_mark:] = [(inst, None) for inst, _ in self.stops[stops_mark:]]
                figures.kills += 1
                if calls and calls[-1].get("Service") == "fc" and killed.startswith("after"):
                    figures.kills_after_invoke += 1
                self.app = self.new_app()
            problems = self.check_job(job, answer, raised or bool(killed), escaped, start)
            self.trace.append(self.describe(job, answer, raised, killed, calls))
            if raised or killed:
                self.retry_later(job)
            self.sync_redis()
            self.fail_on(problems)

        def retry_later(self, job: Job) -> None:
            if job.retries < RETRIES:
                job.retries += 1
                self.queue.append(job)
            else:  # FC sends it to the failure destination: not silent
                figures.failed_for_good += 1
                self.requests[job.origin].failed_for_good = True

        def check_job(self, job: Job, answer, ended_badly: bool, escaped: str | None, start: float) -> list[str]:
            problems = []
            if escaped:
                problems.append(f"never-silent: {job.kind} {job.origin}: the handler raised {escaped}")
            ends = start + self.timeout - min(5.0, self.timeout * 0.1)
            late = [(a, round(t - start, 1)) for a, t in self.writes if t > ends + 1e-6]
            if late and not escaped:
                problems.append(f"deadline: {job.kind} {job.origin} sent {late} after its deadline "
                                f"({ends - start:.1f} s of {self.timeout} s)")
            messages = [json.loads(m["MessageBody"]) for m in self.cloud.messages(TOPIC)[self.messages_seen:]]
            self.messages_seen += len(messages)
            for m in messages:
                owner = self.snapshot_owner.get(m.get("SnapshotId")) if m.get("SnapshotId") else None
                origin = self.origin_of.get(m.get("InvocationId"))
                if m.get("SnapshotId") and owner != origin:
                    problems.append(f"evidence: {origin} named snapshot {m['SnapshotId']} made for {owner}")
                if m.get("Code") == "WaitTimeout" and ("Not attempted" in str(m.get("Message"))
                                                       or "was not sent" in str(m.get("Message"))):
                    figures.deadline_cuts += 1
            if ended_badly or escaped or answer is None:
                return problems
            mine = [m for m in messages if m.get("InvocationId") == job.request_id]
            wanted = [answer] if answer.get("Schema") != "reinit.batch.v1" else [*answer.get("Results", []), answer]
            for r in wanted:
                if not any(m.get("Schema") == r.get("Schema") and m.get("DiskId") == r.get("DiskId") for m in mine):
                    problems.append(f"never-silent: {job.kind} {job.origin} ({job.request_id}): "
                                    f"{r.get('Outcome')}/{r.get('Code')} for {r.get('DiskId')} was not published "
                                    "and the invocation did not fail")
            return problems

        def describe(self, job, answer, raised, killed, calls) -> str:
            writes = ", ".join(f"{c['Action']}({(c.get('Params') or {}).get('DiskId') or (c.get('Params') or {}).get('InstanceId') or ''})"
                               f"{'=' + str(c.get('Status')) if c.get('Service') == 'fc' else ''}"
                               for c in calls if c["Action"] in (*WRITES, "InvokeFunction"))
            if answer and answer.get("Schema") == "reinit.batch.v1":
                said = ", ".join(f"{r.get('DiskId')}: {r.get('Outcome')}/{r.get('Code')}" for r in answer.get("Results", []))
                said = f"summary {answer.get('Outcome')}/{answer.get('Code')} chunks={answer.get('Chunks')} [{said}]"
            else:
                said = answer and f"{answer.get('Outcome')}/{answer.get('Code')} {answer.get('ContinuedAs') or ''}"
            return (f"{job.kind} {job.origin} rid={job.request_id} try {job.retries}: "
                    f"{'killed ' + killed if killed else said}{' (raised)' if raised else ''} | {writes or '-'} "
                    f"| t={self.clock.now():.1f}")

        def sync_redis(self) -> None:
            now = self.clock.now()
            if now > self.synced:
                advance_redis(redis_client, now - self.synced)
            self.synced = now

        def fail_on(self, problems: list[str]) -> None:
            problems, self.watch.violations = problems + self.watch.violations, []
            judge(figures, problems, self.trace, 60)

        # -- the end of a day --------------------------------------------------------------------
        def drain(self) -> None:
            """FC runs what it holds (and what that queues) before the day ends."""
            while self.queue:
                figures.fc_runs += 1
                job = self.queue.pop(0)
                self.count_kind(job)
                self.run_job(job)

        def end_of_day(self) -> None:
            self.drain()
            self.clock.advance(60)  # the last starts take effect
            messages = [json.loads(m["MessageBody"]) for m in self.cloud.messages(TOPIC)]
            by_origin = defaultdict(list)
            for m in messages:
                by_origin[self.origin_of.get(m.get("InvocationId"))].append(m)
            problems = []
            for req in self.requests.values():
                if req.failed_for_good:
                    continue
                mine = by_origin[req.origin]
                refused = any(m.get("Schema") == "reinit.batch.v1" and m.get("Code") and not m.get("Chunks")
                              and not m.get("Total") for m in mine)
                for disk in req.targets:
                    # A Retryable outcome invites its caller to repeat; a hand-off's caller is
                    # the function, which must have FC retry it instead.
                    final = [m for m in mine if m.get("DiskId") == disk and "ContinuedAs" not in m
                             and m.get("Code") != "Conflict.InProgress" and not (
                                 m.get("Retryable") and m.get("Code") in PASSING and not m.get("EcsRequestId")
                                 and self.kind_of.get(m.get("InvocationId")) != "delivery")]
                    if not final and not refused:
                        problems.append(f"never-silent: {req.origin}: no final outcome for {disk} was published "
                                        f"and no invocation of it failed (its messages: "
                                        f"{[(m.get('DiskId'), m.get('Code'), m.get('ContinuedAs'), m.get('Retryable'), m.get('EcsRequestId'), m.get('Message')) for m in mine if m.get('DiskId') == disk]})")
            last_stop = dict(self.stops)  # the last request to stop an instance answers for it
            for inst, origin in last_stop.items():
                req = self.requests.get(origin) if origin else None  # None: stopped by a killed process
                if req is None or req.failed_for_good or self.will_be_active(inst):
                    continue
                named = any(inst in str(m.get("Message")) or inst in (m.get("InstanceLeftStopped"),
                                                                     m.get("InstanceRestarted"))
                            for m in by_origin[origin])
                if not named:
                    problems.append(f"restart-symmetry: {origin} stopped {inst}; it is {self.watch.status(inst)} "
                                    f"and no message of that request names it (it went "
                                    f"{[(round(t, 1), s) for t, s in self.watch.history[inst][-8:]]})")
            self.stops = []
            self.fail_on(problems)

        def will_be_active(self, inst: str) -> bool:
            return self.watch.will_be_active(inst) or self.watch.status(inst) in ACTIVE

        def count_kind(self, job: Job) -> None:
            if job.kind == "continuation":
                figures.continuations += 1
            elif job.kind == "chunk":
                figures.chunks += 1
            if job.retries:
                figures.retries += 1

        @invariant()
        def counted(self):
            if self.cloud is not None:
                figures.steps += 1

        # -- rules -----------------------------------------------------------------------------
        @rule(data=st.data())
        def deliver(self, data):
            figures.deliveries += 1
            self.run_job(self.new_delivery(data))

        @precondition(lambda self: self.deliveries)
        @rule(pick=st.integers(0, 1000))
        def redeliver(self, pick):
            """The trigger delivers the same event again: a new invocation (a new request id)."""
            old = self.deliveries[pick % len(self.deliveries)]
            figures.deliveries += 1
            body = json.loads(old.event)
            origin = old.origin
            if "payload" not in body and "ClientToken" not in body:  # an invoke is keyed by its request id
                rid = self.next_id("1-req")
                origin = f"invoke:{rid}@day{self.day}"
                self.requests.setdefault(origin, Request(origin, list(self.requests[old.origin].targets)))
                self.run_job(Job(old.event, rid, origin, "delivery"))
                return
            self.run_job(Job(old.event, self.next_id("1-req"), origin, "delivery"))

        @precondition(lambda self: self.queue)
        @rule(pick=st.integers(0, 1000))
        def fc_runs_one(self, pick):
            """FC runs one queued async invocation (a continuation, a chunk, or a retry)."""
            job = self.queue.pop(pick % len(self.queue))
            figures.fc_runs += 1
            self.count_kind(job)
            self.run_job(job)

        @rule(data=st.data(), k=st.integers(1, 14), when=st.sampled_from(["before", "after", "after-invoke"]))
        def killed(self, data, k, when):
            """The process dies at its k-th HTTP call (ECS, MNS or FC), or as the answer to its
            first accepted InvokeFunction comes back (FC has the task; the store does not know)."""
            pick = data.draw(st.integers(-1, 1000), label="queued job")
            if pick >= 0 and self.queue:
                job = self.queue.pop(pick % len(self.queue))
                figures.fc_runs += 1
                self.count_kind(job)
            else:
                job = self.new_delivery(data)
                figures.deliveries += 1
            self.run_job(job, crash=(k, when))

        @rule()
        def another_day(self):
            """The day ends (FC has run what it held); two days later every record has expired."""
            self.end_of_day()
            self.clock.advance(DAY)
            self.sync_redis()
            self.cloud.faults.clear()
            self.day += 1
            figures.days += 1
            self.bodies, self.deliveries = {}, []
            self.trace.append(f"another day: {self.day}")

        @rule(disk=st.sampled_from(sorted(D.values())), to=st.sampled_from([I[5], I[6], None]))
        def disk_moves(self, disk, to):
            """Someone detaches a disk (its instance stopped) and attaches it to another
            instance, or back home; a snapshot of it may be under way."""
            b = self.cloud.ecs
            home = I[int(disk[-1])]
            with b.lock:
                b._settle()
                d = b.disks[disk]
                target = to or home
                if d.status != "In_use" or d.instance_id == target or b.instances[d.instance_id].status != "Stopped" \
                        or b.instances[target].status != "Stopped":
                    return
                d.instance_id = target
            figures.disk_moves += 1
            self.trace.append(f"disk {disk} moved to {target}")

        @rule(times=st.sampled_from([2, 4, 8]))
        def mns_outage(self, times):
            self.cloud.faults.inject("PublishMessage", code="ServiceUnavailable", status=503, times=times)
            figures.mns_outages += 1
            self.trace.append(f"mns outage: {times} failures")

        @rule(action=st.sampled_from(["ReInitDisk", "CreateSnapshot", "DescribeSnapshots", "TagResources",
                                      "InvokeFunction", "StartInstance"]),
              when=st.sampled_from(["before", "after", "drop_after"]), times=st.sampled_from([1, 2, 20]))
        def cloud_fault(self, action, when, times):
            self.cloud.faults.inject(action, code="ServiceUnavailable", status=503, times=times, when=when)
            self.trace.append(f"fault: {action} {when} x{times}")

        @rule()
        def faults_clear(self):
            self.cloud.faults.clear()
            self.trace.append("faults cleared")

        @rule(seconds=st.sampled_from([5.0, 60.0, 300.0, 900.0]))
        def clock_jumps(self, seconds):
            self.clock.advance(seconds)
            self.sync_redis()
            self.trace.append(f"clock +{seconds} s")

    return Model


PHASES = [Phase.explicit, Phase.reuse, Phase.generate, *([Phase.shrink] if SHRINK else [])]
SWITCH = CrashSwitch()
TAP = LogTap()


def test_handoffs_model(redis_url, monkeypatch, capsys):
    figures = Figures()
    SWITCH.install(monkeypatch)
    # One disk group at a time: the workers of a batch sleep on one ManualClock, where their
    # sleeps would add up instead of overlapping, and the deadline check would be the clock's.
    monkeypatch.setattr(fleet, "WORKERS", 1)
    logger = logging.getLogger("reinit")
    monkeypatch.setattr(logger, "handlers", [TAP])
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(index, "_app", index._app)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    began = time.monotonic()
    try:
        run_state_machine_as_test(make_model(redis_url, figures), settings=settings(
            max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False, phases=PHASES))
    finally:
        logger.setLevel(old_level)
        with capsys.disabled():
            print("\n" + figures.line(time.monotonic() - began))
            if figures.first_violation:
                print("handoffs model: first violation: " + figures.first_violation)
    assert figures.first_violation is None
    assert figures.steps >= MIN_STEPS, f"only {figures.steps} steps were explored; REINIT_HANDOFF_MIN_STEPS is {MIN_STEPS}"


_ = threading  # the CrashSwitch kills every thread of the process
