"""Cold start: a fresh process handling one webhook end to end, against the emulator.

Two kinds of fresh process, interleaved in one run:
- the function: `import index`, the initializer, then one signed HTTP-trigger event
  (DescribeDisks, DescribeInstances, ReInitDisk, one MNS publish);
- the minimal script: the typed ECS SDK client and the MNS SDK making the same four calls,
  with nothing else (no validation, no guards, no logs).

It prints the ratio of their median wall times (function / script: at most 1.0 is the
target) and the function's peak RSS. Run: .venv/bin/python -m bench.coldstart [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

from bench.common import CRED, fleet_seed
from emulator.server import Emulator

ROOT = pathlib.Path(__file__).resolve().parents[1]
SECRET = "cold-webhook-secret"

FUNCTION = r"""
import json, os, resource, sys, time
from types import SimpleNamespace
t0 = time.perf_counter()
import index
ctx = SimpleNamespace(request_id="cold", credentials=None, function=SimpleNamespace(timeout=60))
index.initialize(ctx)
t1 = time.perf_counter()
answer = index.handler(sys.argv[1].encode(), ctx)
assert json.loads(answer["body"])["Outcome"] == "Succeeded", answer
print(json.dumps({"import_init": t1 - t0, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

MINIMAL = r"""
import json, os, resource, sys, time
from alibabacloud_ecs20140526.client import Client
from alibabacloud_ecs20140526 import models
from alibabacloud_tea_openapi.utils_models import Config
from mns.account import Account
from mns.topic import TopicMessage
disk, instance, endpoint = sys.argv[1], sys.argv[2], os.environ["REINIT_ECS_ENDPOINT"]
client = Client(Config(access_key_id=os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"],
                       access_key_secret=os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
                       security_token=os.environ["ALIBABA_CLOUD_SECURITY_TOKEN"],
                       endpoint=endpoint.split("//")[1], protocol="http", region_id="cn-hangzhou"))
client.describe_disks(models.DescribeDisksRequest(region_id="cn-hangzhou", disk_ids=json.dumps([disk])))
client.describe_instances(models.DescribeInstancesRequest(region_id="cn-hangzhou", instance_ids=json.dumps([instance])))
reply = client.re_init_disk(models.ReInitDiskRequest(disk_id=disk))
topic = Account(os.environ["REINIT_MNS_ENDPOINT"], os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"],
                os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"], os.environ["ALIBABA_CLOUD_SECURITY_TOKEN"]).get_topic("reinit-results")
topic.publish_message(TopicMessage(json.dumps({"DiskId": disk, "EcsRequestId": reply.body.request_id}), "Succeeded"))
print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def webhook(disk: str) -> str:
    from reinit import webhook as sign
    body = json.dumps({"DiskId": disk})
    return json.dumps({
        "version": "v1", "rawPath": "/", "headers": {"Content-Type": "application/json",
                                                    **sign.signed_headers(SECRET, int(time.time()), body.encode())},
        "body": body, "isBase64Encoded": False,
        "requestContext": {"requestId": f"cold-{disk}", "http": {"method": "POST", "path": "/"}},
    })


def run(code: str, args: list[str], env: dict) -> tuple[float, dict]:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return wall, json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    emu = Emulator(fleet_seed(2 * args.runs + 2, "cold", {"reinit-allowed": "true"})).start()
    env = {**os.environ, "REINIT_REGION": "cn-hangzhou", "REINIT_ECS_ENDPOINT": emu.endpoint,
           "REINIT_MNS_ENDPOINT": emu.endpoint, "REINIT_TOPIC": "reinit-results", "REINIT_WEBHOOK_SECRET": SECRET,
           "ALIBABA_CLOUD_ACCESS_KEY_ID": CRED["AccessKeyId"], "ALIBABA_CLOUD_ACCESS_KEY_SECRET": CRED["AccessKeySecret"],
           "ALIBABA_CLOUD_SECURITY_TOKEN": CRED["SecurityToken"], "PYTHONDONTWRITEBYTECODE": "1"}
    fn_walls, min_walls, fn_rss, min_rss = [], [], [], []
    try:
        for k in range(-1, args.runs):  # run -1 warms the OS file cache for both, and is not counted
            a, b = 2 * (k + 1), 2 * (k + 1) + 1
            order = [("fn", a), ("min", b)] if k % 2 == 0 else [("min", b), ("fn", a)]
            for kind, n in order:
                if kind == "fn":
                    wall, info = run(FUNCTION, [webhook(f"d-cold{n:012d}")], env)
                    if k >= 0:
                        fn_walls.append(wall)
                        fn_rss.append(info["rss_mb"])
                else:
                    wall, info = run(MINIMAL, [f"d-cold{n:012d}", f"i-cold{n:012d}"], env)
                    if k >= 0:
                        min_walls.append(wall)
                        min_rss.append(info["rss_mb"])
    finally:
        emu.stop()
    fn, mn = statistics.median(fn_walls), statistics.median(min_walls)
    print(f"runs: {args.runs} of each, interleaved")
    print(f"function       median wall {fn * 1000:7.1f} ms   peak RSS {max(fn_rss):6.1f} MB")
    print(f"minimal script median wall {mn * 1000:7.1f} ms   peak RSS {max(min_rss):6.1f} MB")
    print(f"ratio function / minimal script: {fn / mn:.3f}   (target <= 1.0, aim 0.85; RSS target < 100 MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
