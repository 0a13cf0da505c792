"""At most once per (key, DiskId): records in Redis or Tair, each in an explicit state.

States of one (key, disk) record:
- `InProgress`: an invocation holds it until `HeldUntil` (when it would have timed out).
  Its phase says whether it has reached ReInitDisk (`Writing`) or not (`Claimed`), so that
  a holder that died is never taken for one that did nothing. `HandingOff`: it recorded a
  hand-off (task id and payload) before making it; a take-over re-sends that, never the
  request (docs/handoffs.md).
- `Done`: the outcome, kept for the configured TTL; a duplicate is answered with it.
- `InDoubt`: ReInitDisk may have run and the holder could not tell (INTERFACE.md section
  11, "Ambiguous failures"). A redelivery takes it over and looks at the disk again
  before anything is repeated.

A key's first request is remembered as a keyed fingerprint (never the Password), so that
the same key with a different request is refused instead of answered with another's
outcome.

Every read-modify-write is one Lua script, so no race between two invocations needs a
retry loop: Redis runs a script alone.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import replace

from reinit.errors import FAILED
from reinit.result import Result

IN_PROGRESS, DONE, IN_DOUBT = "InProgress", "Done", "InDoubt"
CLAIMED, WRITING = "Claimed", "Writing"  # the phases of an InProgress record
HANDING_OFF = "HandingOff"  # an InProgress record whose holder records a hand-off (docs/handoffs.md)
# What a record keeps of the instance (stopping.InstanceGroup.facts): how the first holder
# stopped it, what AutoStartInstance it sent, the instance's StartTime before the call.
FACTS = ("StoppedByUs", "AutoStart", "StartTime")
STATES = (IN_PROGRESS, DONE, IN_DOUBT)

# GET the record; if there is none, SET ours with the holder's expiry. Returns the old one.
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
# Replace the record only if it is still exactly what the caller read (an in-doubt take-over).
_SWAP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
_DROP_SAME = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""
# Settle the record only if it is still the caller's own claim, or gone (expired, evicted:
# the outcome is then written back): never over a record another holder took over.
_SETTLE = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""
# Delete the record only if it is an InProgress record of this owner (a claim whose answer
# was lost, or a release after the phase changed): never another holder's.
_DROP_OWN = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local ok, record = pcall(cjson.decode, current)
if ok and type(record) == 'table' and record['State'] == 'InProgress' and record['Owner'] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# GET the key's nonce, renewing its expiry; if there is none, SET the candidate.
_NONCE = """
local current = redis.call('GET', KEYS[1])
if current then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return current
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"""


class StoreUnavailable(Exception):
    """The store cannot be used (unreachable, or a record it holds cannot be read):
    nothing is done, so that no disk can be wiped twice."""


class ClaimLost(StoreUnavailable):
    """This invocation's claim was taken over by another holder before it settled it."""


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def fingerprint(request_view: dict, key: str | None) -> str:
    """A hash of what a request asks for. `request_view` holds nothing derived from the
    Password (only whether there is one): with `key` None the hash is keyed with a fixed
    label, stable across every rotation of the function's secrets."""
    text = json.dumps(request_view, sort_keys=True, separators=(",", ":"))
    return hmac.new((key or "reinit").encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


class IdempotencyStore:
    def __init__(self, url: str, ttl: int, client=None, wall=time.time):
        if client is None:
            import redis

            client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._redis = client
        self.ttl = ttl
        self.wall = wall  # HeldUntil is wall time: holders run on different instances
        self._held: dict[str, str] = {}  # our own InProgress record, by store key
        self._lock = threading.Lock()

    def forgets(self) -> list[str] | None:
        """Why this store may lose records (docs/idempotency.md): an eviction policy other
        than `noeviction`, or no persistence. None where it cannot be told: Tair and managed
        Redis may refuse CONFIG, and an unreachable store is found out by the claim."""
        try:
            config = {}
            for name in ("maxmemory-policy", "appendonly", "save"):
                config.update(self._redis.config_get(name))
        except Exception:  # redis-py: ResponseError (CONFIG refused), ConnectionError...
            return None
        value = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
                 for k, v in config.items()}
        problems = []
        policy = value.get("maxmemory-policy")
        if policy and policy != "noeviction":
            problems.append(f"maxmemory-policy is {policy}, not noeviction: records can be evicted")
        if value.get("appendonly") != "yes" and not (value.get("save") or "").strip():
            problems.append("neither AOF nor RDB persistence is on: a restart empties the store")
        return problems

    @staticmethod
    def key(event_key: str, disk_id: str) -> str:
        return f"reinit:event:{_digest(event_key)}:{disk_id}"

    def _do(self, fn):
        try:
            return fn()
        except Exception as err:  # redis-py raises ConnectionError, TimeoutError, ResponseError...
            raise StoreUnavailable(f"{type(err).__name__}: {err}") from None

    @staticmethod
    def _parse(raw) -> dict:
        """A stored record, or StoreUnavailable: a record that cannot be read must stop the
        work, not be taken for "nothing there"."""
        try:
            record = json.loads(raw)
            if not isinstance(record, dict) or record.get("State") not in STATES:
                raise ValueError("no known State")
            if record["State"] in (DONE, IN_DOUBT) and not isinstance(record.get("Result"), dict):
                raise ValueError("no Result")
        except (ValueError, TypeError, UnicodeDecodeError) as err:
            raise StoreUnavailable(f"an idempotency record cannot be read ({err})") from None
        record["_raw"] = raw
        return record

    def _mine(self, owner: str, hold_seconds: float, phase: str = CLAIMED, **facts) -> str:
        # Held for the invocation's own time, never less: no second holder can start while
        # the first may still be calling ECS.
        return json.dumps({"State": IN_PROGRESS, "Owner": owner, "Phase": phase,
                           "HeldUntil": round(self.wall() + max(1.0, hold_seconds), 3), **facts})

    def _px(self, hold_seconds: float) -> int:
        """An InProgress record lives at least as long as its holder may work: max(TTL,
        hold), so a TTL shorter than the function's timeout never hands the pair to a
        second claimant mid-work."""
        return int(max(self.ttl, hold_seconds + 1.0) * 1000)

    def _swap(self, key: str, seen_raw, new: str, hold_seconds: float = 0.0) -> bool:
        return bool(self._do(lambda: self._redis.eval(_SWAP, 1, key, seen_raw, new, self._px(hold_seconds))))

    def _drop_own(self, key: str, owner: str) -> bool:
        if not owner:
            return False
        return bool(self._do(lambda: self._redis.eval(_DROP_OWN, 1, key, owner)))

    def claim(self, event_key: str, disk_id: str, hold_seconds: float, owner: str = "") -> dict | None:
        """None if this invocation now holds the pair; else the record that is there.

        The InProgress record itself lives for the TTL; its holder's time is `HeldUntil`.
        A holder that died (a crash, a kill, the platform's timeout) leaves a record past
        its HeldUntil: if it had not reached ReInitDisk (Phase Claimed), the pair is taken
        over and carried out afresh; if it had (Phase Writing), ReInitDisk may have run,
        and the record is answered as InDoubt, so the disk is looked at before anything is
        repeated. (Before: the record simply expired, and the redelivery wiped again.)"""
        key = self.key(event_key, disk_id)
        mine = self._mine(owner, hold_seconds)
        try:
            raw = self._do(lambda: self._redis.eval(_CLAIM, 1, key, mine, self._px(hold_seconds)))
        except StoreUnavailable:
            self._settle_lost_claim(key, owner)
            raise
        if raw is None:
            with self._lock:
                self._held[key] = mine
            return None
        record = self._parse(raw)
        # A record of this same FC request id is an earlier attempt of this invocation that
        # died (FC retries an async invocation with the same id): never a live holder.
        own = bool(owner) and record.get("Owner") == owner
        if record["State"] != IN_PROGRESS or (float(record.get("HeldUntil", 0)) > self.wall() and not own):
            return record
        if record.get("Phase") == HANDING_OFF:
            return {**record, "HolderLost": True}  # the recorded hand-off is re-sent, never the request
        if record.get("Phase") != WRITING:
            if self._swap(key, raw, mine, hold_seconds):  # nothing was written: start afresh, once
                with self._lock:
                    self._held[key] = mine
                return None
            return {"State": IN_PROGRESS, "Live": True}
        result = {"Outcome": "Failed", "Code": "Indeterminate", "Message": "The invocation that called "
                  "ReInitDisk ended before it recorded the outcome.", "Retryable": True, "DiskId": disk_id,
                  "InstanceId": None, "EcsRequestId": None, "SnapshotId": None, "Status": 502}
        return {**record, "State": IN_DOUBT, "Result": result, "HolderLost": True}

    def _settle_lost_claim(self, key: str, owner: str) -> None:
        """The claim script may have run and its answer was lost: its owner takes its own
        record away again (compare-and-swap on Owner), so that no retry meets a claim that
        nobody holds. If that fails too, FC's retry (same request id) takes it over."""
        try:
            self._drop_own(key, owner)
        except StoreUnavailable:
            pass

    def take_over(self, event_key: str, disk_id: str, seen: dict, hold_seconds: float, owner: str = "") -> bool:
        """Hold an in-doubt record, if it is still the one `seen`: exactly one redelivery
        wins, the others see it InProgress. What the first holder wrote down (FACTS) stays
        in the record."""
        facts = {k: seen[k] for k in FACTS if k in seen}
        key = self.key(event_key, disk_id)
        # Phase Writing from the start: if this holder dies too, the pair stays in doubt.
        mine = self._mine(owner, hold_seconds, WRITING, Previous=seen.get("Result"), **facts)
        if self._swap(key, seen["_raw"], mine, hold_seconds):
            with self._lock:
                self._held[key] = mine
            return True
        return False

    def mark_writing(self, event_key: str, disk_id: str, **facts) -> None:
        """Write down, before ReInitDisk, that it is about to run (and how), so that if
        this invocation dies the pair is in doubt, never taken for untouched. Raises
        StoreUnavailable where the claim was lost or cannot be updated: then nothing is
        written to the disk."""
        key = self.key(event_key, disk_id)
        with self._lock:
            held = self._held.get(key)
        if held is None:
            return  # not claimed through this store (a dry run, no key)
        record = {**json.loads(held), "Phase": WRITING, **facts}
        new = json.dumps(record)
        if not self._swap(key, held, new, float(record["HeldUntil"]) - self.wall()):
            raise StoreUnavailable("the claim on this disk was lost before ReInitDisk; nothing was written")
        with self._lock:
            self._held[key] = new

    def complete(self, event_key: str, disk_id: str, outcome: dict, in_doubt: bool = False, **facts) -> None:
        """Record the outcome in place of this invocation's claim (compare-and-swap on the
        claim it holds). Raises ClaimLost, and writes nothing, where another holder has
        taken the record over meanwhile: its own outcome is the one to keep."""
        record = json.dumps({"State": IN_DOUBT if in_doubt else DONE, "Result": outcome, **facts})
        key = self.key(event_key, disk_id)
        with self._lock:
            held = self._held.get(key)
        if held is None:  # not claimed through this store: nothing to compare against
            settled = bool(self._do(lambda: self._redis.set(key, record, ex=self.ttl)))
        else:
            settled = bool(self._do(lambda: self._redis.eval(_SETTLE, 1, key, held, record, self.ttl)))
        with self._lock:
            self._held.pop(key, None)
        if not settled:
            raise ClaimLost(f"another invocation took the claim on {disk_id} over; its record is kept")

    def release(self, event_key: str, disk_id: str) -> None:
        """Give the pair back for a retry: only this invocation's own InProgress record
        (whatever its phase), never one another holder took over meanwhile."""
        key = self.key(event_key, disk_id)
        with self._lock:
            held = self._held.pop(key, None)
        owner = json.loads(held).get("Owner") if held else ""
        if owner:
            self._drop_own(key, owner)
        elif held:
            self._swap_delete(key, held)

    def _swap_delete(self, key: str, held: str) -> None:
        self._do(lambda: self._redis.eval(_DROP_SAME, 1, key, held))

    def recorded(self, event_key: str, disk_id: str) -> bool:
        """Whether the pair has a record (claimed, done or in doubt)."""
        return bool(self._do(lambda: self._redis.exists(self.key(event_key, disk_id))))

    def remember_request(self, event_key: str, print_: str) -> str | None:
        """Record the fingerprint of the key's request; return the one already there, if
        it was another (None: this is the key's first request, or the same one)."""
        key = f"reinit:request:{_digest(event_key)}"
        raw = self._do(lambda: self._redis.eval(_CLAIM, 1, key, print_, self.ttl * 1000))
        if raw is None:
            return None
        old = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return None if hmac.compare_digest(old, print_) else old

    def request_nonce(self, event_key: str, candidate: str) -> str:
        """The nonce of the key's current request (docs/handoffs.md): the one recorded, else
        `candidate`, recorded now for the TTL. Each use renews it, so a retry of the request
        finds it, while the key used again after its records expired is a new request whose
        task ids and evidence are its own."""
        key = f"reinit:nonce:{_digest(event_key)}"
        raw = self._do(lambda: self._redis.eval(_NONCE, 1, key, candidate, self.ttl * 1000))
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)

    def record_handoff(self, event_key: str, disk_id: str, handoff: dict) -> None:
        """Write the hand-off (task id and payload) into this invocation's claim before it is
        made, so that a take-over of the claim re-sends it and never starts the request
        again. Raises StoreUnavailable where the claim was lost or cannot be updated: then
        nothing is handed on."""
        key = self.key(event_key, disk_id)
        with self._lock:
            held = self._held.get(key)
        if held is None:
            raise StoreUnavailable("this invocation holds no claim to record the hand-off in")
        new = json.dumps({**json.loads(held), "Phase": HANDING_OFF, "HandOff": handoff})
        if not self._swap(key, held, new):
            raise StoreUnavailable("the claim on this disk was lost before the hand-off; nothing was handed on")
        with self._lock:
            self._held[key] = new

    def take_over_handoff(self, event_key: str, disk_id: str, seen: dict, hold_seconds: float, owner: str = "") -> bool:
        """Hold an expired claim whose holder recorded a hand-off, keeping the hand-off: the
        new holder re-sends it (FC answers 409 where it was made) instead of starting again."""
        key = self.key(event_key, disk_id)
        mine = self._mine(owner, hold_seconds, HANDING_OFF, HandOff=seen["HandOff"],
                          **{k: seen[k] for k in FACTS if k in seen})
        if self._swap(key, seen["_raw"], mine):
            with self._lock:
                self._held[key] = mine
            return True
        return False

    def first_use(self, token: str, ttl: int) -> bool:
        """True the first time a webhook signature is seen within `ttl` seconds."""
        return bool(self._do(lambda: self._redis.set(f"reinit:signature:{_digest(token)}", 1, nx=True, ex=ttl)))


# -- the flow around one disk ---------------------------------------------------------------
def at_most_once(ctx, req, disk: dict, run, resolve, group=None):
    """Run once per (key, DiskId) where a store is configured (section 11, "Idempotency").

    `run(ctx)` carries the request out; `resolve(ctx, record)` handles a redelivery of a
    record left in doubt. Both return a Result; the ctx they get writes the claim's phase
    down before ReInitDisk (`ctx.before_write`)."""
    once = ctx.once
    if once is None or req.dry_run or ctx.config.dry_run:
        return run(ctx)
    disk_id, instance_id = disk["DiskId"], disk.get("InstanceId") or None
    bound = replace(ctx, before_write=lambda **facts: once.store.mark_writing(once.event_key, disk_id, **facts))
    try:
        record = once.store.claim(once.event_key, disk_id, once.hold_seconds, once.owner)
        if record is None:
            record = _remembered_by_the_disk(ctx, once, disk)
            if record is not None:  # the store forgot; the disk did not: in doubt, held by us
                once.store.mark_writing(once.event_key, disk_id, **{k: record[k] for k in FACTS})
                ctx.log.warning("idempotency.store_forgot", disk=disk_id)
                return _finish(ctx, resolve(bound, record), disk_id, group)
        if record is not None and record.get("Phase") == HANDING_OFF and record.get("HolderLost"):
            # Its holder died while handing the request on: re-send that hand-off, never start again.
            if once.store.take_over_handoff(once.event_key, disk_id, record, once.hold_seconds, once.owner):
                ctx.log.info("idempotency.handoff.taken_over", disk=disk_id, task=record["HandOff"].get("Task"))
                return handoff_again(record["HandOff"], disk_id, instance_id)
            record = {"State": IN_PROGRESS}
        if record is not None and record["State"] == IN_DOUBT:
            # Several redeliveries may find it in doubt at once: the swap lets one through.
            if once.store.take_over(once.event_key, disk_id, record, once.hold_seconds, once.owner):
                ctx.log.info("idempotency.in_doubt.taken_over", disk=disk_id, holder_lost=bool(record.get("HolderLost")))
                return _finish(ctx, resolve(bound, record), disk_id, group)
            record = {"State": IN_PROGRESS, "Live": True}
    except StoreUnavailable as err:
        ctx.log.error("idempotency.unavailable", error=str(err))
        return Result(FAILED, "ServiceUnavailable", "The idempotency store cannot be used; nothing was done, so "
                      "that the disk cannot be wiped twice.", True, disk_id, instance_id, status=503)
    if record is not None:
        ctx.log.info("idempotency.duplicate", disk=disk_id, state=record["State"])
        if record["State"] == DONE:
            result = Result.duplicate(record["Result"])
            if req.password is not None:
                # The store keeps no value derived from a Password (docs/idempotency.md).
                result.message += (" The Password of a repeated request is not compared with the first one's; for a "
                                   "new password, send a new request (a new ClientToken or Idempotency-Key).")
            return result
        return Result(FAILED, "Conflict.InProgress", busy_message(disk_id, record, once.store.wall()), True,
                      disk_id, instance_id, status=409)
    return _finish(ctx, run(bound), disk_id, group)


def _remembered_by_the_disk(ctx, once, disk: dict) -> dict | None:
    """The disk's wipe mark of this request (wipemark.py) where the store has no record: an
    InDoubt record rebuilt from it, for the same look-again rules."""
    from reinit.wipemark import read_mark

    facts = read_mark(disk, once.event_key, once.store.wall(), once.store.ttl)
    if facts is None:
        return None
    result = {"Outcome": "Failed", "Code": "Indeterminate", "Message": "The disk carries this request's wipe mark "
              "and the idempotency store has no record of it.", "Retryable": True, "DiskId": disk["DiskId"],
              "InstanceId": disk.get("InstanceId") or None, "EcsRequestId": None, "SnapshotId": None, "Status": 502}
    return {"State": IN_DOUBT, "Result": result, "MarkedOnDisk": True, **facts}


def busy_message(disk_id: str, record: dict, now: float) -> str:
    """Publication is promised only where a live holder will publish: a record still
    within its holder's time. Otherwise (a holder that is gone, seen in the instant before
    a retry takes it over) the retry is what resolves it."""
    until = float(record.get("HeldUntil") or 0)
    if record.get("Live"):  # another redelivery won the take-over this very moment
        return (f"Disk {disk_id} was just taken over for this request by another invocation; its outcome "
                "will be published.")
    if record.get("Owner") and until > now:
        return (f"Disk {disk_id} is being handled for this request by another invocation ({record['Owner']}), "
                f"which holds it for {round(until - now)} s more; its outcome will be published.")
    return (f"Disk {disk_id} is being handled for this request by another invocation; a retry after it ends "
            "finds its outcome, or takes the disk over and looks at it before anything is repeated.")
def handoff_again(handoff: dict, disk_id: str, instance_id: str | None) -> Result:
    """The result of a take-over that found a hand-off recorded: pending, with the hand-off
    to re-send as it was recorded (continuation.continue_later)."""
    return Result(FAILED, "WaitTimeout", "An earlier invocation of this request handed it on and ended before it "
                  "recorded that; the same hand-off is sent again.", True, disk_id, instance_id, status=504,
                  snapshot_id=handoff.get("SnapshotId"), snapshot_pending=True, handoff=handoff)


def _finish(ctx, result, disk_id: str, group):
    """Store what became of the claim: done, in doubt, or released for a retry. The
    stored outcome is scrubbed like every answer: an ECS message may echo the Password."""
    once = ctx.once
    stored = ctx.log.scrubber.value(result.stored())
    try:
        if result.snapshot_pending:
            pass  # still held: the caller hands the request on, then completes or releases it
        elif result.in_doubt:
            # A redelivery will look again before repeating anything: that is what makes
            # this outcome retryable (without a store it is not).
            result.retryable = True
            once.store.complete(once.event_key, disk_id, stored, in_doubt=True, **(group.facts() if group else {}))
        elif result.retryable and not result.may_have_run:
            once.store.release(once.event_key, disk_id)  # nothing was carried out: a retry may do it
        else:
            once.store.complete(once.event_key, disk_id, stored)
    except StoreUnavailable as err:
        ctx.log.error("idempotency.unavailable", error=str(err), disk=disk_id)
        if result.in_doubt:
            result.retryable = False  # unrecorded, a retry would not know to look first
    return result


class LocalReplayGuard:
    """Without a store: refuse a replayed signature within this instance only."""

    def __init__(self):
        self._seen: dict[str, float] = {}

    def first_use(self, token: str, now: float, ttl: int) -> bool:
        for old in [k for k, until in self._seen.items() if until <= now]:
            del self._seen[old]
        if token in self._seen:
            return False
        self._seen[token] = now + ttl
        return True
