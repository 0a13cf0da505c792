"""Helpers for the model-based test (tests/test_model.py): a process that can be killed
mid-call, a watch on the emulator's ECS state (status history, wipes, stops), the log
lines of each step, Redis time that moves with the ManualClock, and the events of the
four trigger kinds.

The model may read the emulator's internals; the function under test never does.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field

from emulator.ecs.models import Instance
from reinit import webhook

ACTIVE = ("Running", "Starting")  # an instance in these states may write to its disks


class Killed(BaseException):  # noqa: N818 - a process death, not an error the App may catch
    """The function's process dies here. Not an Exception, so the App cannot catch it."""


# -- a process that dies at a chosen HTTP call ----------------------------------------------
class CrashSwitch:
    """Kills the process at the k-th HTTP request (ECS, MNS or FC) of an armed step:
    `before` the request leaves, or `after` the cloud answered (the answer is lost).
    Once dead, every further request of any thread of that process dies too."""

    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.armed: tuple[int, str] | None = None
            self.count = 0
            self.dead = False
            self.hit: str | None = None

    def arm(self, k: int, when: str) -> None:
        with self._lock:
            self.armed, self.count, self.dead, self.hit = (k, when), 0, False, None

    def install(self, monkeypatch) -> None:
        switch = self
        put, get = http.client.HTTPConnection.putrequest, http.client.HTTPConnection.getresponse

        def putrequest(conn, method, url, *args, **kwargs):
            switch._before(method, url)
            return put(conn, method, url, *args, **kwargs)

        def getresponse(conn, *args, **kwargs):
            response = get(conn, *args, **kwargs)
            switch._after()
            return response

        monkeypatch.setattr(http.client.HTTPConnection, "putrequest", putrequest)
        monkeypatch.setattr(http.client.HTTPConnection, "getresponse", getresponse)

    def _before(self, method, url) -> None:
        with self._lock:
            if self.armed is None:
                return
            if self.dead:
                raise Killed("the process is dead")
            self.count += 1
            k, when = self.armed
            if self.count == k and when == "before":
                self.dead, self.hit = True, f"before request {k} ({method} {str(url)[:40]})"
                raise Killed(self.hit)

    def _after(self) -> None:
        with self._lock:
            if self.armed is None or self.dead:
                return
            k, when = self.armed
            if self.count == k and when == "after":
                self.dead, self.hit = True, f"after request {k}"
                raise Killed(self.hit)


# -- a store that stumbles -----------------------------------------------------------------
class StoreFaults:
    """Faults of the idempotency store, for the function's own Redis clients only (the
    model's client is exempt): the next `times` writes (EVAL, SET, DEL) either fail before
    they reach Redis (`before`: unreachable) or run and lose their answer (`after`)."""

    WRITES = (b"EVAL", b"SET", b"DEL", "EVAL", "SET", "DEL")

    def __init__(self):
        self._lock = threading.Lock()
        self.exempt: set[int] = set()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.when, self.left, self.struck = "after", 0, 0

    def arm(self, when: str, times: int) -> None:
        with self._lock:
            self.when, self.left = when, times

    def install(self, monkeypatch) -> None:
        import redis

        faults, real = self, redis.Redis.execute_command

        def execute_command(client, *args, **options):
            if id(client) in faults.exempt or not args or args[0] not in faults.WRITES or not faults._take():
                return real(client, *args, **options)
            if faults.when == "before":
                raise redis.ConnectionError("Error 111 connecting: Connection refused (injected)")
            real(client, *args, **options)
            raise redis.TimeoutError("Timeout reading from socket (injected: the command ran)")

        monkeypatch.setattr(redis.Redis, "execute_command", execute_command)

    def _take(self) -> bool:
        with self._lock:
            if self.left <= 0:
                return False
            self.left -= 1
            self.struck += 1
            return True


# -- what the cloud did, seen from inside the emulator ----------------------------------------
@dataclass
class Wipe:
    disk: str
    key: str | None
    epoch: int  # the instance's activity epoch at the wipe
    at: float


@dataclass
class StepTag:
    """Who the cloud is serving during a step: the model's idempotency key, and whether a
    second wipe for that key would be a violation (always with a store; without one only
    where the function invited the repeat)."""

    key: str | None = None
    strict: bool = False
    label: str = ""


@dataclass
class CloudWatch:
    """Hooks on the emulator's ECS backend: every status change (with the time it took
    effect), every accepted ReInitDisk and StopInstance, and the never-twice check."""

    backend: object
    untagged_disks: set = field(default_factory=set)
    untagged_instances: set = field(default_factory=set)

    def __post_init__(self):
        self.lock = threading.Lock()
        self.epoch: dict[str, int] = defaultdict(int)  # instance -> entries into Running/Starting
        self.history: dict[str, list] = defaultdict(list)  # instance -> [(at, status)]
        self.wipes: list[Wipe] = []
        self.last_wipe: dict[tuple, Wipe] = {}  # (key, disk) -> Wipe
        self.stops: list[tuple[str, str]] = []  # (instance, step label)
        self.violations: list[str] = []
        self.tag = StepTag()
        self.untag_at_stop: dict[str, str] = {}  # instance -> its disk whose tag goes when it is stopped
        self.ttl: float | None = None  # the store's TTL, where a run shortened it

    def install(self) -> None:
        b = self.backend

        def settle():
            now = b.clock.now()
            for res in (*b.instances.values(), *b.disks.values()):
                while res.pending and res.pending[0][0] <= now:
                    at, status = res.pending.pop(0)
                    self.became(res, status, at)

        start, stop, reinit = b.start_instance, b.stop_instance, b.reinit_disk

        def start_instance(instance_id, *args, **kwargs):
            start(instance_id, *args, **kwargs)
            with b.lock:
                self._note(instance_id, "Starting", b.clock.now())

        def stop_instance(instance_id, *args, **kwargs):
            stop(instance_id, *args, **kwargs)
            with self.lock:
                self.stops.append((instance_id, self.tag.label))
                untag = self.untag_at_stop.pop(instance_id, None)
            if untag is not None:  # someone takes the disk out while its instance stops
                b.disks[untag].tags.pop("reinit-allowed", None)
            with b.lock:
                self._note(instance_id, "Stopping", b.clock.now())

        def reinit_disk(disk_id, *args, **kwargs):
            with b.lock:
                disk = b.disks.get(disk_id)
                before = disk.reinit_count if disk else 0
                reinit(disk_id, *args, **kwargs)  # raises when ECS refuses
                if disk is not None and disk.reinit_count > before:
                    if disk.tags.get("reinit-allowed") != "true" and disk_id not in self.untagged_disks:
                        self.violations.append(f"untagged-touched: ReInitDisk accepted on disk {disk_id}, whose "
                                               "tag someone else had removed")
                    self.on_wipe(disk_id, disk.instance_id, b.clock.now())

        b._settle = settle
        b.start_instance, b.stop_instance, b.reinit_disk = start_instance, stop_instance, reinit_disk

    def became(self, res, status: str, at: float) -> None:
        res.status = status
        if status == "Starting" and isinstance(res, Instance):
            res.started_at = at  # as the backend does (DescribeInstances' StartTime)
        if isinstance(res, Instance):
            self._note(res.instance_id, status, at)

    def _note(self, instance_id: str, status: str, at: float) -> None:
        with self.lock:
            self.history[instance_id].append((at, status))
            if status in ACTIVE:
                self.epoch[instance_id] += 1

    def on_wipe(self, disk_id: str, instance_id: str, at: float) -> None:
        with self.lock:
            tag = self.tag
            wipe = Wipe(disk_id, tag.key, self.epoch[instance_id], at)
            self.wipes.append(wipe)
            if disk_id in self.untagged_disks:
                self.violations.append(f"untagged-touched: ReInitDisk accepted on untagged disk {disk_id}")
            previous = self.last_wipe.get((tag.key, disk_id)) if tag.key else None
            # At most once within the TTL: past it, the same key is a new request (section 11).
            within = self.ttl is None or previous is None or at - previous.at < self.ttl
            if previous is not None and previous.epoch != wipe.epoch and tag.strict and within:
                runs = [s for t, s in self.history[instance_id] if previous.at <= t <= at]
                self.violations.append(
                    f"never-twice: disk {disk_id} was reinitialized again for key {tag.key!r} ({tag.label}) at "
                    f"t={at:.1f}, after a first wipe at t={previous.at:.1f}; its instance {instance_id} went "
                    f"{' -> '.join(runs)} in between (it could have written)")
            if tag.key:
                self.last_wipe[(tag.key, disk_id)] = wipe

    def dirty_since_wipe(self, key: str, disk_id: str, instance_id: str) -> bool:
        """The instance was active after the last wipe of (key, disk), or will be."""
        with self.lock:
            wipe = self.last_wipe.get((key, disk_id))
            if wipe is None:
                return False
            if self.epoch[instance_id] != wipe.epoch:
                return True
        inst = self.backend.instances[instance_id]
        with self.backend.lock:
            return inst.status in ACTIVE or inst.status == "Stopping" or any(s in ACTIVE for _, s in inst.pending)

    # -- someone else (a person, another tool) acting on an instance ---------------------
    def external(self, instance_id: str, action: str, delay: float = 0.0) -> str:
        b = self.backend
        with b.lock:
            b._settle()
            inst = b.instances[instance_id]
            now = b.clock.now()
            if action == "start" and inst.status == "Stopped":
                if delay:
                    inst.pending = [(now + delay, "Starting"), (now + delay + b.timings["start"], "Running")]
                    return f"start {instance_id} in {delay}s"
                self.became(inst, "Starting", now)
                inst.pending = [(now + b.timings["start"], "Running")]
                return f"start {instance_id}"
            if action == "stop" and inst.status == "Running":
                self.became(inst, "Stopping", now)
                inst.pending = [(now + b.timings["stop"], "Stopped")]
                return f"stop {instance_id}"
        return "nothing"

    def status(self, resource_id: str) -> str:
        return self.backend.status_of(resource_id)

    def will_be_active(self, instance_id: str) -> bool:
        b = self.backend
        with b.lock:
            b._settle()
            inst = b.instances[instance_id]
            return inst.status in ACTIVE or any(s in ACTIVE for _, s in inst.pending)


# -- the log lines of a step ------------------------------------------------------------------
class LogTap(logging.Handler):
    """Replaces the function's stdout log handler while the model runs: keeps the lines of
    the current step only (a soak run writes millions)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[dict] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = json.loads(record.getMessage())
        except ValueError:
            return
        with self._lock2:
            self.lines.append(line)

    def take(self) -> list[dict]:
        with self._lock2:
            lines, self.lines = self.lines, []
        return lines


# -- Redis time that moves with the ManualClock ------------------------------------------------
def judge(figures, problems: list[str], trace: list[str], keep: int, checked: str = "all") -> None:
    """Count a step's violations by invariant (each problem starts with its invariant's name)
    and fail the run on those `checked` ("all", or names joined by commas), with the last
    `keep` lines of the run. `figures` has violations, by_invariant and first_violation;
    an `examples` dict, where it has one, keeps each invariant's first violation."""
    if not problems:
        return
    figures.violations += 1
    run = "\nThe run so far:\n  " + "\n  ".join(trace[-keep:])
    for p in problems:
        name = p.split(":", 1)[0]
        figures.by_invariant[name] += 1
        if hasattr(figures, "examples"):
            figures.examples.setdefault(name, p + run)
    wanted = [p for p in problems if checked == "all" or p.split(":", 1)[0] in checked.split(",")]
    if wanted:
        figures.first_violation = figures.first_violation or "\n".join(wanted) + run
        raise AssertionError("\n".join(wanted) + run)


def advance_redis(client, seconds: float) -> None:
    """Redis expires keys on its own clock; move every key's expiry by `seconds` of model
    time, so a claim held 'until the invocation would have timed out' expires when the
    ManualClock passes that moment. Format-agnostic: every key with an expiry."""
    ms = int(seconds * 1000)
    if ms <= 0:
        return
    for key in client.scan_iter(count=500):
        ttl = client.pttl(key)
        if ttl is None or ttl < 0:
            continue
        if ttl <= ms:
            client.delete(key)
        else:
            client.pexpire(key, ttl - ms)


# -- events of the four trigger kinds ----------------------------------------------------------
def http_event(body: dict, request_id: str, secret: str, timestamp: int, headers: dict | None = None) -> dict:
    raw = json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    all_headers.update(webhook.signed_headers(secret, timestamp, raw))
    return {
        "version": "v1", "rawPath": "/reinit", "headers": all_headers, "queryParameters": {},
        "body": raw.decode(), "isBase64Encoded": False,
        "requestContext": {
            "accountId": "1234567890123456", "domainName": "reinit.cn-hangzhou.fcapp.run", "domainPrefix": "reinit",
            "http": {"method": "POST", "path": "/reinit", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "curl/8.0"},
            "requestId": request_id, "time": "27/Nov/2026:10:00:00 +0000", "timeEpoch": "1795773600000",
        },
    }


def eventbridge_event(event_id: str, data: dict) -> dict:
    return {
        "specversion": "1.0", "id": event_id, "source": "acs.ecs", "type": "ecs:Instance:Security.TpmAlert",
        "subject": "acs:ecs:cn-hangzhou:1234567890123456:instance/x", "time": "2026-11-27T10:00:00Z",
        "datacontenttype": "application/json;charset=utf-8", "aliyunaccountid": "1234567890123456",
        "aliyunregionid": "cn-hangzhou", "aliyuneventbusname": "default", "data": data,
    }


def timer_event(name: str, when: str, payload: dict) -> dict:
    return {"triggerTime": when, "triggerName": name, "payload": json.dumps(payload)}
