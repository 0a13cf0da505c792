"""What the function does to an instance (INTERFACE.md section 11, "Stopping"): it stops a
Running instance only when asked (StopInstance), waits for it without fighting anyone who
starts it meanwhile, and starts it again when none of its disks' reinits will; the result
of the instance's last disk says what became of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from reinit.context import Context, ecs_failure
from reinit.ecs import EcsCallError
from reinit.errors import ReinitError, failed
from reinit.looks import Looks
from reinit.result import Result
from reinit.retry import retryable_write
from reinit.waits import SETTLE_LOOKS, SETTLE_SECONDS, instance_status, poll


@dataclass
class InstanceGroup:
    """The disks of one instance in a batch (or the one disk of a single request): run one
    after another, the system disk last; only the last one starts the instance again
    (section 11, "Stopping"). What the function did to the instance is kept here, so that
    whatever happens to the last disk, the instance is not left stopped unsaid."""

    stopped_by_us: bool = False
    start_handed_to_ecs: bool = False  # a ReInitDisk with AutoStartInstance=true was accepted
    left_stopped: bool = False  # on purpose: asked for (AutoStartInstance=false) or in doubt
    settled: bool = False
    auto_start: bool | None = None  # what the last ReInitDisk was sent with
    doubt: str | None = None  # a disk of this instance whose ReInitDisk is in doubt
    # The instance's StartTime before the first ReInitDisk: unchanged later, it has not
    # been started since (ECS gives it to the minute), so nothing was written meanwhile.
    since: str | None = None
    members: tuple = ()  # the DiskIds of the group, for one look right before the writes
    looks: Looks | None = None  # the batch's looks (looks.py); a group alone gets its own
    settled_at: float = float("-inf")  # when its last wait ended: a look from before it is stale

    def facts(self) -> dict:
        """What the claim's record keeps of the instance (idempotency.FACTS), so that a
        redelivery of a record in doubt knows what this invocation did."""
        return {"StoppedByUs": self.stopped_by_us, "AutoStart": self.auto_start, "StartTime": self.since}

    def recall(self, record: dict) -> None:
        """The facts an earlier invocation kept in the record, added to this one's own. Its
        StartTime is the baseline from before that first call, older than any this
        invocation saw: the rest of the group compared with it can only refuse more repeats."""
        self.stopped_by_us = self.stopped_by_us or bool(record.get("StoppedByUs"))
        self.auto_start = record.get("AutoStart")
        self.since = record.get("StartTime")

    def in_doubt(self, disk_id: str) -> None:
        """A disk's ReInitDisk is in doubt: the instance stays stopped (a restart could let
        it write before a repeat), also through the rest of its disks."""
        self.left_stopped = True
        self.doubt = self.doubt or disk_id


def settle_instance(ctx: Context, group: InstanceGroup, instance_id: str | None, last: Result) -> Result:
    """After the last disk of an instance: an instance the function stopped is started
    again unless a reinit will start it or it is left stopped on purpose, and `last`
    (the result published for that disk) says what became of it."""
    if group.settled or not group.stopped_by_us or instance_id is None:
        return last
    group.settled = True
    if group.start_handed_to_ecs:
        return last
    if group.left_stopped:
        if last.extra.get("InstanceLeftStopped"):
            return last  # already said
        if last.in_doubt or group.doubt:
            unless = " (ECS starts it itself if that ReInitDisk ran)" if last.in_doubt and group.auto_start else ""
            last.message += (f" The function had stopped instance {instance_id} and does not start it again{unless}, "
                             "so that nothing is written to the disk before the doubt is resolved.")
            last.extra["InstanceLeftStopped"] = instance_id
        elif last.snapshot_pending:
            last.message += (f" The function had stopped instance {instance_id}; it stays stopped until the evidence "
                             "snapshot is accomplished and the disk reinitialized, which starts it again.")
            last.extra["InstanceLeftStopped"] = instance_id
        return last
    last.message += " " + restart(ctx, instance_id, last)
    return last


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


def wait_stopped(ctx: Context, instance_id: str, asked: bool = True) -> None:
    """Wait for Stopped, using what the looks show (section 11, "Waiting"):
    - seen Stopping or Stopped, then Starting or Running: someone else started it; said at
      once, not waited for to the deadline;
    - still Running, never Stopping, after the settle time: the StopInstance that got no
      clear answer did not run; it is asked once more (stopping is safe to repeat), and if
      the instance still does not begin to stop, that is said.
    `asked` False: the function found it Stopping and sent nothing; that Stopping counts as
    seen, so an instance Running at the first look was started by someone else. (Sending
    StopInstance then would stop an instance that, say, another copy's reinit had ECS
    start, and what this call does next would not start it again: found by the soak.)"""
    state = {"asked_at": ctx.clock(), "stopping": not asked, "looks": 0, "asked": 1}

    def stopped() -> bool:
        status = instance_status(ctx, instance_id)
        state["looks"] += 1
        if status == "Stopped":
            return True
        if status == "Stopping":
            state["stopping"] = True
            return False
        if status not in ("Starting", "Running"):
            return False
        if state["stopping"]:
            raise moved(f"Instance {instance_id} is {status} again while the function waited for it to stop: "
                        "someone else started it. Nothing was written to the disk.")
        if ctx.clock() - state["asked_at"] >= SETTLE_SECONDS and state["looks"] >= SETTLE_LOOKS:
            if state["asked"] >= 2:
                raise moved(f"Instance {instance_id} is still {status}: it did not begin to stop after StopInstance "
                            "was sent twice. Nothing was written to the disk.")
            request_stop(ctx, {"InstanceId": instance_id, "Status": "Running"})
            state.update(asked_at=ctx.clock(), looks=0, asked=2)
        return False

    poll(ctx, f"instance {instance_id} to stop", stopped)


def moved(message: str) -> ReinitError:
    err = failed("IncorrectInstanceStatus", message, status=403, retryable=True)
    err.instance_moved = True  # not stopped by the function after all: not its to start again
    return err


def restart(ctx: Context, instance_id: str, result: Result | None = None) -> str:
    """Start an instance this function stopped and nothing will start (best effort)."""
    try:
        ctx.retrier().call(lambda: ctx.ecs.start_instance(instance_id), retryable_write)
        if result is not None:
            result.extra["InstanceRestarted"] = instance_id
        return f"The function had stopped instance {instance_id} and started it again."
    except (EcsCallError, ReinitError) as err:  # ReinitError: the pace would send it past the deadline
        ctx.log.error("ecs.restart.failed", instance=instance_id, code=err.code)
        if result is not None:
            result.extra["InstanceLeftStopped"] = instance_id
        return f"The function had stopped instance {instance_id} and could not start it again ({err.code}): start it by hand."
