"""The evidence snapshot (INTERFACE.md section 11, "Evidence snapshot"): before a disk is
wiped, CreateSnapshot, then wait until DescribeSnapshots shows it `accomplished`.

One (event, disk) makes one snapshot, however often it is tried:
- CreateSnapshot carries a ClientToken made from (event, disk): ECS answers a repeat with
  the first call's SnapshotId ("How to ensure idempotence"), so a call that got no clear
  answer (a 5xx, a dropped connection) is simply repeated;
- the snapshot is tagged with the event, the disk and the instance, and every attempt looks
  for it by those tags first, so a later invocation picks the same snapshot up after ECS
  has forgotten the token.
It is never instant access: ReInitDisk refuses a disk that has such snapshots.
A wait that runs out of the invocation's time raises SnapshotPending, carrying the id, so
that the work can go on in another invocation; a failed snapshot is SnapshotFailed, and the
disk is not wiped.
"""

from __future__ import annotations

import hashlib

from reinit.context import Context
from reinit.ecs import EcsCallError
from reinit.errors import FAILED, ReinitError

# Tag keys: up to 128 characters, not starting with aliyun or acs: (CreateSnapshot, Tag.N.Key).
EVENT_TAG = "reinit:event"
DISK_TAG = "reinit:source-disk"
INSTANCE_TAG = "reinit:instance"
PURPOSE_TAG = ("reinit:purpose", "evidence")
CONSUMED_TAG = ("reinit:wiped-after", "true")  # set once the wipe it preceded was accepted
POLL_CAP = 15.0  # seconds: the longest pause between two looks at a snapshot
# ECS codes after which CreateSnapshot may be repeated with the same ClientToken:
# "The previous idempotent request(s) is still processing" (its error table).
REPEATABLE_CODES = ("IdempotentProcessing",)
# Refusals that may pass: the disk or its instance is moving, or another snapshot of the
# disk (an automatic snapshot policy's) is in progress.
PASSING_REFUSALS = ("IncorrectDiskStatus.CreatingSnapshot", "IncorrectDiskStatus", "IncorrectInstanceStatus",
                    "IdempotentProcessing")


class EvidenceError(ReinitError):
    """A Failed outcome that names the snapshot it concerns (None if none was made).
    SnapshotFailed is 500 (section 10), whatever ECS answered; the message names ECS's code."""

    def __init__(self, code: str, message: str, snapshot_id: str | None = None, **kw):
        kw.setdefault("status", 500 if code == "SnapshotFailed" else None)
        super().__init__(code, message, outcome=FAILED, **kw)
        self.snapshot_id = snapshot_id


class SnapshotPending(Exception):
    """The snapshot is still in progress and this invocation has no time left to wait.
    Nothing was written to the disk; continue on the same `snapshot_id` later."""

    def __init__(self, snapshot_id: str, disk_id: str, progress: str | None):
        self.snapshot_id, self.disk_id, self.progress = snapshot_id, disk_id, progress
        super().__init__(f"Evidence snapshot {snapshot_id} of disk {disk_id} is {progress or 'not yet'} done "
                         "and this invocation has no time left to wait; the disk was not reinitialized.")

    def as_error(self) -> EvidenceError:
        """For when the work cannot be handed on: WaitTimeout, and a retry is safe (it finds
        the same snapshot and wipes nothing before it is accomplished)."""
        return EvidenceError("WaitTimeout", str(self), self.snapshot_id, retryable=True)


# -- names ------------------------------------------------------------------------------
def tag_value(text: str) -> str:
    """`text` as a tag value ECS accepts (up to 128 characters, not starting with acs:, no
    http:// or https://); anything else by its digest, the same every time."""
    if len(text) <= 128 and not text.startswith("acs:") and "http://" not in text and "https://" not in text:
        return text
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def client_token(event_id: str, disk_id: str) -> str:
    """CreateSnapshot's ClientToken for (event, disk): ASCII, at most 64 characters."""
    return "reinit-" + hashlib.sha256(f"{event_id}\n{disk_id}".encode()).hexdigest()[:57]


def continuation_task_id(event_id: str, disk_id: str) -> str:
    """An `x-fc-async-task-id` for the invocation that continues this (event, disk): Function
    Compute accepts a task id once, so a retried hand-off cannot start a second one."""
    return "snap-" + hashlib.sha256(f"{event_id}\n{disk_id}".encode()).hexdigest()[:40]


def evidence_tags(event_id: str, disk_id: str, instance_id: str | None) -> list[tuple[str, str]]:
    tags = [PURPOSE_TAG, (EVENT_TAG, tag_value(event_id)), (DISK_TAG, disk_id)]
    if instance_id:
        tags.append((INSTANCE_TAG, instance_id))
    return tags


# -- the steps --------------------------------------------------------------------------
def _evidence_of(ctx: Context, event_id: str, disk_id: str) -> tuple[list[dict], int]:
    """The snapshots made for (event, disk) that no wipe has used yet, and how many have
    been used (a wipe tags its snapshot CONSUMED_TAG: a later request with the same key,
    after the store forgot it or without one, must keep fresh evidence, not point at a
    copy from before an earlier wipe)."""
    tags = [(EVENT_TAG, tag_value(event_id)), (DISK_TAG, disk_id)]
    found, _ = ctx.read(lambda: ctx.ecs.describe_snapshots(disk_id=disk_id, tags=tags))
    used = [s for s in found if _tagged(s, CONSUMED_TAG[0])]
    return [s for s in found if s not in used], len(used)


def _tagged(snap: dict, key: str) -> bool:
    return any(t.get("TagKey") == key for t in ((snap.get("Tags") or {}).get("Tag") or []))


def find_evidence_snapshot(ctx: Context, event_id: str, disk_id: str) -> dict | None:
    """The snapshot already made for (event, disk) and not yet used by a wipe, by its tags:
    one in progress or done first, else a failed one (the answer for that event)."""
    return _pick(_evidence_of(ctx, event_id, disk_id)[0])


def _pick(fresh: list[dict]) -> dict | None:
    """One in progress or done first, else a failed one (the answer for that event)."""
    usable = [s for s in fresh if s.get("Status") != "failed"]
    return (usable or fresh)[0] if fresh else None


def mark_consumed(ctx: Context, snapshot_id: str) -> None:
    """After the wipe it preceded: tag the snapshot as used (best effort; logged)."""
    try:
        ctx.retrier().call(lambda: ctx.ecs.tag_resources("snapshot", [snapshot_id], [CONSUMED_TAG]))
    except (EcsCallError, ReinitError) as err:  # ReinitError: past the deadline (its request's nonce still
        # keeps the snapshot from another request with the same key: docs/handoffs.md)
        ctx.log.warning("snapshot.consumed.untagged", snapshot=snapshot_id, code=err.code)


def take_evidence_snapshot(ctx: Context, disk_id: str, instance_id: str | None, event_id: str,
                           retention_days: int) -> str:
    """The SnapshotId of (event, disk)'s evidence snapshot: the one already made, or a new
    one (CreateSnapshot: not instant access, RetentionDays, tagged, with a ClientToken).

    `event_id` is the request's idempotency key (its ClientToken, else the trigger's id):
    every invocation for the same event must pass the same one."""
    fresh, used = _evidence_of(ctx, event_id, disk_id)
    existing = _pick(fresh)
    if existing is not None:
        ctx.log.info("snapshot.found", disk=disk_id, snapshot=existing["SnapshotId"], status=existing.get("Status"))
        return existing["SnapshotId"]
    tags = evidence_tags(event_id, disk_id, instance_id)
    # One ClientToken per generation: after a wipe used the last snapshot, ECS must not
    # answer the same token with that old snapshot.
    token = client_token(event_id if not used else f"{event_id}#{used}", disk_id)

    def create() -> str | None:
        return ctx.ecs.create_snapshot(
            disk_id, retention_days=retention_days, tags=tags, client_token=token,
            name=f"reinit-evidence-{disk_id}", description=f"Evidence kept before reinit, event {tag_value(event_id)}",
            instant_access=False)

    try:
        snapshot_id = ctx.retrier().call(create, _repeatable)
    except EcsCallError as err:
        if err.kind == "refused" and err.code not in REPEATABLE_CODES:
            raise EvidenceError(
                "SnapshotFailed", f"ECS refused CreateSnapshot for disk {disk_id} ({err.code}: {err.message}); "
                "the disk was not reinitialized.", retryable=err.code in PASSING_REFUSALS) from None
        found = _after_no_answer(ctx, event_id, disk_id)
        if found is None:
            raise EvidenceError("ServiceUnavailable", f"CreateSnapshot for disk {disk_id} did not succeed after "
                                f"retries (last: {err.code}); the disk was not reinitialized.", retryable=True) from None
        snapshot_id = found["SnapshotId"]
    ctx.log.info("snapshot.created", disk=disk_id, snapshot=snapshot_id, retention_days=retention_days)
    return snapshot_id


def wait_for_snapshot(ctx: Context, snapshot_id: str, disk_id: str) -> dict:
    """Look at the snapshot until it is `accomplished` (and return it). `failed`, or gone:
    SnapshotFailed. No time left in this invocation: SnapshotPending."""
    while True:
        found, _ = ctx.read(lambda: ctx.ecs.describe_snapshots(snapshot_ids=[snapshot_id]))
        snap = found[0] if found else None
        if snap is None:
            raise EvidenceError("SnapshotFailed", f"Evidence snapshot {snapshot_id} of disk {disk_id} no longer "
                                "exists; the disk was not reinitialized.", snapshot_id, retryable=False)
        status, progress = snap.get("Status"), snap.get("Progress")
        if status == "accomplished":
            ctx.log.info("snapshot.accomplished", disk=disk_id, snapshot=snapshot_id)
            return snap
        if status == "failed":
            raise EvidenceError("SnapshotFailed", f"Evidence snapshot {snapshot_id} of disk {disk_id} failed at "
                                f"{progress}; the disk was not reinitialized.", snapshot_id, retryable=False)
        delay = _next_look(ctx, snap)
        if ctx.clock() + delay > ctx.deadline:
            delay = ctx.config.poll_seconds
            if ctx.clock() + delay > ctx.deadline:
                ctx.log.info("snapshot.pending", disk=disk_id, snapshot=snapshot_id, progress=progress)
                raise SnapshotPending(snapshot_id, disk_id, progress)
        ctx.sleep(delay)


def evidence_snapshot(ctx: Context, disk_id: str, instance_id: str | None, event_id: str, retention_days: int) -> str:
    """Both steps: the snapshot of (event, disk), accomplished; its SnapshotId."""
    snapshot_id = take_evidence_snapshot(ctx, disk_id, instance_id, event_id, retention_days)
    wait_for_snapshot(ctx, snapshot_id, disk_id)
    return snapshot_id


# -- details ----------------------------------------------------------------------------
def _repeatable(err: EcsCallError) -> bool:
    """With a ClientToken a repeat cannot make a second snapshot, so even a call that may
    have run (5xx, no answer) is repeated; a refusal only where ECS asks for a later try."""
    return err.kind != "refused" or err.code in REPEATABLE_CODES or err.code.startswith("Throttling")


def _after_no_answer(ctx: Context, event_id: str, disk_id: str) -> dict | None:
    """After CreateSnapshot got no clear answer: did it make the snapshot? (None if the
    look fails too.)"""
    try:
        return find_evidence_snapshot(ctx, event_id, disk_id)
    except ReinitError:
        return None


def _next_look(ctx: Context, snap: dict) -> float:
    """The poll interval, or longer when ECS says the snapshot needs longer (RemainTime),
    but never more than POLL_CAP."""
    poll = ctx.config.poll_seconds
    remain = snap.get("RemainTime")
    if isinstance(remain, (int, float)) and remain > poll:
        return min(float(remain), max(poll, POLL_CAP))
    return poll
