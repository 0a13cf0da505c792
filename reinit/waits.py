"""Waiting on ECS (INTERFACE.md section 11, "Waiting"): every wait looks at once (a change
may already be over), then every poll_seconds, never past the deadline; an end that was
not seen is inferred only from signs ECS gives, and the Message says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from reinit.context import Context
from reinit.errors import ReinitError, failed

# A completion wait that never sees ReIniting infers the end once the disk has stayed
# In_use this long after ECS accepted the call, over at least SETTLE_LOOKS looks: ECS
# shows ReIniting within moments of accepting ReInitDisk (a loaded region's DescribeDisks
# may lag by seconds), so a disk still In_use after half a minute finished between two
# looks. Half a minute, not the function's whole timeout: the hang this replaces ran to
# the deadline. With AutoStartInstance, the instance leaving Stopped tells it sooner.
SETTLE_SECONDS = 30.0
SETTLE_LOOKS = 3


def instance_of(ctx: Context, instance_id: str) -> dict:
    """The instance as DescribeInstances shows it ({} where it is gone)."""
    found = ctx.read(lambda: ctx.ecs.describe_instances([instance_id]))
    return found[0] if found else {}


def instance_status(ctx: Context, instance_id: str) -> str | None:
    return instance_of(ctx, instance_id).get("Status")


def disk_status(ctx: Context, disk_id: str) -> str | None:
    disks, _ = ctx.read(lambda: ctx.ecs.describe_disks(disk_ids=[disk_id]))
    return disks[0].get("Status") if disks else None


def look(ctx: Context, disk_id: str, instance_id: str | None) -> tuple[str | None, str | None, str | None] | None:
    """(disk status, instance status, instance StartTime), or None where ECS could not be read."""
    try:
        status = disk_status(ctx, disk_id)
        instance = instance_of(ctx, instance_id) if instance_id else {}
    except ReinitError:
        return None
    return status, instance.get("Status"), instance.get("StartTime")


class Waited(NamedTuple):
    how: str = ""  # how the end was known, for the Message ("" when it was seen)
    unstarted: bool = False  # ECS was to start the instance and, the settle time after the reinit, had not


def wait_for_completion(ctx: Context, disk_id: str, started_instance: str | None, request_id) -> Waited:
    """Wait until the reinit has finished: the disk back In_use after it was seen
    ReIniting, or, where ReIniting was never seen (the reinit was faster than the looks,
    or showed a moment late), the end inferred from the other signs ECS gives (section 11,
    "Waiting"). Then the instance Running when ECS is starting it; still Stopped the
    settle time after the reinit, ECS is not starting it (the reinit that ran may have been
    another caller's, without AutoStartInstance), which is said rather than waited for to
    the deadline."""
    accepted_at = ctx.clock()
    state: dict[str, Any] = {"seen": False, "looks": 0, "how": ""}

    def disk_done() -> bool:
        status = disk_status(ctx, disk_id)
        state["looks"] += 1
        if status == "ReIniting":
            state["seen"] = True
            return False
        if status != "In_use":
            return False
        if state["seen"]:
            return True
        if started_instance and instance_status(ctx, started_instance) in ("Starting", "Running"):
            state["how"] = (" (inferred: the disk was never seen ReIniting, and ECS has started the instance, "
                            "which it does only after the reinit)")
            return True
        waited = ctx.clock() - accepted_at
        if waited >= SETTLE_SECONDS and state["looks"] >= SETTLE_LOOKS:
            state["how"] = (f" (inferred: the disk was never seen ReIniting and stayed In_use for {waited:.0f} s "
                            "after ECS accepted the call)")
            return True
        return False

    poll(ctx, f"disk {disk_id} to finish reinitializing", disk_done, request_id)
    if not started_instance:
        return Waited(state["how"])
    done_at = ctx.clock()
    start: dict[str, Any] = {"looks": 0, "unstarted": False}

    def instance_started() -> bool:
        status = instance_status(ctx, started_instance)
        start["looks"] += 1
        if status == "Running":
            return True
        if status == "Stopped" and ctx.clock() - done_at >= SETTLE_SECONDS and start["looks"] >= SETTLE_LOOKS:
            start["unstarted"] = True
            return True
        return False

    poll(ctx, f"instance {started_instance} to start", instance_started, request_id)
    if start["unstarted"]:
        state["how"] += (f"; ECS has not started instance {started_instance}, which AutoStartInstance asks, "
                         f"{SETTLE_SECONDS:.0f} s after the reinit: the reinit that ran may have been another "
                         "caller's")
    return Waited(state["how"], start["unstarted"])


def poll(ctx: Context, what: str, done: Callable[[], bool], ecs_request_id=None) -> None:
    """Look at once (a change may already be over), then every poll_seconds; never past
    the deadline. Running out is WaitTimeout."""
    while True:
        if done():
            return
        delay = ctx.config.poll_seconds
        if ctx.clock() + delay > ctx.deadline:
            raise failed("WaitTimeout", f"Gave up waiting for {what}: the function is running out of time.",
                         ecs_request_id=ecs_request_id)
        ctx.sleep(delay)
