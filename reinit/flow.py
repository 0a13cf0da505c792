"""Where the decision to wipe a disk is made: preflight -> guard -> (stop) -> reinit -> (wait).

INTERFACE.md sections 4, 8, 10 and 11. Every ECS read goes through the retrier; ReInitDisk
is repeated only where ECS cannot have carried it out, and after an ambiguous failure the
disk is looked at before anything is repeated. The at-most-once wrapper around all of it
is idempotency.py's job; what is done to the instance is in stopping.py, and how each
change is waited for in waits.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from reinit.config import Config
from reinit.context import Context, ecs_failure
from reinit.ecs import EcsCallError
from reinit.errors import DRY_RUN, REJECTED, SUCCEEDED, ReinitError, failed, rejected
from reinit.idempotency import StoreUnavailable, at_most_once
from reinit.looks import Looks
from reinit.request import Request
from reinit.result import Result
from reinit.retry import RetryQuota, retryable_write
from reinit.snapshot import SnapshotPending, evidence_snapshot, mark_consumed
from reinit.stopping import InstanceGroup, request_stop, settle_instance, wait_stopped
from reinit.waits import Waited, look, wait_for_completion
from reinit.wipemark import clear_mark, current_mark, mark_value, write_mark


# -- preflight --------------------------------------------------------------------------
def preflight(ctx: Context, req: Request) -> tuple[dict, dict | None]:
    """Look the disk and its instance up: DescribeDisks, then DescribeInstances."""
    if req.disk_id:
        disks, _ = ctx.read(lambda: ctx.ecs.describe_disks(disk_ids=[req.disk_id]))
        if not disks:
            raise rejected("InvalidDiskId.NotFound", f"Disk {req.disk_id} does not exist in {ctx.config.region}.")
        disk = disks[0]
        if req.instance_id and disk.get("InstanceId") != req.instance_id and req.continuation is not None:
            raise moved(req.disk_id, req.instance_id, disk.get("InstanceId"))
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
    if disk.get("Status") == "ReIniting":
        # Being reinitialized now, perhaps for a copy of this very request: repeating it
        # once that is over would wipe what was written since. Not retryable (section 11:
        # Retryable only where a repeat cannot destroy anything written after a first wipe).
        raise ReinitError("IncorrectDiskStatus", f"Disk {disk_id} is being reinitialized (ReIniting) right now; if "
                          "that is this request, it is done. Look at the disk before sending it again.",
                          outcome=REJECTED, retryable=False)
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
    group = InstanceGroup()
    result = at_most_once(ctx, req, disk, lambda c: carry_out(c, req, disk, instance, True, group),
                          lambda c, record: resolve_in_doubt(c, req, disk, record, group), group)
    return settle_instance(ctx, group, disk.get("InstanceId") or None, result)


@dataclass
class _Wipe:
    """How far one disk's wipe got: what a failure part-way must undo or report."""

    accepted: bool = False  # ECS accepted ReInitDisk (or may have)
    held: bool = False  # a start was held back for a later disk of the instance
    marked: str | None = None  # the wipe mark's value before this invocation wrote its own
    auto_start: bool | None = None
    snapshot_id: str | None = None
    request_id: str | None = None
    waited: Waited = field(default_factory=Waited)


def carry_out(ctx: Context, req: Request, disk: dict, instance: dict | None, last: bool = True,
              group: InstanceGroup | None = None, continuable: bool = True) -> Result:
    """Guards, then (unless a dry run) stop, snapshot, ReInitDisk and wait. `last=False`
    keeps a stopped instance down for the next disk of the same instance; `continuable`
    says whether a snapshot that outlasts the invocation is handed on (a single request)
    or not (a batch disk: its instance is started again, and a retry picks it up)."""
    group = group if group is not None else InstanceGroup()
    disk_id, instance_id = disk["DiskId"], disk.get("InstanceId") or None
    try:
        guard(ctx.config, req, disk, instance)
    except ReinitError as err:
        return Result.from_error(err, disk_id, instance_id)
    if req.dry_run or ctx.config.dry_run:
        return Result(DRY_RUN, None, f"Dry run: disk {disk_id} passed every check; nothing was written.",
                      disk_id=disk_id, instance_id=instance_id)
    assert instance is not None, "guard() refused a disk with no instance"
    wipe = _Wipe()
    try:
        gated = _wipe(ctx, req, disk, instance, group, last, wipe)
    except SnapshotPending as pending:  # nothing was written; the same snapshot is picked up later
        return _pending(pending, disk_id, instance_id, group, continuable)
    except ReinitError as err:
        return _wipe_failed(ctx, err, wipe, disk_id, instance_id, group)
    return gated if gated is not None else _wiped(ctx, req, wipe, disk_id, instance_id, group)


def _wipe(ctx: Context, req: Request, disk: dict, instance: dict, group: InstanceGroup, last: bool,
          wipe: _Wipe) -> Result | None:
    """Stop, (approval,) snapshot, look again, mark, ReInitDisk, (wait): each step noted in
    `wipe`. A Result only where the approval gate holds the wipe for a person."""
    disk_id, instance_id = disk["DiskId"], disk.get("InstanceId") or None
    group.since = group.since or instance.get("StartTime")
    # The look this was planned on is stale where time passes before the write: a stop, a
    # snapshot, or a batch (whose one selection is only a plan).
    stale = instance["Status"] != "Stopped" or bool(req.snapshot) or bool(group.members)
    if instance["Status"] != "Stopped":
        asked = request_stop(ctx, instance)
        group.stopped_by_us = asked or group.stopped_by_us
        assert instance_id is not None, "guard() let through only an attached disk, its instance found by this id"
        wait_stopped(ctx, instance_id, asked)
        instance["Status"] = "Stopped"
        group.settled_at = ctx.clock()
    if ctx.gate is not None:  # section 13.3: contained (and preserved); the wipe waits for a person
        held = ctx.gate(ctx, req, disk, instance, group, last)
        if held is None:  # None means "go on" to carry_out: a gate must never answer it
            raise RuntimeError("the approval gate gave no result")
        return held
    if req.snapshot:  # contained and quiet: the evidence is taken before the wipe
        wipe.snapshot_id = keep_evidence(ctx, disk_id, instance_id)
        group.settled_at = ctx.clock()
    seen = look_again(ctx, disk, group) if stale else disk
    wipe.auto_start, wipe.held = start_after(req, group, last)
    group.auto_start = wipe.auto_start
    note_writing(ctx, group)
    wipe.marked = mark_wipe(ctx, seen, group)
    wipe.request_id = reinit_safely(ctx, req, disk_id, instance_id, wipe.auto_start, group.since)
    wipe.accepted = True
    if wipe.snapshot_id:
        mark_consumed(ctx, wipe.snapshot_id)  # a later request with the same key keeps fresh evidence
    group.start_handed_to_ecs = group.start_handed_to_ecs or bool(wipe.auto_start)
    group.left_stopped = group.left_stopped or (last and wipe.auto_start is False)
    if req.wait:
        started = instance_id if wipe.auto_start else None
        try:
            wipe.waited = wait_for_completion(ctx, disk_id, started, wipe.request_id)
        finally:  # time passed, also where the wait failed: the next disk of the group is looked at again
            group.settled_at = ctx.clock()
    if wipe.waited.unstarted:  # not started after all: the function starts what it stopped (settle_instance)
        group.start_handed_to_ecs = False
    return None


def _pending(pending: SnapshotPending, disk_id: str, instance_id: str | None, group: InstanceGroup,
             continuable: bool) -> Result:
    """The evidence snapshot outlasts the invocation: nothing was written."""
    result = Result.from_error(pending.as_error(), disk_id, instance_id)
    result.snapshot_id = pending.snapshot_id
    if continuable:
        result.snapshot_pending = True
        group.left_stopped = True  # the instance stays contained until the wipe is done
    return result


def _wipe_failed(ctx: Context, err: ReinitError, wipe: _Wipe, disk_id: str, instance_id: str | None,
                 group: InstanceGroup) -> Result:
    """A failure part-way: undo the wipe mark where ReInitDisk certainly did not run, and
    never call retryable what ran."""
    if getattr(err, "instance_moved", False):
        group.stopped_by_us = False
    result = Result.from_error(err, disk_id, instance_id)
    result.may_have_run = result.may_have_run or wipe.accepted
    if wipe.marked is not None and not result.may_have_run:
        clear_mark(ctx, disk_id, wipe.marked)  # ReInitDisk certainly did not run: no doubt to leave behind
    if wipe.accepted and not result.in_doubt:
        # ReInitDisk ran: whatever failed after it (a look during the wait), repeating the
        # request would wipe again what the instance writes from now on.
        result.retryable = False
        result.ecs_request_id = result.ecs_request_id or wipe.request_id
        result.message += f" ReInitDisk itself was accepted (request {wipe.request_id}); do not send it again."
    result.snapshot_id = wipe.snapshot_id or getattr(err, "snapshot_id", None)
    if result.in_doubt:
        group.in_doubt(disk_id)
    if wipe.held and wipe.accepted:
        result.message += kept_stopped(instance_id, group)
        result.extra["InstanceLeftStopped"] = instance_id
    return result


def _wiped(ctx: Context, req: Request, wipe: _Wipe, disk_id: str, instance_id: str | None,
           group: InstanceGroup) -> Result:
    """ReInitDisk accepted (and, where asked, finished): the Result says what comes next."""
    waited, auto_start, snapshot_id = wipe.waited, wipe.auto_start, wipe.snapshot_id
    done = f"ReInitDisk finished for disk {disk_id}{waited.how}." if req.wait else f"ECS accepted ReInitDisk for disk {disk_id}."
    kept = f" Evidence snapshot {snapshot_id} was accomplished first." if snapshot_id else ""
    started, extra = "", {}
    if wipe.held:
        started, extra = kept_stopped(instance_id, group), {"InstanceLeftStopped": instance_id}
    elif auto_start and waited.unstarted:
        # `how` says so; settle_instance starts it where the function stopped it.
        extra = {} if group.stopped_by_us else {"InstanceLeftStopped": instance_id}
    elif auto_start and disk_id in ctx.ambiguous_reinits:
        # The answer was lost and the disk was seen under way: if another caller's ReInitDisk
        # (without AutoStartInstance) is the one that ran, nothing will start the instance.
        started = (f" ECS is to start instance {instance_id} again; the answer was lost, so if another call "
                   "made this reinit, check that it is running.")
    elif auto_start:
        started = " The instance is being started again."
    return Result(SUCCEEDED, None, done + kept + started, disk_id=disk_id, instance_id=instance_id,
                  ecs_request_id=wipe.request_id, may_have_run=True, snapshot_id=snapshot_id, extra=extra)


def start_after(req: Request, group: InstanceGroup, last: bool) -> tuple[bool | None, bool]:
    """AutoStartInstance for this disk's ReInitDisk (None: not sent), and whether a start
    was held back. Only the instance's last disk may start it: as asked, or, where the
    function stopped it, to restore the state it was in."""
    auto_start = req.auto_start if last else None
    if auto_start is None and group.stopped_by_us and last:
        auto_start = True
    if auto_start and group.doubt is not None:
        # An earlier disk of this instance is in doubt, and its result may have said a
        # repeat is safe because the instance stays stopped: started now, it would write,
        # and that repeat would wipe what it wrote (found by the soak).
        return False, True
    return auto_start, False


def kept_stopped(instance_id: str | None, group: InstanceGroup) -> str:
    return (f" Instance {instance_id} is kept stopped, not started: the reinit of disk {group.doubt} is in doubt, "
            "and nothing may be written before that is resolved.")


def note_writing(ctx: Context, group: InstanceGroup) -> None:
    """Before ReInitDisk: the claim's record says it is about to run (idempotency.py), so
    that a crash from here on leaves the pair in doubt. If that cannot be written down,
    nothing is written to the disk."""
    if ctx.before_write is None:
        return
    try:
        ctx.before_write(**group.facts())
    except StoreUnavailable as err:
        ctx.log.error("idempotency.unavailable", error=str(err))
        raise failed("ServiceUnavailable", "The idempotency store could not record that ReInitDisk was about to run; "
                     "it was not called, so that the disk cannot be wiped twice.", retryable=True) from None


def look_again(ctx: Context, disk: dict, group: InstanceGroup) -> dict:
    """The guard again on a look taken right before the write (the look the request was
    planned on may be minutes old: a stop, a snapshot, a batch of hundreds): the tag, the
    disk `In_use`, on the same instance. One DescribeDisks for the disks of the instance
    group and of the batch still to come, taken again after any wait (looks.py)."""
    disk_id = disk["DiskId"]
    now = fresh_look(ctx, disk, group)
    require_tag(ctx.config.required_tag, now)
    planned, there = disk.get("InstanceId") or None, now.get("InstanceId") or None
    if now.get("Status") != "In_use" or there != planned:
        raise rejected("IncorrectDiskStatus", f"Disk {disk_id} is now {now.get('Status')} on instance {there} (it was "
                       f"In_use on {planned} when the request began); nothing was written.")
    return now


def fresh_look(ctx: Context, disk: dict, group: InstanceGroup) -> dict:
    """The disk as a look taken right before its write shows it (see look_again): one
    DescribeDisks serves the group and the batch's next disks (looks.py)."""
    disk_id = disk["DiskId"]
    if group.looks is None:
        group.looks = Looks(ctx.clock, group.members or (disk_id,))

    def read(ids: list[str]) -> list[dict]:
        # Its own retry budget: a look that succeeds must not refund the batch's shared one.
        found, _ = replace(ctx, quota=RetryQuota()).read(lambda: ctx.ecs.describe_disks(disk_ids=ids))
        return found

    now = group.looks.take(disk_id, group.members, group.settled_at, read)
    if now is None:
        raise rejected("InvalidDiskId.NotFound", f"Disk {disk_id} no longer exists; nothing was written.")
    return now


def mark_wipe(ctx: Context, disk: dict, group: InstanceGroup) -> str | None:
    """With a store: the disk's wipe mark (wipemark.py), the memory the store cannot lose.
    Returns the value it replaced ("" for none), or None where no mark is kept."""
    once = ctx.once
    if once is None or ctx.before_write is None:
        return None
    previous = current_mark(disk)
    value = mark_value(previous, once.event_key, once.store.wall(), group.facts(), once.store.ttl)
    write_mark(ctx, disk["DiskId"], value, previous)
    return previous


def remark(ctx: Context, disk: dict, group: InstanceGroup) -> None:
    """Before a look that may repeat ReInitDisk: the disk carries this request's mark (with
    the first call's facts), so that the store forgetting after this repeat cannot let a
    later redelivery wipe again (found by the soak: a repeat after a holder died before
    its mark left none)."""
    try:
        mark_wipe(ctx, disk, group)
    except ReinitError:
        err = failed("ServiceUnavailable", f"The wipe mark could not be written on disk {disk['DiskId']}; the disk "
                     "was not looked at again, and ReInitDisk was not repeated.", retryable=True, may_have_run=True)
        err.in_doubt = True  # still in doubt: a retry looks again
        raise err from None


def keep_evidence(ctx: Context, disk_id: str, instance_id: str | None) -> str:
    """The evidence snapshot of this request's disk, accomplished (section 11, "Evidence
    snapshot"): the one already made for the same request, or a new one."""
    snapshot_id = evidence_snapshot(ctx, disk_id, instance_id, ctx.evidence_key or "unkeyed",
                                    ctx.config.snapshot_retention_days)
    # The snapshot may have taken long: the disk must still be on the instance the request saw.
    disks, _ = ctx.read(lambda: ctx.ecs.describe_disks(disk_ids=[disk_id]))
    now_on = disks[0].get("InstanceId") or None if disks else None
    if now_on != instance_id:
        raise moved(disk_id, instance_id, now_on)
    return snapshot_id


def moved(disk_id: str, seen_on: str | None, now_on: str | None) -> ReinitError:
    """The disk left the instance this request saw it on (detached, or attached elsewhere)."""
    where = f"is now on instance {now_on}" if now_on else "is no longer attached"
    err = rejected("IncorrectDiskStatus", f"Disk {disk_id} was on instance {seen_on} when this request saw it and "
                   f"{where}; it will not be reinitialized. Instance {seen_on} is as the request left it.")
    err.retryable = False  # a repeat of this request meets the same move: the caller decides anew
    return err


def indeterminate(first: EcsCallError, seen, repeated: bool = False, refused: EcsCallError | None = None,
                  since: str | None = None) -> ReinitError:
    """ReInitDisk may have run and it cannot be told: never repeated blindly."""
    if seen is None:
        why = "the disk could not be looked at"
    else:
        why = f"the disk is {seen[0]} and its instance {seen[1]}"
        if seen[:2] == ("In_use", "Stopped"):
            why += (f" but started since the first call (StartTime {seen[2]}, before {since})" if since and seen[2]
                    else " but whether it was started since the first call is not known")
        if refused is not None:
            why += f"; a repeat was refused ({refused.code})"
    err = failed("Indeterminate", f"ReInitDisk got no clear answer{' twice' if repeated else ''} ({first.code}) and "
                 f"{why}, so it may or may not have run; it was not repeated.", status=502, retryable=False,
                 ecs_request_id=first.request_id, may_have_run=True)
    err.in_doubt = True
    return err


def reinit_safely(ctx: Context, req: Request, disk_id: str, instance_id: str | None, auto_start,
                  since: str | None = None) -> str | None:
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
        ctx.log.warning("ecs.reinit.ambiguous", disk=disk_id, code=err.code)
        ctx.ambiguous_reinits.add(disk_id)  # resolved by a look: whose call ran is not known
        return resolve_ambiguity(ctx, call, disk_id, instance_id, auto_start, err, since)


def quiet(seen, since: str | None) -> bool:
    """The disk In_use and its instance Stopped, and not started since the first call: its
    StartTime is the one it had before. Stopped now is not enough: it may have been started
    and stopped again meanwhile (by someone, or by this very invocation for another disk)."""
    return seen is not None and seen[:2] == ("In_use", "Stopped") and since is not None and seen[2] == since


def repeat_is_safe(again: EcsCallError) -> ReinitError:
    """Whatever ran, nothing was written since: the same request may safely be made again."""
    err = failed("ServiceUnavailable", f"ReInitDisk got no clear answer, and its repeat none either ({again.code}); "
                 "the disk is In_use and its instance still Stopped, so the request may safely be repeated.",
                 retryable=True, ecs_request_id=again.request_id, may_have_run=True)
    err.in_doubt = True
    return err


def resolve_ambiguity(ctx: Context, call, disk_id: str, instance_id: str | None, auto_start, first: EcsCallError,
                      since: str | None) -> str | None:
    """After a ReInitDisk that may have run: the request id of the call that ran, or a
    failure that says whether repeating it is safe. `since`: the instance's StartTime
    before the first call."""
    seen = look(ctx, disk_id, instance_id)
    if seen is None:
        raise indeterminate(first, seen)
    status, inst, _ = seen
    if status == "ReIniting":
        return first.request_id  # ECS carried out the first call
    if quiet(seen, since):
        # A stopped instance wrote nothing in between: repeating ends the same either way.
        try:
            return ctx.retrier().call(call, retryable_write)
        except ReinitError:  # the pace would send the repeat past the deadline: the first may have run
            raise indeterminate(first, seen) from None
        except EcsCallError as again:
            if again.code == "IncorrectDiskStatus":
                return first.request_id  # the first call is under way
            if again.kind in ("throttled", "unreachable"):
                raise repeat_is_safe(again) from None  # the repeat did not run; the first may have
            if not again.ambiguous:
                raise indeterminate(first, seen, refused=again) from None
            seen = look(ctx, disk_id, instance_id)
            if seen is not None and seen[0] == "ReIniting":
                return again.request_id
            if quiet(seen, since):
                raise repeat_is_safe(again) from None  # the 503-every-try case
            raise indeterminate(again, seen, repeated=True) from None
    if status == "In_use" and auto_start and inst in ("Starting", "Running"):
        return first.request_id  # it ran, finished, and ECS started the instance
    raise indeterminate(first, seen, since=since)


def resolve_in_doubt(ctx: Context, req: Request, disk: dict, record: dict, group: InstanceGroup) -> Result:
    """A redelivery of a request whose ReInitDisk may have run: look again under the same
    rules before anything is repeated (section 11, "Ambiguous failures")."""
    disk_id, instance_id = disk["DiskId"], disk.get("InstanceId") or None
    try:
        # In a batch the disk was looked at when the batch began: the tag is checked on a
        # look taken now, before anything may be repeated.
        require_tag(ctx.config.required_tag, fresh_look(ctx, disk, group) if group.members else disk)
    except ReinitError as err:
        return Result.from_error(err, disk_id, instance_id)
    previous = record.get("Result") or {}
    group.recall(record)
    auto_start = group.auto_start

    def call():
        return ctx.ecs.reinit_disk(disk_id, req.password, req.key_pair_name, auto_start,
                                   req.security_enhancement_strategy)

    first = EcsCallError("ReInitDisk", "network", previous.get("Code") or "Indeterminate", "in doubt",
                         request_id=previous.get("EcsRequestId"))
    request_id = ran = None
    try:
        remark(ctx, disk, group)
        request_id = resolve_ambiguity(ctx, call, disk_id, instance_id, auto_start, first, group.since)
        ran = True
        group.start_handed_to_ecs = bool(auto_start)
        waited = wait_for_completion(ctx, disk_id, instance_id if auto_start else None, request_id) if req.wait \
            else Waited()
        group.start_handed_to_ecs = group.start_handed_to_ecs and not waited.unstarted
    except ReinitError as err:
        result = Result.from_error(err, disk_id, instance_id)
        result.may_have_run = True
        if ran and not result.in_doubt:
            # It ran (the wait failed after it): as in carry_out, a repeat would wipe again
            # (found by the hand-off world: a chunk ended normally on a Retryable WaitTimeout).
            result.retryable = False
            result.ecs_request_id = result.ecs_request_id or request_id
        if result.in_doubt:
            group.in_doubt(disk_id)
        return result
    extra = {"InstanceLeftStopped": instance_id} if waited.unstarted and not group.stopped_by_us else {}
    return Result(SUCCEEDED, None, f"The earlier ReInitDisk for disk {disk_id} was in doubt; looked again: it ran"
                  f"{waited.how}.", disk_id=disk_id, instance_id=instance_id, ecs_request_id=request_id,
                  may_have_run=True, extra=extra)
