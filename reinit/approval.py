"""Approval before the wipe (INTERFACE.md section 13.3; docs/approval.md).

Three parts:
- the gate (`Gate`): where REINIT_APPROVAL applies, a disk is contained (its instance
  stopped) and preserved (the evidence snapshot), then published `AwaitingApproval` with a
  token; nothing is wiped;
- the tokens (approval_token.py): signed and checked by the function, no store needed;
- the door's second key (`authenticate`) and the decisions (`decide`): an HTTP request
  signed with the approvers' secret, body `{"Approve": token}` or `{"Deny": token}`.

Once-only: a decision is about one request's wipe of one disk (`decision_id`), whichever
of that request's tokens carries it. It is claimed in the idempotency store under
`approval:<decision id>` (the first decision wins, a repeat answers from it, `Duplicate:
true`); approval without a store is Config.Invalid (config.py), because the disk's mark
(tag `reinit:approval`, set before an approved ReInitDisk and when a token is denied) holds
one value, which a later decision on that disk for another request overwrites.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from reinit.approval_token import (  # noqa: F401  (app.py reaches the secrets and keys through this module)
    Grant,
    SecretReader,
    approver_secrets,
    check_token,
    decision_id,
    decision_of,
    iso,
    sign_token,
    token_id,
    token_keys,
)
from reinit.context import Context
from reinit.ecs import EcsCallError
from reinit.errors import AWAITING_APPROVAL, REJECTED, SUCCEEDED, ReinitError, failed, rejected
from reinit.events import EVENTBRIDGE
from reinit.flow import carry_out, require_tag, resolve_in_doubt
from reinit.idempotency import StoreUnavailable, at_most_once
from reinit.request import Request
from reinit.result import Result
from reinit.retry import retryable_write
from reinit.snapshot import EvidenceError, SnapshotPending, mark_consumed, take_evidence_snapshot, wait_for_snapshot
from reinit.stopping import InstanceGroup
from reinit.webhook import verify

WEBHOOK, APPROVER = "webhook", "approver"  # who signed an HTTP request
APPROVE, DENY = "Approve", "Deny"
# The mark an approved wipe or a denial leaves on the disk (ECS tag keys may not start
# with aliyun or acs:; TagResources, Tag.N.Key).
MARK_TAG = "reinit:approval"


# -- the gate -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Gate:
    """Holds a disk's wipe for a person's decision: contained, preserved, published
    `AwaitingApproval` with a token. `carry_out` (flow.py) calls it in place of the wipe."""

    keys: tuple[bytes, ...]
    wall: Callable[[], float]
    ttl: int
    region: str
    event_type: str | None
    requested_by: str
    min_disks: int | None = None  # batch mode: a batch smaller than this is not held
    account: str | None = None  # the member account acted in (section 13.1): the approval acts there too
    decided: Callable[[str, str], bool] | None = None  # (decision id, disk): a decision on it is stored

    def for_batch(self, total: int, req: Request) -> Gate | None:
        """In batch mode, the gate for a batch of `total` disks, or None (not held). A
        chunk of a split batch is held: its batch was large enough to be split."""
        if self.min_disks is None or req.batch_id is not None or total >= self.min_disks:
            return self
        return None

    def __call__(self, ctx: Context, req: Request, disk: dict, instance: dict, group: InstanceGroup,
                 last: bool) -> Result:
        disk_id, instance_id = disk["DiskId"], disk.get("InstanceId")
        assert instance_id is not None, "guard() let through only an attached disk, its instance found by this id"
        group.left_stopped = True  # contained: whatever happens next, the function does not start it
        refused = self.already_decided(ctx, disk_id, instance_id)
        if refused is not None:
            return refused
        snapshot_id, state = None, None
        try:
            if req.snapshot:
                snapshot_id = take_evidence_snapshot(ctx, disk_id, instance_id, ctx.evidence_key or "unkeyed",
                                                     ctx.config.snapshot_retention_days)
                wait_for_snapshot(ctx, snapshot_id, disk_id)
                state = "accomplished"
        except SnapshotPending as pending:  # the approval checks it again: nothing waits on it here
            state = f"progressing ({pending.progress or '0%'})"
        except EvidenceError as err:
            result = Result.from_error(err, disk_id, instance_id)
            result.snapshot_id = err.snapshot_id
            result.message += f" Instance {instance_id} stays stopped (contained)."
            result.extra["InstanceLeftStopped"] = instance_id
            return result
        auto_start = req.auto_start if last else None
        if auto_start is None and last and group.stopped_by_us:
            auto_start = True  # restore what the function stopped, once the wipe is approved
        expires = int(self.wall()) + self.ttl
        grant = Grant(disk_id, instance_id, snapshot_id, ctx.evidence_key or "unkeyed", self.region, expires,
                      group.since or instance.get("StartTime"), auto_start, req.key_pair_name,
                      req.security_enhancement_strategy, req.wait, self.event_type, self.requested_by, self.account)
        token = sign_token(grant, self.keys[0])
        kept = f" Evidence snapshot {snapshot_id} is {state}." if snapshot_id else ""
        starts = " Its approved wipe starts the instance again." if auto_start else ""
        message = (f"Disk {disk_id} awaits approval: instance {instance_id} is stopped (contained).{kept}{starts} "
                   f"Nothing was written to the disk. Approve or deny before {iso(expires)}.")
        approval = {"Token": token, "ExpiresAt": iso(expires), "EventType": self.event_type,
                    "RequestedBy": self.requested_by, "SnapshotStatus": state, "StartsInstance": bool(auto_start),
                    "ApproveCommand": f"python -m reinit approve {token}",
                    "DenyCommand": f"python -m reinit deny {token}"}
        return Result(AWAITING_APPROVAL, None, message, False, disk_id, instance_id, status=202,
                      snapshot_id=snapshot_id, extra={"Approval": approval, "InstanceLeftStopped": instance_id})


    def already_decided(self, ctx: Context, disk_id: str, instance_id: str | None) -> Result | None:
        """A new request under an idempotency key whose earlier request's wipe of this disk was
        already decided (its request record expired before the decision's): a token for it
        would share that decision and answer from it, without ReInitDisk. Refused instead."""
        if self.decided is None:
            return None
        tid = decision_of(ctx.evidence_key or "unkeyed", disk_id)
        try:
            if not self.decided(tid, disk_id):
                return None
            err = rejected("InvalidParameter.Conflict", f"A decision was already made on a wipe of disk {disk_id} under "
                           "this idempotency key; use a new ClientToken (or Idempotency-Key) for a new request.")
        except StoreUnavailable:
            err = failed("ServiceUnavailable", "The idempotency store cannot be read; send it again.", retryable=True)
        result = Result.from_error(err, disk_id, instance_id)
        result.message += f" Nothing was written to the disk; instance {instance_id} stays stopped (contained)."
        result.extra["InstanceLeftStopped"] = instance_id
        return result

def gate_for(config, trigger: str, req: Request, keys: Sequence[bytes], wall, event_type: str | None,
             requested_by: str, account: str | None = None, decided=None) -> Gate | None:
    """The gate this request passes through, or None (REINIT_APPROVAL, section 13.3)."""
    mode = config.approval
    held = mode == "always" or (mode == "incident" and trigger == EVENTBRIDGE) or (mode == "batch" and req.is_batch)
    if not held or req.dry_run or config.dry_run:
        return None
    if not keys:
        raise failed("Config.Invalid", "REINIT_APPROVAL needs both the approvers' secret and the webhook secret.")
    if req.password is not None or req.password_secret_name is not None:
        # A token travels in notifications: it cannot carry a Password, and none is kept. A
        # PasswordSecretName is refused too: the token does not carry it, so the approved wipe
        # would silently reset no password (found in review).
        raise rejected("InvalidParameter.Conflict", f"REINIT_APPROVAL={mode}: a request that may wait for approval "
                       "cannot carry a Password or PasswordSecretName; use KeyPairName. Nothing was done.")
    return Gate(tuple(keys), wall, config.approval_ttl, req.region_id or config.region, event_type, requested_by,
                config.approval_min_disks if mode == "batch" else None, account, decided)


def contained(config, trigger: str, req: Request) -> Request:
    """An incident held for approval always stops its instance first: containment."""
    if config.approval in ("incident", "always") and trigger == EVENTBRIDGE and not req.is_batch:
        return replace(req, stop_instance=True)
    return req


# -- the door -----------------------------------------------------------------------------
def authenticate(config, webhooks: Sequence[str], approvers: Callable[[], Sequence[str]], headers: dict,
                 body: bytes | None, now: float) -> tuple[str | None, str]:
    """(the signature, who signed it: WEBHOOK or APPROVER), checked against both keys
    before the body is read; else Unauthorized.Signature. With REINIT_WEBHOOK_AUTH=fc the
    trigger guards requests, and only an approval needs a signature (the approvers')."""
    refusal = None
    if config.webhook_auth == "hmac":
        for secret in webhooks or (None,):
            try:
                return verify(secret, headers, body, now), WEBHOOK
            except ReinitError as err:
                refusal = refusal or err
    for secret in approvers():
        try:
            return verify(secret, headers, body, now), APPROVER
        except ReinitError:
            pass
    if config.webhook_auth != "hmac":
        return None, WEBHOOK
    assert refusal is not None, "under hmac, `webhooks or (None,)` ran verify at least once, and it refused"
    raise refusal


def role_refusal(role: str, fields: dict | None) -> Result | None:
    """What each key may do: the webhook secret never decides an approval, the approvers'
    secret does nothing else (401 both)."""
    decision = isinstance(fields, dict) and (APPROVE in fields or DENY in fields)
    if role == WEBHOOK and decision:
        return Result(REJECTED, "Unauthorized.Approval", "An approval must be signed with the approvers' secret; "
                      "nothing was done.", status=401, reason="an approval signed with the webhook secret")
    if role == APPROVER and not (decision and fields is not None and len(fields) == 1):
        return Result(REJECTED, "Unauthorized.Signature", "The request signature was not accepted.", status=401,
                      reason="the approvers' secret signed something other than one Approve or Deny")
    return None


# -- the decisions ------------------------------------------------------------------------
def decide(context_for: Callable[[str, str, str | None], Context], fields: dict, keys: Sequence[bytes],
           now: float) -> Result:
    """Carry out `{"Approve": token}` or `{"Deny": token}`: the token is checked first (a
    refusal does nothing), then the first decision on it is carried out, once.
    `context_for(region, decision id, account)`: the Context to act in (in the member
    account the token names, if any), its claim keyed by the decision."""
    decision = APPROVE if APPROVE in fields else DENY
    token = fields[decision]
    grant = check_token(token, keys, now)
    tid = decision_id(grant)
    ctx = context_for(grant.region, tid, grant.account)
    disk, instance = look_up(ctx, grant)
    req = Request(disk_id=grant.disk_id, instance_id=grant.instance_id, key_pair_name=grant.key_pair_name,
                  auto_start=grant.auto_start, security_enhancement_strategy=grant.strategy, wait=grant.wait,
                  region_id=grant.region)
    group = InstanceGroup(since=grant.start_time)
    run = (lambda c: approve(c, req, grant, tid, disk, instance, group)) if decision == APPROVE \
        else (lambda c: deny(c, grant, tid, disk))
    resolve = (lambda c, record: resolve_in_doubt(c, req, disk, record, group)) if disk is not None \
        else (lambda c, record: gone_in_doubt(grant))
    result = at_most_once(ctx, req, disk or {"DiskId": grant.disk_id, "InstanceId": grant.instance_id}, run,
                          resolve, group)
    result.snapshot_id = result.snapshot_id or grant.snapshot_id
    result.instance_id = result.instance_id or grant.instance_id
    result.extra.setdefault("Approval", {"Decision": decision, "TokenId": token_id(token), "EventType": grant.event_type,
                                         "RequestedBy": grant.requested_by})
    return result


def gone_in_doubt(grant: Grant) -> Result:
    """A wipe left in doubt whose disk no longer exists: nothing to look at, nothing done."""
    result = Result.from_error(rejected("InvalidDiskId.NotFound", f"Disk {grant.disk_id} no longer exists; nothing "
                                        "was done (its earlier ReInitDisk was in doubt)."), grant.disk_id,
                               grant.instance_id)
    result.may_have_run = True  # the earlier ReInitDisk may have run
    return result


def look_up(ctx: Context, grant: Grant) -> tuple[dict | None, dict | None]:
    disks, _ = ctx.read(lambda: ctx.ecs.describe_disks(disk_ids=[grant.disk_id]))
    disk = disks[0] if disks else None
    instance_id = (disk or {}).get("InstanceId")
    found = ctx.read(lambda: ctx.ecs.describe_instances([instance_id])) if instance_id else []
    return disk, (found[0] if found else None)


def mark_of(disk: dict | None) -> str | None:
    tags = (disk or {}).get("Tags") or {}
    return next((t.get("TagValue") for t in tags.get("Tag") or [] if t.get("TagKey") == MARK_TAG), None)


def mark(ctx: Context, disk_id: str, value: str) -> None:
    """Tag the disk with a decision before it is acted on; if that fails, nothing is done."""
    try:
        ctx.retrier().call(lambda: ctx.ecs.tag_resources("disk", [disk_id], [(MARK_TAG, value)]), retryable_write)
    except EcsCallError as err:
        raise failed("ServiceUnavailable", f"The decision could not be recorded on disk {disk_id} ({err.code}); "
                     "nothing was done. Send it again.", retryable=True) from None


def earlier_decision(grant: Grant, tid: str, disk: dict | None, approved_mark: bool = True) -> Result | None:
    """What the disk's mark says of an earlier decision on this wipe, if any.
    `approved_mark` False: an approval's mark is not taken as its outcome (with a store,
    whose record says whether ReInitDisk was reached; the mark may be from a holder that
    died between marking and calling)."""
    seen = mark_of(disk)
    if seen == tid and approved_mark:
        return Result(SUCCEEDED, None, f"This wipe was already approved and ReInitDisk called for disk "
                      f"{grant.disk_id} (its first answer says how it went); it is not called again.",
                      disk_id=grant.disk_id, instance_id=grant.instance_id,
                      may_have_run=True, extra={"Duplicate": True})
    if seen == f"denied-{tid}":
        return Result(REJECTED, "ApprovalDenied", f"This wipe was denied; disk {grant.disk_id} is not reinitialized "
                      "with it.", disk_id=grant.disk_id, instance_id=grant.instance_id, status=403,
                      extra={"Duplicate": True, "InstanceLeftStopped": grant.instance_id})
    return None


def approve(ctx: Context, req: Request, grant: Grant, tid: str, disk: dict | None, instance: dict | None,
            group: InstanceGroup) -> Result:
    """The guards again (the disk still tagged and on that instance, the instance stopped
    and not started since, the snapshot accomplished), then the wipe, once."""
    earlier = earlier_decision(grant, tid, disk, approved_mark=ctx.once is None)
    if earlier is not None:
        return earlier
    try:
        recheck(ctx, grant, disk, instance)
        mark(ctx, grant.disk_id, tid)
    except ReinitError as err:
        result = Result.from_error(err, grant.disk_id, grant.instance_id)
        result.extra["InstanceLeftStopped"] = grant.instance_id
        result.message += f" Instance {grant.instance_id} was left as it is."
        return result
    assert disk is not None, "recheck() refused a disk that no longer exists"
    result = carry_out(ctx, req, disk, instance, True, group)
    if result.outcome == SUCCEEDED and grant.snapshot_id:
        mark_consumed(ctx, grant.snapshot_id)
    elif not result.may_have_run:  # refused before it ran: a later approval may try again
        try:
            mark(ctx, grant.disk_id, f"refused-{tid}")
        except ReinitError:
            ctx.log.warning("approval.mark.kept", disk=grant.disk_id)
    if result.outcome != SUCCEEDED and not group.start_handed_to_ecs:
        result.extra.setdefault("InstanceLeftStopped", grant.instance_id)
    return result


def recheck(ctx: Context, grant: Grant, disk: dict | None, instance: dict | None) -> None:
    if disk is None:
        raise rejected("InvalidDiskId.NotFound", f"Disk {grant.disk_id} no longer exists; nothing was done.")
    if disk.get("InstanceId") != grant.instance_id or instance is None:
        raise ReinitError("IncorrectDiskStatus", f"Disk {grant.disk_id} is no longer attached to instance "
                          f"{grant.instance_id}; it was not reinitialized.", retryable=False)
    require_tag(ctx.config.required_tag, disk)
    if instance.get("Status") != "Stopped":
        raise ReinitError("IncorrectInstanceStatus", f"Instance {grant.instance_id} is {instance.get('Status')}, no "
                          "longer stopped; the disk was not reinitialized.", retryable=False)
    if grant.start_time is not None and instance.get("StartTime") != grant.start_time:
        raise ReinitError("IncorrectInstanceStatus", f"Instance {grant.instance_id} was started since the approval was "
                          "asked (its StartTime changed); the disk was not reinitialized.", retryable=False)
    if grant.snapshot_id:
        found, _ = ctx.read(lambda: ctx.ecs.describe_snapshots(snapshot_ids=[grant.snapshot_id]))
        status = found[0].get("Status") if found else None
        if status in (None, "failed"):
            raise failed("SnapshotFailed", f"Evidence snapshot {grant.snapshot_id} is {status or 'gone'}; the disk "
                         "was not reinitialized.", status=500, retryable=False)
        if status != "accomplished":
            # ReInitDisk's own code for this state (its error table): DiskCreatingSnapshot.
            raise ReinitError("DiskCreatingSnapshot", f"Evidence snapshot {grant.snapshot_id} is still "
                              f"{found[0].get('Progress') or status}; approve again once it is accomplished "
                              f"(the token is valid until {iso(grant.expires)}). Nothing was done.",
                              status=403, retryable=True)


def deny(ctx: Context, grant: Grant, tid: str, disk: dict | None) -> Result:
    """No wipe with this token, ever: the disk is marked, the instance stays stopped."""
    earlier = earlier_decision(grant, tid, disk)
    if earlier is not None:
        if earlier.outcome == SUCCEEDED:
            earlier.message += " A denial comes too late."
        return earlier
    if disk is not None:
        try:
            mark(ctx, grant.disk_id, f"denied-{tid}")
        except ReinitError as err:
            return Result.from_error(err, grant.disk_id, grant.instance_id)
    return Result(REJECTED, "ApprovalDenied", f"Denied: disk {grant.disk_id} is not reinitialized. Instance "
                  f"{grant.instance_id} stays stopped (contained); start it by hand once it is safe.",
                  disk_id=grant.disk_id, instance_id=grant.instance_id, status=403,
                  extra={"InstanceLeftStopped": grant.instance_id})

