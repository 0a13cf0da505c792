"""Fleet reset benchmark: does the pace find the ECS quota by itself? (issue 11)

N = 1,000 stopped, tagged instances; one timer event with `Tags` resets them all. ECS
takes 20 ms a call (every action, and each MNS publish too), and ReInitDisk has a quota,
one limiter a run:

- token buckets of 5, 20 and 50 calls a second (bursts of one second's worth);
- a fixed 1 s window of 20 calls; a fixed 60 s window of 600 calls (windows counted from
  the start of the run);
- a token bucket of 20 a second that is halved to 10 after 25 s (when half the disks
  would be done at the quota).

Three ways to do the work, for each limiter:
- `pace`: the batch with NOTHING configured (REINIT_FLEET_RATE at its default, 10);
- `at-quota`: the batch with REINIT_FLEET_RATE set to the quota (its starting value);
- `naive`: one single-disk request after another, no pace.

Printed for each: wall time / limit, where the limit is N / quota (for the halved quota:
25 s + 500 / 10 = 75 s), Throttling answers per disk, and calls ECS carried out (all but
the throttled ones) against the minimum (N ReInitDisk + ceil(N/100) of each Describe).

What runs: the real App (`App.handle`: parsing, the batch, workers, pace, retries,
notifications) against the emulator's own ECS model and quotas (`emulator/ecs`,
`emulator/faults.py`), called in-process: only the SDK and HTTP in between are left out.
Time is virtual (bench/vclock.py): the function, the emulated latency and the quotas share
one discrete-event clock, so runs are fast and do not depend on the machine's load. CPU
time costs no virtual time.

`--wire` runs the same in real time over HTTP and the SDK against the emulator's server,
as a cross-check of the virtual clock (slow: use a small N).

`--scale` runs the fleet split across invocations instead (bench/scale.py, issue 23): the
parent and its chunks side by side against the same limiters, at `--sizes` disks.

Run: .venv/bin/python -m bench.fleet [--n 1000] [--limiters b5,...] [--paths pace,...] [--plot FILE.png]
     .venv/bin/python -m bench.fleet --scale [--sizes 10000,100000] [--limiters ...] [--kill-rows b20] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import threading
import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace

from bench.common import CRED, fleet_seed
from bench.vclock import VirtualClock
from emulator.ecs import exceptions as ecs_exc
from emulator.ecs.models import EcsBackend, Instance, disk_matches
from emulator.ecs.responses import EcsResponses
from emulator.faults import Faults
from reinit.app import App, InvocationFailed
from reinit.ecs import EcsApi, EcsCallError

LATENCY = 0.020  # seconds a call
ACTION = "ReInitDisk"


@dataclass
class Limiter:
    name: str
    kind: str  # bucket | window
    limit: float
    window: float = 1.0
    halve_at: float | None = None  # seconds after the start: the limit becomes limit / 2

    @property
    def quota(self) -> float:
        """Calls a second: the configured pace that matches it."""
        return self.limit / self.window if self.kind == "window" else self.limit

    def ideal(self, n: int) -> float:
        """The limit: seconds N calls take at the quota."""
        if self.halve_at is None:
            return n / self.quota
        first = self.halve_at * self.quota
        if n <= first:
            return n / self.quota
        return self.halve_at + (n - first) / (self.quota / 2)

    def quota_at(self, t: float) -> float:
        if self.halve_at is not None and t >= self.halve_at:
            return self.quota / 2
        return self.quota


LIMITERS = [
    Limiter("bucket 5/s", "bucket", 5),
    Limiter("bucket 20/s", "bucket", 20),
    Limiter("bucket 50/s", "bucket", 50),
    Limiter("window 20/1s", "window", 20, 1.0),
    Limiter("window 600/60s", "window", 600, 60.0),
    Limiter("bucket 20/s halved", "bucket", 20, halve_at=25.0),
]
KEYS = {"b5": 0, "b20": 1, "b50": 2, "w1": 3, "w60": 4, "half": 5}


class IndexedBackend(EcsBackend):
    """The emulator's ECS model with its two per-call scans indexed, for fleets of 100,000
    disks: the model visits every resource on every call (fine for tests, quadratic here:
    the 100,000-disk run spent its time in them). The answers are the same: `_settle`
    visits only the resources with a status change pending, and DescribeDisks by DiskIds
    and DescribeInstances by InstanceIds look the IDs up instead of scanning, in the
    model's order."""

    def __init__(self, clock):
        super().__init__(clock)
        self._due: dict[int, object] = {}  # id(resource) -> a resource with steps pending
        self._rank: dict[str, int] = {}  # disk id -> its place in self.disks
        self._places: dict[str, int] = {}  # instance id -> its place in self.instances

    def _schedule(self, res, *steps) -> None:
        super()._schedule(res, *steps)
        self._due[id(res)] = res

    def _settle(self) -> None:
        now = self.clock.now()
        for key, res in list(self._due.items()):
            while res.pending and res.pending[0][0] <= now:
                at, res.status = res.pending.pop(0)
                if res.status == "Starting" and isinstance(res, Instance):
                    res.started_at = at
            if not res.pending:
                del self._due[key]

    def describe_disks(self, disk_ids=None, instance_id=None, disk_type=None, tags=None, region=None) -> list:
        if disk_ids is None:
            return super().describe_disks(disk_ids, instance_id, disk_type, tags, region)
        with self.lock:
            self._settle()
            if len(self._rank) != len(self.disks):
                self._rank = {disk_id: k for k, disk_id in enumerate(self.disks)}
            wanted = sorted({d for d in disk_ids if d in self.disks}, key=self._rank.__getitem__)
            return [self.disks[d] for d in wanted if disk_matches(self.disks[d], instance_id, disk_type, tags, region)]

    def describe_instances(self, instance_ids=None, region=None) -> list:
        if instance_ids is None:
            return super().describe_instances(instance_ids, region)
        with self.lock:
            self._settle()
            if len(self._places) != len(self.instances):
                self._places = {instance_id: k for k, instance_id in enumerate(self.instances)}
            wanted = sorted({i for i in instance_ids if i in self.instances}, key=self._places.__getitem__)
            return [self.instances[i] for i in wanted if region is None or self.instances[i].region == region]


@dataclass
class Cloud:
    """The emulator's ECS model and quotas, called in-process on the virtual clock."""

    clock: VirtualClock
    seed: dict
    log: list = field(default_factory=list)  # (time, action, ok)

    def __post_init__(self):
        self.backend = IndexedBackend(self.clock)
        self.backend.seed(self.seed)
        self.responses = EcsResponses(self.backend)
        self.faults = Faults(self.clock)
        self.published = 0
        self._lock = threading.Lock()

    def call(self, action: str, query: dict) -> dict:
        params = {k: str(v) for k, v in query.items() if v is not None}
        request_id = str(uuid.uuid4()).upper()
        self.clock.sleep(LATENCY)
        now = self.clock.now()
        try:
            if not self.faults.admit(action):
                raise ecs_exc.Throttling()
            result = self.responses.dispatch(action, params)
        except ecs_exc.EcsError as err:
            with self._lock:
                self.log.append((now, action, False))
            kind = "throttled" if err.code.startswith("Throttling") else "server" if err.status >= 500 else "refused"
            raise EcsCallError(action, kind, err.code, err.message, err.status, request_id) from None
        with self._lock:
            self.log.append((now, action, True))
        return json.loads(json.dumps({"RequestId": request_id, **result}))

    def publish(self, body: dict, tag: str) -> str:
        self.clock.sleep(LATENCY)
        with self._lock:
            self.published += 1
        return uuid.uuid4().hex


class InProcessEcs(EcsApi):
    """EcsApi with the SDK and HTTP replaced by a direct call into the emulator's model."""

    def __init__(self, cloud: Cloud, region: str):
        self.region, self.credentials, self._cloud = region, None, cloud

    def call(self, action: str, query: dict) -> dict:
        return self._cloud.call(action, query)


def context():
    return SimpleNamespace(request_id="bench", credentials=None, function=SimpleNamespace(name="reinit", timeout=900))


def run(limiter: Limiter, n: int, path: str, seed: int = 1) -> dict:
    clock = VirtualClock()
    try:
        cloud = Cloud(clock, fleet_seed(n, "bench", {"reinit-allowed": "true", "fleet": "bench"}))
        start = clock.now()
        cloud.faults.set_quota(ACTION, limiter.kind, limiter.limit, limiter.window)
        if limiter.halve_at is not None:
            cloud.faults.set_quota(ACTION, limiter.kind, limiter.limit / 2, limiter.window, at=start + limiter.halve_at)
        env = {"REINIT_REGION": "cn-hangzhou", "REINIT_ECS_ENDPOINT": "http://127.0.0.1:9", "REINIT_MNS_ENDPOINT": "http://127.0.0.1:9",
               "REINIT_TOPIC": "reinit-results", "REINIT_MAX_DISKS": str(n), "FC_FUNCTION_TIMEOUT": "900",
               "ALIBABA_CLOUD_ACCESS_KEY_ID": CRED["AccessKeyId"], "ALIBABA_CLOUD_ACCESS_KEY_SECRET": CRED["AccessKeySecret"],
               "ALIBABA_CLOUD_SECURITY_TOKEN": CRED["SecurityToken"]}
        if path == "at-quota":
            env["REINIT_FLEET_RATE"] = f"{limiter.quota:g}"
        app = App(env=env, clock=clock.now, sleep=clock.sleep, random=random.Random(seed).random)
        ecs = InProcessEcs(cloud, "cn-hangzhou")
        app.clients.get = lambda config, creds: (ecs, cloud)
        app.clients.ecs_for = lambda config, creds, region=None: ecs
        succeeded = 0
        if path == "naive":
            for k in range(n):
                try:
                    answer = app.handle(json.dumps({"DiskId": f"d-bench{k:012d}"}).encode(), context())
                except InvocationFailed:  # Failed, Retryable: the platform would retry it
                    continue
                succeeded += answer.get("Outcome") == "Succeeded"
        else:
            event = {"triggerTime": "2026-11-26T02:00:00Z", "triggerName": "bench",
                     "payload": json.dumps({"Tags": [{"Key": "fleet", "Value": "bench"}]})}
            summary = app.handle(json.dumps(event).encode(), context())
            assert "Counts" in summary, summary
            succeeded = summary["Counts"]["Succeeded"]
        wall = clock.now() - start
    finally:
        clock.close()
    log = [(t - start, action, ok) for t, action, ok in cloud.log]
    throttled = sum(1 for _, _, ok in log if not ok)
    minimum = n + 2 * math.ceil(n / 100)
    wiped = sum(d.reinit_count for d in cloud.backend.disks.values())
    return {"limiter": limiter.name, "path": path, "wall": wall, "ratio": wall / limiter.ideal(n),
            "throttled_per_disk": throttled / n, "throttled_share": throttled / max(1, len(log)),
            "calls": len(log) - throttled, "minimum": minimum, "over_min": (len(log) - throttled) / minimum - 1,
            "succeeded": succeeded, "wiped": wiped,
            "sends": [(t, ok) for t, action, ok in log if action == ACTION]}


def run_wire(limiter: Limiter, n: int, path: str) -> dict:
    """The same run in real time, over HTTP and the SDK, against the emulator's server: a
    cross-check of the virtual-time figures (slow: use a small N)."""
    import time

    from emulator.server import Emulator

    emu = Emulator(fleet_seed(n, "wire", {"reinit-allowed": "true", "fleet": "bench"})).start()
    try:
        emu.faults.set_latency(LATENCY)
        start = time.monotonic()
        emu.faults.set_quota(ACTION, limiter.kind, limiter.limit, limiter.window)
        if limiter.halve_at is not None:
            emu.faults.set_quota(ACTION, limiter.kind, limiter.limit / 2, limiter.window,
                                 at=emu.clock.now() + limiter.halve_at)
        env = {"REINIT_REGION": "cn-hangzhou", "REINIT_ECS_ENDPOINT": emu.endpoint, "REINIT_MNS_ENDPOINT": emu.endpoint,
               "REINIT_TOPIC": "reinit-results", "REINIT_MAX_DISKS": str(n), "FC_FUNCTION_TIMEOUT": "900",
               "ALIBABA_CLOUD_ACCESS_KEY_ID": CRED["AccessKeyId"], "ALIBABA_CLOUD_ACCESS_KEY_SECRET": CRED["AccessKeySecret"],
               "ALIBABA_CLOUD_SECURITY_TOKEN": CRED["SecurityToken"]}
        if path == "at-quota":
            env["REINIT_FLEET_RATE"] = f"{limiter.quota:g}"
        app = App(env=env)
        if path == "naive":
            succeeded = 0
            for k in range(n):
                try:
                    answer = app.handle(json.dumps({"DiskId": f"d-wire{k:012d}"}).encode(), context())
                except InvocationFailed:
                    continue
                succeeded += answer.get("Outcome") == "Succeeded"
        else:
            event = {"triggerTime": "2026-11-26T02:00:00Z", "triggerName": "bench",
                     "payload": json.dumps({"Tags": [{"Key": "fleet", "Value": "bench"}]})}
            succeeded = app.handle(json.dumps(event).encode(), context())["Counts"]["Succeeded"]
        wall = time.monotonic() - start
        calls = emu.calls()
        throttled = sum(1 for c in calls if c.get("Code") == "Throttling")
    finally:
        emu.stop()
    minimum = n + 2 * math.ceil(n / 100)
    return {"limiter": limiter.name, "path": path + " (wire)", "wall": wall, "ratio": wall / limiter.ideal(n),
            "throttled_per_disk": throttled / n, "throttled_share": throttled / max(1, len(calls)),
            "calls": len(calls) - throttled, "minimum": minimum, "over_min": (len(calls) - throttled) / minimum - 1,
            "succeeded": succeeded, "sends": []}


def plot(results: list[dict], limiters: list[Limiter], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 2
    rows = math.ceil(len(limiters) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(12, 3.2 * rows), squeeze=False)
    for ax, limiter in zip(list(axes.flat)[:len(limiters)], limiters, strict=True):
        mine = [r for r in results if r["limiter"] == limiter.name]
        end = max((r["wall"] for r in mine if r["path"] != "naive"), default=1.0)
        for r in mine:
            if r["path"] == "naive":
                continue
            bins = [0] * (int(end) + 2)
            for t, _ in r["sends"]:
                if 0 <= t < len(bins):
                    bins[int(t)] += 1
            style = {"pace": dict(color="tab:blue", lw=1.6), "at-quota": dict(color="tab:green", lw=0.9, alpha=0.7)}
            label = {"pace": "sent/s, nothing configured", "at-quota": "sent/s, REINIT_FLEET_RATE = quota"}
            ax.step(range(len(bins)), bins, where="post", label=label[r["path"]], **style[r["path"]])
            if r["path"] == "pace":
                thr = [t for t, ok in r["sends"] if not ok]
                ax.plot(thr, [0.5] * len(thr), "x", color="tab:red", ms=4, label="Throttling")
        xs = [i * 0.5 for i in range(int(end * 2) + 2)]
        quota_label = "quota (average)" if limiter.kind == "window" and limiter.window > 1 else "quota"
        ax.plot(xs, [limiter.quota_at(x) for x in xs], "--", color="black", lw=1, label=quota_label)
        ax.set_title(limiter.name)
        ax.set_xlabel("seconds (virtual)")
        ax.set_ylabel("ReInitDisk calls a second")
        ax.set_ylim(bottom=0)
    for ax in list(axes.flat)[len(limiters):]:
        ax.set_visible(False)
    fig.suptitle("Fleet reset of 1,000 disks: the pace against the ECS quota (1 s bins)")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    extra = axes.flat[len(limiters) - 1].get_legend_handles_labels()
    for h, label in zip(*extra, strict=True):
        if label not in labels:
            handles.append(h)
            labels.append(label)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.savefig(out, dpi=90)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--limiters", default=",".join(KEYS), help="of: " + ", ".join(KEYS))
    parser.add_argument("--paths", default="pace,at-quota,naive")
    parser.add_argument("--plot", default="bench/fleet-pace.png", help="where the send-rate picture goes (PNG; '' for none)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--wire", action="store_true",
                        help="real time, over HTTP and the SDK (a cross-check; slow: use a small --n)")
    parser.add_argument("--scale", action="store_true", help="the fleet split across invocations (bench/scale.py)")
    parser.add_argument("--sizes", default="10000,100000", help="--scale: fleet sizes")
    parser.add_argument("--kill-every", type=int, default=0, help="--scale: kill every k-th chunk invocation once")
    parser.add_argument("--big-limiters", default="b50", help="--scale: the limiters run at the largest size")
    parser.add_argument("--kill-rows", default="", help="--scale: limiters run again at the smallest size with kills")
    parser.add_argument("--jobs", type=int, default=1, help="--scale: rows run in this many processes at once")
    args = parser.parse_args(argv)
    logging.getLogger("reinit").setLevel(logging.CRITICAL)
    if args.scale:
        from bench.scale import main_scale

        keys = args.limiters.split(",")
        return main_scale([LIMITERS[KEYS[k]] for k in keys], [int(n) for n in args.sizes.split(",")],
                          args.plot if args.plot != "bench/fleet-pace.png" else "docs/fleet-scale.png",
                          args.kill_every, args.seed, [LIMITERS[KEYS[k]] for k in args.big_limiters.split(",")],
                          [LIMITERS[KEYS[k]] for k in args.kill_rows.split(",") if k], args.jobs)
    limiters = [LIMITERS[KEYS[k]] for k in args.limiters.split(",")]
    paths = args.paths.split(",")
    print(f"N = {args.n}, {LATENCY * 1000:.0f} ms a call, {'real time, over HTTP' if args.wire else 'virtual time'}; ratio = wall / limit; "
          "calls = ECS calls carried out (not throttled)")
    print(f"{'limiter':<20} {'path':<15} {'wall s':>8} {'ratio':>6} {'thr/disk':>9} {'thr %':>6} "
          f"{'calls':>6} {'minimum':>8} {'over min':>9} {'ok':>5}")
    results = []
    for limiter in limiters:
        for path in paths:
            r = run_wire(limiter, args.n, path) if args.wire else run(limiter, args.n, path, args.seed)
            results.append(r)
            print(f"{r['limiter']:<20} {r['path']:<15} {r['wall']:>8.1f} {r['ratio']:>6.3f} {r['throttled_per_disk']:>9.3f} "
                  f"{r['throttled_share']:>6.1%} {r['calls']:>6} {r['minimum']:>8} {r['over_min']:>8.1%} "
                  f"{r['succeeded']:>5}", flush=True)
    if args.plot and not args.wire:
        try:
            plot(results, limiters, args.plot)
            print(f"picture: {args.plot}")
        except ImportError:
            print("no picture: matplotlib is not installed (requirements-dev.txt)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
