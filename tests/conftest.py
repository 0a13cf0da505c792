"""Shared fixtures: the emulator on a free loopback port, and the handler wired to it.

The emulator and the function share one ManualClock: when the function sleeps (backoff,
polling), cloud time moves, and no test sleeps for real.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import time
from types import SimpleNamespace

import pytest

import index
from emulator.clock import ManualClock
from emulator.server import Emulator
from reinit import webhook
from reinit.app import App

EVENTS = pathlib.Path(__file__).with_name("events")
# The function's RAM policy, enforced by the local cloud in every test that uses `cloud`
# (opt out with @pytest.mark.ram_off: a test of the SDK plumbing or of the emulator itself).
POLICY = pathlib.Path(__file__).resolve().parents[1] / "ram" / "reinit-policy.json"
REGION = "cn-hangzhou"
AK, SECRET, TOKEN = "STS.testAccessKeyId", "testAccessKeySecret-9f8e7d", "testSecurityToken-CAIS1234567890"
WEBHOOK_SECRET = "whsec-test-0123456789abcdef"
TOPIC = "reinit-results"
LINUX_IMAGE = "aliyun_3_x64_20G_alibase_20260101.vhd"
WINDOWS_IMAGE = "win2022_x64_dtc_en-us_40G_alibase_20260101.vhd"


def load_event(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


def disk_id(n: int | str) -> str:
    return f"d-bp1test{int(n):011d}"


def instance_id(n: int | str) -> str:
    return f"i-bp1test{int(n):011d}"


def base_seed(count: int = 4, **instance_overrides) -> dict:
    """`count` stopped Linux instances, each with a tagged system disk."""
    instances, disks = [], []
    for n in range(1, count + 1):
        instances.append({"InstanceId": instance_id(n), "Status": "Stopped", "ImageId": LINUX_IMAGE,
                          "Tags": {"reinit-allowed": "true"}, **instance_overrides})
        disks.append({"DiskId": disk_id(n), "InstanceId": instance_id(n), "Type": "system", "ImageId": LINUX_IMAGE,
                      "Tags": {"reinit-allowed": "true", "fleet": "lab"}})
    return {
        "region": REGION,
        "timings": {"stop": 3.0, "start": 3.0, "reinit": 5.0},
        "credentials": [{"AccessKeyId": AK, "AccessKeySecret": SECRET, "SecurityToken": TOKEN}],
        "topics": [TOPIC],
        "images": [{"ImageId": LINUX_IMAGE, "OSType": "linux"}, {"ImageId": WINDOWS_IMAGE, "OSType": "windows"}],
        "keyPairs": ["ops-key"],
        "instances": instances,
        "disks": disks,
    }


def member_account_seed(disk: str, instance: str, trusts: tuple[str, ...], *more_roles: dict) -> dict:
    """A member account's seed (emulator/accounts.py): one stopped instance with a tagged
    system disk, and the role reinit-member trusting `trusts` (docs/events.md)."""
    return {
        "instances": [{"InstanceId": instance, "Status": "Stopped", "ImageId": LINUX_IMAGE}],
        "disks": [{"DiskId": disk, "InstanceId": instance, "Type": "system", "ImageId": LINUX_IMAGE,
                   "Tags": {"reinit-allowed": "true"}}],
        "roles": [{"RoleName": "reinit-member", "Trusts": list(trusts)}, *more_roles],
    }


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def seed():
    return base_seed()


def pytest_configure(config):
    config.addinivalue_line("markers", "ram_off: the local cloud does not enforce ram/reinit-policy.json")


@pytest.fixture
def cloud(seed, clock, request):
    policy = None if request.node.get_closest_marker("ram_off") else POLICY
    emu = Emulator(seed, clock=clock, ram_policy=policy).start()
    yield emu
    emu.stop()


@pytest.fixture
def env(cloud):
    return {
        "REINIT_REGION": REGION,
        "REINIT_ECS_ENDPOINT": cloud.endpoint,
        "REINIT_MNS_ENDPOINT": cloud.endpoint,
        "REINIT_TOPIC": TOPIC,
        "REINIT_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": AK,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET,
        "ALIBABA_CLOUD_SECURITY_TOKEN": TOKEN,
        "FC_FUNCTION_TIMEOUT": "300",
    }


class Invoker:
    """Calls index.handler as Function Compute would, and reads back what the cloud saw."""

    def __init__(self, cloud, env, clock, monkeypatch):
        self.cloud, self.env, self.clock = cloud, env, clock
        base = clock.now()
        # Wall time moves with the ManualClock's jumps too (HeldUntil of a claim, signature
        # windows), so that a test that advances the clock ages what the function holds.
        self.wall = lambda: time.time() + (clock.now() - base)
        self.app = App(env=env, clock=clock.now, sleep=clock.advance, random=lambda: 0.5, wall=self.wall)
        monkeypatch.setattr(index, "_app", self.app)
        self.count = 0

    def context(self, credentials=None, timeout=None):
        self.count += 1
        ctx = SimpleNamespace(request_id=f"req-{self.count}", credentials=credentials,
                              function=SimpleNamespace(name="reinit", timeout=timeout))
        return ctx

    def __call__(self, event, **context_kw):
        if isinstance(event, dict):
            event = json.dumps(event).encode()
        return index.handler(event, self.context(**context_kw))

    def http(self, body, method="POST", headers=None, sign=True, base64_body=False, timestamp=None, secret=WEBHOOK_SECRET):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        event = load_event("http")
        event["requestContext"]["http"]["method"] = method
        event["headers"] = dict(headers or {})
        if sign:
            event["headers"].update(webhook.signed_headers(secret, int(timestamp or self.wall()), raw))
        if base64_body:
            event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
        else:
            event["body"], event["isBase64Encoded"] = raw.decode("utf-8", "replace"), False
        return self(event)

    # -- what the cloud saw --------------------------------------------------------
    def messages(self) -> list[dict]:
        return [{"Tag": m["MessageTag"], **json.loads(m["MessageBody"])} for m in self.cloud.messages(TOPIC)]

    def writes(self) -> list[str]:
        return [r["Action"] for r in self.cloud.calls() if r["Action"] in ("ReInitDisk", "StopInstance", "StartInstance")]

    def reinit_count(self, disk: str) -> int:
        return self.cloud.ecs.disks[disk].reinit_count


@pytest.fixture
def invoke(cloud, env, clock, monkeypatch):
    return Invoker(cloud, env, clock, monkeypatch)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real redis-server on a free loopback port (make test installs it where missing).
    In CI a missing redis-server is a failure, not a skip."""
    from emulator.redis_server import RedisServer
    if RedisServer.binary() is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing: `make test` installs it")
        pytest.skip("redis-server is not installed (make test installs it)")
    try:
        server = RedisServer.start(tmp_path_factory.mktemp("redis"))
    except RuntimeError:
        pytest.fail("redis-server did not start")
    yield server.url
    server.stop()


@pytest.fixture
def redis_store(redis_url, env):
    import redis
    redis.Redis.from_url(redis_url).flushdb()
    env["REINIT_IDEMPOTENCY_URL"] = redis_url
    return redis_url
