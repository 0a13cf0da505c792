"""Fleet reset benchmark: the batch path against a naive sequential loop, in one run.

Set-up: the emulator on loopback with a ReInitDisk quota of 20 calls a second (ECS answers
Throttling above it) and 20 ms of latency on every call. For N = 100 and N = 1,000 disks
it prints, for the batch (one timer event with Tags) and for a naive loop (one
single-disk request per disk, one after another):

- wall time / (N / quota): 1.0 is the quota's own limit;
- ECS API calls per disk, against the minimum (N ReInitDisk + ceil(N/100) of each Describe).

`batch` is configured with the quota (REINIT_FLEET_RATE=20); `batch2x` is configured at
twice the quota, so it must find the quota by being throttled.

Run: .venv/bin/python -m bench.fleet [--sizes 100,1000]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from types import SimpleNamespace

from bench.common import CRED, fleet_seed
from emulator.server import Emulator
from reinit.app import App

QUOTA = 20.0  # ReInitDisk calls per second
LATENCY = 0.020  # seconds per call


def start(n: int, rate: float = QUOTA) -> tuple[Emulator, App]:
    emu = Emulator(fleet_seed(n, "bench", {"reinit-allowed": "true", "fleet": "bench"})).start()
    emu.faults.throttle("ReInitDisk", QUOTA)
    emu.faults.set_latency(LATENCY)
    env = {"REINIT_REGION": "cn-hangzhou", "REINIT_ECS_ENDPOINT": emu.endpoint, "REINIT_MNS_ENDPOINT": emu.endpoint,
           "REINIT_TOPIC": "reinit-results", "REINIT_MAX_DISKS": str(n), "REINIT_FLEET_RATE": str(rate),
           "FC_FUNCTION_TIMEOUT": "900", "ALIBABA_CLOUD_ACCESS_KEY_ID": CRED["AccessKeyId"],
           "ALIBABA_CLOUD_ACCESS_KEY_SECRET": CRED["AccessKeySecret"], "ALIBABA_CLOUD_SECURITY_TOKEN": CRED["SecurityToken"]}
    return emu, App(env=env)


def context():
    return SimpleNamespace(request_id="bench", credentials=None, function=SimpleNamespace(timeout=900))


def measure(emu: Emulator, n: int, started: float) -> dict:
    wall = time.monotonic() - started
    calls = [c for c in emu.requests if c["Service"] == "ecs"]
    wiped = sum(d.reinit_count for d in emu.ecs.disks.values())
    minimum = n + 2 * math.ceil(n / 100)
    return {"wall": wall, "ratio": wall / (n / QUOTA), "calls_per_disk": len(calls) / n,
            "min_per_disk": minimum / n, "over_min": len(calls) / minimum - 1, "wiped": wiped,
            "throttled": emu.faults.throttled.get("ReInitDisk", 0)}


def run_batch(n: int, rate: float = QUOTA) -> dict:
    emu, app = start(n, rate)
    try:
        event = {"triggerTime": "2026-11-26T02:00:00Z", "triggerName": "bench",
                 "payload": json.dumps({"Tags": [{"Key": "fleet", "Value": "bench"}]})}
        started = time.monotonic()
        summary = app.handle(json.dumps(event).encode(), context())
        figures = measure(emu, n, started)
        assert summary["Counts"]["Succeeded"] == n, summary["Counts"]
        return figures
    finally:
        emu.stop()


def run_naive(n: int) -> dict:
    emu, app = start(n)
    try:
        started = time.monotonic()
        for k in range(n):
            app.handle(json.dumps({"DiskId": f"d-bench{k:012d}"}).encode(), context())
        return measure(emu, n, started)
    finally:
        emu.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--paths", default="batch,batch2x,naive")
    args = parser.parse_args(argv)
    logging.getLogger("reinit").setLevel(logging.ERROR)
    print(f"quota {QUOTA:.0f} ReInitDisk/s, {LATENCY * 1000:.0f} ms a call; ratio = wall / (N / quota)")
    print(f"{'N':>6} {'path':<7} {'wall s':>8} {'ratio':>7} {'calls/disk':>11} {'minimum':>8} {'over min':>9} "
          f"{'throttled':>10} {'wiped':>6}")
    for n in (int(s) for s in args.sizes.split(",")):
        paths = (("batch", run_batch), ("batch2x", lambda n: run_batch(n, 2 * QUOTA)), ("naive", run_naive))
        for name, run in (p for p in paths if p[0] in args.paths.split(",")):
            f = run(n)
            print(f"{n:>6} {name:<7} {f['wall']:>8.2f} {f['ratio']:>7.3f} {f['calls_per_disk']:>11.3f} "
                  f"{f['min_per_disk']:>8.3f} {f['over_min']:>8.1%} {f['throttled']:>10} {f['wiped']:>6}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
