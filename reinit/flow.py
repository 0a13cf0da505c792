"""Where the decision to wipe a disk is made: preflight -> guard -> (stop) -> reinit -> (wait).

INTERFACE.md sections 4, 8, 10 and 11. Every ECS read goes through the retrier; ReInitDisk
is repeated only where ECS cannot have carried it out, and after an ambiguous failure the
disk is looked at before anything is repeated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reinit.config import Config
from reinit.ecs import EcsCallError
from reinit.errors import DRY_RUN, FAILED, SUCCEEDED, ReinitError, failed, rejected
from reinit.idempotency import DONE, StoreUnavailable
from reinit.request import Request
from reinit.result import Context, Result, ecs_failure
from reinit.retry import retryable_write


# -- preflight --------------------------------------------------------------------------
def preflight(ctx: Context, req: Request) -> tuple[dict, dict | None]:
    """Look the disk and its instance up: DescribeDisks, then DescribeInstances."""
    if req.disk_id:
        disks, _ = ctx.read(lambda: ctx.ecs.describe_disks(disk_ids=[req.disk_id]))
        if not disks:
            raise rejected("InvalidDiskId.NotFound", f"Disk {req.disk_id} does not exist in {ctx.config.region}.")
        disk = disks[0]
        if req.instance_id and disk.get("InstanceId") != req.instance_id:
            raise rejected("InvalidParameter.Conflict", f"Disk {req.disk_id} is not attached to instance {req.instance_id}.")
    else:
        disks, _ = ctx.read(lambda: ctx.ecs.describe_disks(instance_id=req.instance_id, disk_type="system"))
        if not disks:
            raise rejected("InvalidInstanceId.NotFound", f"Instance {req.instance_id} does not exist in {ctx.config.region}.")
        disk = disks[0]
    instance = None
    if disk.get("InstanceId"):
        found = ctx.read(lambda: ctx.ecs.describe_instances([disk["InstanceId"]]))
        instance = found[0] if found else None
    return disk, instance


def disk_tags(disk: dict) -> dict[str, str]:
    return {t.get("TagKey"): t.get("TagValue", "") for t in (disk.get("Tags") or {}).get("Tag") or []}


def require_tag(required: tuple[str, str | None] | None, disk: dict) -> None:
    """Section 8: the disk must carry the tag (a bare key: any value)."""
    if required is None:
        return
    key, value = required
    tags = disk_tags(disk)
    if key not in tags or (value is not None and tags[key] != value):
        wanted = key if value is None else f"{key}={value}"
        raise rejected("Forbidden.TagRequired", f"Disk {disk['DiskId']} does not carry the tag {wanted}; it will not be reinitialized.")


def guard(config: Config, req: Request, disk: dict, instance: dict | None) -> None:
    """The rules that stand between a valid request and a wipe (section 4, step 4)."""
    require_tag(config.required_tag, disk)
    disk_id = disk["DiskId"]
    if disk.get("Status") != "In_use" or instance is None:
        raise rejected("IncorrectDiskStatus", f"Disk {disk_id} is {disk.get('Status')}; it must be In_use (attached).")
    # The one password rule that needs the OS, checked before any write.
    if req.password is not None and instance.get("OSType", "").lower() == "windows" and req.password.reveal().startswith("/"):
        raise rejected("InvalidPassword.Malformed", "A Windows password cannot start with '/'.")
    status = instance.get("Status")
    if status != "Stopped" and not (req.stop_instance and status in ("Running", "Stopping")):
        hint = "" if req.stop_instance else "; set StopInstance to stop it first"
        raise rejected("IncorrectInstanceStatus", f"Instance {instance['InstanceId']} is {status}; it must be Stopped{hint}.")


# -- carrying it out -------------------------------------------------------------------
def run_single(ctx: Context, req: Request) -> Result:
    """A whole single-disk request: preflight, guards, and the wipe, at most once."""
    disk, instance = preflight(ctx, req)
    return at_most_once(ctx, req, disk, lambda: carry_out(ctx, req, disk, instance))


def at_most_once(ctx: Context, req: Request, disk: dict, run: Callable[[], Result]) -> Result:
    """Run once per (EventId, DiskId) where a store is configured (section 11, "Idempotency")."""
    once = ctx.once
    if once is None or req.dry_run or ctx.config.dry_run:
        return run()
    disk_id, instance_id = disk["DiskId"], disk.get("InstanceId") or None
    try:
        record = once.store.claim(once.event_key, disk_id, once.hold_seconds)
    except StoreUnavailable as err:
        ctx.log.error("idempotency.unavailable", error=str(err))
        return Result(FAILED, "ServiceUnavailable", "The idempotency store is unreachable; nothing was done, so "
                      "that the disk cannot be wiped twice.", True, disk_id, instance_id, status=503)
    if record is not None:
        ctx.log.info("idempotency.duplicate", disk=disk_id, state=record["State"])
        if record["State"] == DONE:
            return Result.duplicate(record["Result"])
        return Result(FAILED, "Conflict.InProgress", f"Disk {disk_id} is being handled for this event by another "
                      "invocation; its outcome will be published.", True, disk_id, instance_id, status=409)
    result = run()
    try:
        if result.retryable and not result.may_have_run:
            once.store.release(once.event_key, disk_id)  # nothing was carried out: a retry may do it
        else:
            once.store.complete(once.event_key, disk_id, result.stored())
    except StoreUnavailable as err:
        ctx.log.error("idempotency.unavailable", error=str(err), disk=disk_id)
    return result


@dataclass
class InstanceGroup:
    """The disks of one instance in a batch: run one after another, the system disk last;
    only the last one starts the instance again (section 11, "Stopping")."""

    stopped_by_us: bool = False


def carry_out(ctx: Context, req: Request, disk: dict, instance: dict | None, last: bool = True,
              group: InstanceGroup | None = None) -> Result:
    """Guards, then (unless a dry run) stop, ReInitDisk and wait. `last=False` keeps a
    stopped instance down for the next disk of the same instance."""
    group = group or InstanceGroup()
    disk_id, instance_id = disk["DiskId"], disk.get("InstanceId") or None
    try:
        guard(ctx.config, req, disk, instance)
    except ReinitError as err:
        return Result.from_error(err, disk_id, instance_id)
    if req.dry_run or ctx.config.dry_run:
        return Result(DRY_RUN, None, f"Dry run: disk {disk_id} passed every check; nothing was written.",
                      disk_id=disk_id, instance_id=instance_id)
    accepted = False
    auto_start = req.auto_start if last else None
    try:
        if instance["Status"] != "Stopped":
            group.stopped_by_us = request_stop(ctx, instance) or group.stopped_by_us
            wait_stopped(ctx, instance_id)
            instance["Status"] = "Stopped"
        if auto_start is None and group.stopped_by_us and last:
            auto_start = True  # restore the state it was in
        request_id = reinit_safely(ctx, req, disk_id, instance_id, auto_start)
        accepted = True
        if req.wait:
            wait_for_completion(ctx, disk_id, instance_id if auto_start else None, request_id)
    except ReinitError as err:
        result = Result.from_error(err, disk_id, instance_id)
        result.may_have_run = result.may_have_run or accepted
        if group.stopped_by_us and last and not accepted:
            result.message += " " + restart(ctx, instance_id)
        return result
    done = "ReInitDisk finished" if req.wait else "ECS accepted ReInitDisk"
    started = " The instance is being started again." if auto_start else ""
    return Result(SUCCEEDED, None, f"{done} for disk {disk_id}.{started}", disk_id=disk_id,
                  instance_id=instance_id, ecs_request_id=request_id, may_have_run=True)


def request_stop(ctx: Context, instance: dict) -> bool:
    """StopInstance (not forced, KeepCharging) for a Running instance. True if this call
    stopped it (then a failure later starts it again); False if it was already Stopping."""
    instance_id = instance["InstanceId"]
    if instance["Status"] != "Running":
        return False
    try:
        ctx.retrier().call(lambda: ctx.ecs.stop_instance(instance_id), retryable_write)
    except EcsCallError as err:
        if not err.ambiguous:
            raise ecs_failure(err) from None
        ctx.log.warning("ecs.stop.ambiguous", instance=instance_id, code=err.code)  # the wait will tell
    return True


def wait_stopped(ctx: Context, instance_id: str) -> None:
    wait_until(ctx, f"instance {instance_id} to stop", lambda: instance_status(ctx, instance_id) == "Stopped")


def instance_status(ctx: Context, instance_id: str) -> str | None:
    found = ctx.read(lambda: ctx.ecs.describe_instances([instance_id]))
    return found[0].get("Status") if found else None


def disk_status(ctx: Context, disk_id: str) -> str | None:
    disks, _ = ctx.read(lambda: ctx.ecs.describe_disks(disk_ids=[disk_id]))
    return disks[0].get("Status") if disks else None


def reinit_safely(ctx: Context, req: Request, disk_id: str, instance_id: str, auto_start) -> str | None:
    """ReInitDisk, repeated only where ECS cannot have run it; an ambiguous failure is
    resolved by looking at the disk (section 11, "Ambiguous failures")."""
    def call():
        return ctx.ecs.reinit_disk(disk_id, req.password, req.key_pair_name, auto_start,
                                   req.security_enhancement_strategy)

    try:
        return ctx.retrier().call(call, retryable_write)
    except EcsCallError as err:
        if not err.ambiguous:
            raise ecs_failure(err, err.request_id) from None
        first = err
    ctx.log.warning("ecs.reinit.ambiguous", disk=disk_id, code=first.code)
    try:
        status = disk_status(ctx, disk_id)
        inst = instance_status(ctx, instance_id)
    except ReinitError:
        raise failed("ServiceUnavailable", f"ReInitDisk got no clear answer ({first.code}) and the disk could not be "
                     "checked; it may or may not have been reinitialized.", ecs_request_id=first.request_id,
                     may_have_run=True) from None
    if status == "ReIniting":
        return first.request_id  # ECS carried out the first call
    if status == "In_use" and inst == "Stopped":
        # A stopped instance wrote nothing in between: repeating ends the same either way.
        try:
            return ctx.retrier().call(call, retryable_write)
        except EcsCallError as again:
            if again.code == "IncorrectDiskStatus":
                return first.request_id  # the first call is under way
            if again.ambiguous:
                raise failed("ServiceUnavailable", f"ReInitDisk got no clear answer twice (last: {again.code}).",
                             ecs_request_id=again.request_id, may_have_run=True) from None
            raise ecs_failure(again, again.request_id) from None
    if status == "In_use" and auto_start and inst in ("Starting", "Running"):
        return first.request_id  # it ran, finished, and the instance was started
    raise failed("ServiceUnavailable", f"ReInitDisk got no clear answer ({first.code}); the disk is {status} and "
                 f"the instance {inst}, so it was not repeated.", ecs_request_id=first.request_id, may_have_run=True)


def wait_for_completion(ctx: Context, disk_id: str, started_instance: str | None, request_id) -> None:
    """Wait until the disk is back In_use (after it was seen ReIniting), and the instance
    Running when ECS is starting it."""
    seen = {"reiniting": False}

    def disk_done() -> bool:
        status = disk_status(ctx, disk_id)
        if status == "ReIniting":
            seen["reiniting"] = True
        return status == "In_use" and seen["reiniting"]

    wait_until(ctx, f"disk {disk_id} to finish reinitializing", disk_done, request_id)
    if started_instance:
        wait_until(ctx, f"instance {started_instance} to start",
                   lambda: instance_status(ctx, started_instance) == "Running", request_id)


def wait_until(ctx: Context, what: str, done: Callable[[], bool], ecs_request_id=None) -> None:
    """Poll as ECS recommends: a short first delay, then every poll_seconds; never past
    the deadline. Running out is WaitTimeout."""
    delay = min(1.0, ctx.config.poll_seconds)
    while True:
        if ctx.clock() + delay > ctx.deadline:
            raise failed("WaitTimeout", f"Gave up waiting for {what}: the function is running out of time.",
                         ecs_request_id=ecs_request_id)
        ctx.sleep(delay)
        if done():
            return
        delay = ctx.config.poll_seconds


def restart(ctx: Context, instance_id: str) -> str:
    """Start an instance this function stopped, after a failure (best effort)."""
    try:
        ctx.retrier().call(lambda: ctx.ecs.start_instance(instance_id), retryable_write)
        return f"The function had stopped instance {instance_id} and started it again."
    except EcsCallError as err:
        ctx.log.error("ecs.restart.failed", instance=instance_id, code=err.code)
        return f"The function had stopped instance {instance_id} and could not start it again ({err.code}): start it by hand."
