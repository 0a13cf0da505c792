"""The fleet at scale (issue 23): 10,000 and 100,000 disks, split as a deployed function
splits them, in virtual time.

The parent is the real App (`App.handle`) with FC's timeout of 600 s and
`REINIT_FLEET_CHUNK` unset; it hands chunks to `InProcessFc`, which runs them as Function
Compute runs asynchronous invocations: each at once (after START_LATENCY), side by side,
each in an instance of its own (a new App, or a warm one that has finished its last
invocation, keeping what it learned), and a killed one is retried once (after
RETRY_DELAY) on another instance. Every instance calls the same emulated ECS with the
same quota (bench/fleet.py's `Cloud` and limiters), on one virtual clock.

Memory per invocation is measured apart (tracemalloc peak, one invocation alone): the
parent at N, and the largest chunk.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import tempfile
import threading
import tracemalloc
import uuid
from collections import Counter
from types import SimpleNamespace

import reinit.chunks
from bench.common import CRED, fleet_seed
from bench.fleet import ACTION, Cloud, InProcessEcs, Limiter
from bench.vclock import VirtualClock
from reinit.app import App, InvocationFailed

TIMEOUT = 600  # FC's limit for an event function, as s.yaml deploys it
START_LATENCY = 0.2  # seconds from InvokeFunction to the invocation's start (virtual)
RETRY_DELAY = 1.0


class Killed(BaseException):
    """The instance is gone (OOM, a crash): nothing of the invocation runs on."""


class InProcessFc:
    """Function Compute's asynchronous invocations, in-process on the virtual clock."""

    def __init__(self, clock: VirtualClock, cloud: Cloud, env: dict, kill_every: int = 0, seed: int = 1):
        self.clock, self.cloud, self.env = clock, cloud, env
        self.kill_every = kill_every  # every kill_every-th chunk invocation is killed part-way (0: none)
        self.random = random.Random(seed)
        self.tasks: set[str] = set()
        self.idle: list[App] = []
        self.threads: list[threading.Thread] = []
        self.records: list[dict] = []
        self.active = self.peak = self.instances = self.kills = self.started = 0
        self._lock = threading.Lock()

    def app(self, ecs_for=None) -> App:
        app = App(env=self.env, clock=self.clock.now, sleep=self.clock.sleep, random=self.random.random)
        ecs = ecs_for or InProcessEcs(self.cloud, "cn-hangzhou")
        app.clients.get = lambda config, creds: (ecs, self.cloud)
        app.clients.ecs_for = lambda config, creds, region=None: ecs
        return app

    # -- the Dispatcher's interface (reinit.chunks.Dispatcher) ---------------------------------
    def __call__(self, endpoint, region, credentials, function_name):
        return self

    def invoke_async(self, payload: dict, task_id: str) -> str:
        with self._lock:
            if task_id in self.tasks:
                return reinit.chunks.ALREADY_HANDED_OFF
            self.tasks.add(task_id)
            request_id = "1-" + uuid.uuid4().hex[:16]
            thread = threading.Thread(target=self._run, args=(json.dumps(payload).encode(), request_id))
            self.threads.append(thread)
        thread.start()
        return request_id

    def _run(self, payload: bytes, request_id: str) -> None:
        self.clock.sleep(START_LATENCY)
        for attempt in range(2):
            if self._invoke(payload, request_id, attempt):
                return
            self.clock.sleep(RETRY_DELAY)

    def _invoke(self, payload: bytes, request_id: str, attempt: int) -> bool:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            number, self.started = self.started, self.started + 1  # invocations started, not ended: they overlap
            kill = self.kill_every and attempt == 0 and number % self.kill_every == self.kill_every - 1
            app = self.idle.pop() if self.idle and not kill else None
        if app is None:
            app = self._killable(self.random.randint(20, 200)) if kill else self.app()
            self.instances += 1
        record = {"Payload": json.loads(payload), "Attempt": attempt, "Start": self.clock.now()}
        context = SimpleNamespace(request_id=request_id, credentials=None,
                                  function=SimpleNamespace(name="reinit", timeout=TIMEOUT))
        done = True
        try:
            record["Result"] = app.handle(payload, context)
        except InvocationFailed as err:
            record["Error"] = str(err)[:200]
        except Killed:
            record["Killed"] = True
            done = False
        record["End"] = self.clock.now()
        with self._lock:
            self.records.append(record)
            self.active -= 1
            if done:
                self.idle.append(app)
            else:
                self.kills += 1
        return done

    def _killable(self, calls: int) -> App:
        """An instance that dies at its `calls`-th ECS call, and at every call after it."""
        fc, left = self, [calls]

        class Dying(InProcessEcs):
            def call(self, action, query):
                with fc._lock:
                    left[0] -= 1
                    dead = left[0] <= 0
                if dead:
                    raise Killed()
                return super().call(action, query)

        return self.app(Dying(self.cloud, "cn-hangzhou"))

    def wait(self) -> None:
        """Until every invocation (and every one it started) has ended."""
        while True:
            with self._lock:
                alive = [t for t in self.threads if t.is_alive()]
            if not alive:
                return
            for thread in alive:
                thread.join()


def environment(n: int, store: str | None = None) -> dict:
    return ({"REINIT_IDEMPOTENCY_URL": store} if store else {}) | {"REINIT_REGION": "cn-hangzhou", "REINIT_ECS_ENDPOINT": "http://127.0.0.1:9",
            "REINIT_MNS_ENDPOINT": "http://127.0.0.1:9", "REINIT_FC_ENDPOINT": "http://127.0.0.1:9",
            "REINIT_FUNCTION_NAME": "reinit", "REINIT_TOPIC": "reinit-results", "REINIT_MAX_DISKS": str(n),
            "FC_FUNCTION_TIMEOUT": str(TIMEOUT), "ALIBABA_CLOUD_ACCESS_KEY_ID": CRED["AccessKeyId"],
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": CRED["AccessKeySecret"],
            "ALIBABA_CLOUD_SECURITY_TOKEN": CRED["SecurityToken"]}


EVENT = {"triggerTime": "2026-11-26T02:00:00Z", "triggerName": "bench",
         "payload": json.dumps({"Tags": [{"Key": "fleet", "Value": "bench"}]})}


RUNNING: dict = {}  # the run under way, for the progress line


def progress(every: float) -> None:
    """A line to stderr every `every` real seconds: how far the run under way has come.
    Started before any run's clock, so the clock does not wait for it (bench/vclock.py)."""
    import sys
    import time

    def report():
        while True:
            time.sleep(every)
            run = dict(RUNNING)
            if run:
                done = sum(1 for _, action, ok in list(run["cloud"].log) if ok and action == ACTION)
                print(f"  [{run['name']}, N = {run['n']}: virtual {run['clock'].now() - run['start']:.0f} s, "
                      f"{done} ReInitDisk done]", file=sys.stderr, flush=True)

    threading.Thread(target=report, name="bench-progress", daemon=True).start()


def run_scale(limiter: Limiter, n: int, kill_every: int = 0, seed: int = 1, store: str | None = None) -> dict:
    """One fleet of n disks against one limiter: the parent, then every chunk FC runs.
    `store`: the idempotency store's URL (redis://), where the run has one."""
    clock = VirtualClock()
    patched = reinit.chunks.Dispatcher
    try:
        cloud = Cloud(clock, fleet_seed(n, "bench", {"reinit-allowed": "true", "fleet": "bench"}))
        RUNNING.update(name=limiter.name, n=n, cloud=cloud, clock=clock, start=clock.now())
        start = clock.now()
        cloud.faults.set_quota(ACTION, limiter.kind, limiter.limit, limiter.window)
        if limiter.halve_at is not None:
            cloud.faults.set_quota(ACTION, limiter.kind, limiter.limit / 2, limiter.window, at=start + limiter.halve_at)
        fc = InProcessFc(clock, cloud, environment(n, store), kill_every, seed)
        reinit.chunks.Dispatcher = fc
        parent = fc.app().handle(json.dumps(EVENT).encode(), SimpleNamespace(
            request_id="parent", credentials=None, function=SimpleNamespace(name="reinit", timeout=TIMEOUT)))
        fc.wait()
        wall = max([clock.now()] + [r["End"] for r in fc.records]) - start
    finally:
        RUNNING.clear()
        reinit.chunks.Dispatcher = patched
        clock.close()
    return figures(limiter, n, cloud, fc, parent, wall, start, marks=store is not None)


def figures(limiter: Limiter, n: int, cloud: Cloud, fc: InProcessFc, parent: dict, wall: float, start: float,
            marks: bool = False) -> dict:
    """`marks`: the run has an idempotency store, so each wipe also writes its wipe mark on
    the disk first (TagResources, one a disk: issue 20), and the minimum counts them."""
    log = [(t - start, action, ok) for t, action, ok in cloud.log]
    throttled = sum(1 for _, _, ok in log if not ok)
    minimum = n * (2 if marks else 1) + 2 * math.ceil(n / 100)
    wiped = [d.reinit_count for d in cloud.backend.disks.values()]
    results = [r["Result"] for r in fc.records if isinstance(r.get("Result"), dict)]
    succeeded = sum(r.get("Counts", {}).get("Succeeded", 0) for r in results)
    # Where each disk ended: the chunk summaries (a killed attempt publishes none) name every
    # disk they decided; a disk is decided when it is in one, and must be in one only.
    named = Counter(item["DiskId"] for r in results for item in r.get("Results", []) if item.get("DiskId"))
    outcomes = Counter(item["Outcome"] for r in results for item in r.get("Results", []))
    hops = sum(1 for r in fc.records if r["Payload"].get("Hop") and r["Attempt"] == 0)
    return {"limiter": limiter.name, "n": n, "wall": wall, "ratio": wall / limiter.ideal(n),
            "throttled_share": throttled / max(1, len(log)), "calls": len(log) - throttled, "minimum": minimum,
            "over_min": (len(log) - throttled) / minimum - 1, "chunks": parent.get("Chunks", 0), "hops": hops,
            "invocations": len(fc.records), "kills": fc.kills, "peak": fc.peak, "instances": fc.instances,
            "succeeded": succeeded, "once": sum(1 for c in wiped if c == 1), "twice": sum(1 for c in wiped if c > 1),
            "decided": len(named), "decided_twice": sum(1 for c in named.values() if c > 1),
            "outcomes": dict(outcomes),
            "sends": [(t, ok) for t, action, ok in log if action == ACTION], "quota": limiter}


def peak_memory(n: int) -> dict:
    """tracemalloc peak of one invocation run alone: the parent at n (its chunks recorded,
    not run), then its largest chunk."""
    clock = VirtualClock()
    patched = reinit.chunks.Dispatcher
    sent: list[dict] = []

    class Recorder:
        def __init__(self, *a):
            pass

        def invoke_async(self, payload, task_id):
            sent.append(payload)
            return "1-recorded"

    try:
        cloud = Cloud(clock, fleet_seed(n, "bench", {"reinit-allowed": "true", "fleet": "bench"}))
        fc = InProcessFc(clock, cloud, environment(n))
        reinit.chunks.Dispatcher = Recorder
        context = SimpleNamespace(request_id="mem", credentials=None,
                                  function=SimpleNamespace(name="reinit", timeout=TIMEOUT))
        tracemalloc.start()
        fc.app().handle(json.dumps(EVENT).encode(), context)
        parent = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        biggest = max(sent, key=lambda p: len(p["DiskIds"])) if sent else None
        chunk = 0
        if biggest is not None:
            tracemalloc.start()
            fc.app().handle(json.dumps(biggest).encode(), context)
            chunk = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    finally:
        reinit.chunks.Dispatcher = patched
        clock.close()
    size = max((len(json.dumps(p).encode()) for p in sent), default=0)
    return {"parent_mb": parent / 2**20, "chunk_mb": chunk / 2**20, "chunk_disks": len(biggest["DiskIds"]) if biggest else n,
            "payload_kb": size / 1024}


def plot_scale(results: list[dict], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 2
    rows = math.ceil(len(results) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(12, 3.0 * rows), squeeze=False)
    for ax, r in zip(axes.flat, results, strict=False):
        limiter = r["quota"]
        width = max(1.0, round(r["wall"] / 200))  # about 200 bins a run
        bins = [0] * (int(r["wall"] / width) + 2)
        throttled = [0] * len(bins)
        for t, ok in r["sends"]:
            if 0 <= t < len(bins) * width:
                bins[int(t / width)] += 1 / width
                throttled[int(t / width)] += (not ok) / width
        xs = [i * width for i in range(len(bins))]
        ax.step(xs, bins, where="post", color="tab:blue", lw=1.2, label="ReInitDisk sent/s, all invocations")
        ax.step(xs, throttled, where="post", color="tab:red", lw=0.8, label="of which throttled")
        ax.plot(xs, [limiter.quota_at(x) for x in xs], "--", color="black", lw=1, label="quota")
        ax.set_title(f"{limiter.name}, N = {r['n']:,}: {r['ratio']:.2f}x the limit, {r['chunks']} chunks, "
                     f"{r['hops']} hand-offs", fontsize=9)
        ax.set_xlabel(f"seconds (virtual; {width:g} s bins)")
        ax.set_ylabel("calls a second")
        ax.set_ylim(bottom=0, top=limiter.quota * 1.8)
    for ax in list(axes.flat)[len(results):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.savefig(out, dpi=80)


def scale_row(limiter: Limiter, n: int, kills: int, seed: int) -> dict:
    """One row of the table, with a store of its own where chunks are killed."""
    with store_for(kills) as store:  # never twice after a kill is promised with a store (README)
        return run_scale(limiter, n, kills, seed, store)


@contextlib.contextmanager
def _rows(jobs: int):
    """Where the rows run: this process (jobs 1), or a pool of `jobs` processes."""
    if jobs <= 1:
        progress(60.0)
        yield None
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=jobs, initializer=progress, initargs=(60.0,)) as pool:
        yield pool


def _submit(pool, plan: list[tuple]) -> list:
    """A way to get each row of `plan`'s result, in its order: run here when asked (no pool),
    or a pool's future, the largest rows given to the pool first."""
    if pool is None:
        return [lambda row=row: scale_row(*row) for row in plan]
    futures = {i: pool.submit(scale_row, *plan[i]) for i in sorted(range(len(plan)), key=lambda i: -plan[i][1])}
    return [futures[i].result for i in range(len(plan))]


@contextlib.contextmanager
def store_for(kills: int):
    """A redis-server of its own for a run with kills (None for the others): FC's retry of a
    killed chunk takes over its claims and answers what it wiped from the store."""
    if not kills:
        yield None
        return
    from emulator.redis_server import RedisServer

    with tempfile.TemporaryDirectory() as workdir:
        server = RedisServer.start(workdir)
        try:
            yield server.url
        finally:
            server.stop()


def main_scale(limiters: list[Limiter], sizes: list[int], out: str, kill_every: int = 0, seed: int = 1,
               big: list[Limiter] | None = None, killed: list[Limiter] | None = None, jobs: int = 1) -> int:
    """The scale table (and picture): every limiter at every size (at the largest size only
    the `big` limiters, where given: it takes minutes each), then the `killed` limiters at
    the smallest size again with every `kill_every`-th (else every 2nd) chunk invocation
    killed once and retried by FC, then memory at each size. `jobs`: rows run in that many
    processes at once, the longest first (each row has its own virtual clock, so what is
    measured does not depend on it); the table is printed in its order all the same."""
    print(f"Split fleet, FC timeout {TIMEOUT} s, REINIT_FLEET_CHUNK unset, virtual time; ratio = wall / limit "
          f"(N / quota); thr = Throttling answers / all calls; over min = calls carried out / the minimum - 1; "
          f"decided = disks named in a chunk summary, in 2 = named in two")
    print(f"{'limiter':<28} {'N':>7} {'wall s':>8} {'ratio':>6} {'thr %':>6} {'calls':>7} {'minimum':>8} "
          f"{'over min':>8} {'chunks':>6} {'hand-offs':>9} {'kills':>5} {'peak':>4} {'once':>7} {'twice':>5} "
          f"{'decided':>7} {'in 2':>4}  outcomes")
    plan = [(limiter, n, kill_every, seed) for n in sizes
            for limiter in (big if big and n == max(sizes) and len(sizes) > 1 else limiters)]
    plan += [(limiter, min(sizes), kill_every or 2, seed) for limiter in killed or []]
    results = []
    with _rows(jobs) as pool:
        rows = _submit(pool, plan)
        for (_, n, kills, _), row in zip(plan, rows, strict=True):
            r = row()
            if not kills:
                results.append(r)
            name = r["limiter"] + (f", 1 in {kills} killed" if kills else "")
            print(f"{name:<28} {n:>7} {r['wall']:>8.0f} {r['ratio']:>6.3f} {r['throttled_share']:>6.1%} "
                  f"{r['calls']:>7} {r['minimum']:>8} {r['over_min']:>8.1%} {r['chunks']:>6} {r['hops']:>9} "
                  f"{r['kills']:>5} {r['peak']:>4} {r['once']:>7} {r['twice']:>5} {r['decided']:>7} "
                  f"{r['decided_twice']:>4}  {r['outcomes']}", flush=True)
    for n in sizes:
        m = peak_memory(n)  # alone in this process: tracemalloc would count another row's allocations
        print(f"memory, N = {n}: parent {m['parent_mb']:.1f} MB, largest chunk ({m['chunk_disks']} disks, "
              f"payload {m['payload_kb']:.0f} KB) {m['chunk_mb']:.1f} MB (tracemalloc peak, one invocation alone)",
              flush=True)
    if out:
        try:
            plot_scale(results, out)
            print(f"picture: {out}")
        except ImportError:
            print("no picture: matplotlib is not installed (requirements-dev.txt)")
    return 0
