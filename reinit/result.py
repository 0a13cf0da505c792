"""The per-disk Result: what flow.py hands back and what becomes a notification (section 5).
Pure data over errors.py only, so every module may import it without a cycle."""

from __future__ import annotations

from dataclasses import dataclass, field

from reinit.errors import ReinitError

# Notification keys a duplicate answer repeats from the stored outcome.
KEPT_EXTRA = ("ContinuedAs", "InstanceRestarted", "InstanceLeftStopped", "Approval")


@dataclass
class Result:
    """What happened to one disk; becomes the notification of section 5."""

    outcome: str
    code: str | None
    message: str
    retryable: bool = False
    disk_id: str | None = None
    instance_id: str | None = None
    ecs_request_id: str | None = None
    status: int = 200
    extra: dict = field(default_factory=dict)
    may_have_run: bool = False  # ReInitDisk was accepted, or may have been
    reason: str | None = None  # for the log only (why a signature was refused); never sent
    snapshot_id: str | None = None  # the evidence snapshot taken before the wipe
    in_doubt: bool = False  # ReInitDisk may have run and it could not be told (section 11)
    # Control state, read by the steps after flow.py (typed, not in `extra`):
    snapshot_pending: bool = False  # the evidence snapshot outlasts the invocation: hand the request on
    handoff: dict | None = None  # a hand-off a take-over found recorded in the claim: sent again as it is

    @classmethod
    def from_error(cls, err: ReinitError, disk_id=None, instance_id=None) -> Result:
        return cls(err.outcome, err.code, err.message, err.retryable, disk_id, instance_id,
                   err.ecs_request_id, err.status, may_have_run=err.may_have_run, reason=err.reason,
                   in_doubt=err.in_doubt, extra=dict(err.extra))

    def stored(self) -> dict:
        return {"Outcome": self.outcome, "Code": self.code, "Message": self.message, "Retryable": self.retryable,
                "DiskId": self.disk_id, "InstanceId": self.instance_id, "EcsRequestId": self.ecs_request_id,
                "SnapshotId": self.snapshot_id, "Status": self.status,
                "Extra": {k: v for k, v in self.extra.items() if k in KEPT_EXTRA}}

    @classmethod
    def duplicate(cls, stored: dict) -> Result:
        return cls(stored["Outcome"], stored["Code"], "Duplicate event: already handled. " + stored["Message"],
                   stored["Retryable"], stored["DiskId"], stored["InstanceId"], stored["EcsRequestId"],
                   stored["Status"], extra={**(stored.get("Extra") or {}), "Duplicate": True}, may_have_run=True,
                   snapshot_id=stored.get("SnapshotId"))
