"""An evidence snapshot that outlasts the invocation (INTERFACE.md section 11, "Evidence
snapshot"): the same request is handed to an asynchronous invocation of this function,
once per (request, disk, hop) by its task id, and the claim of this invocation is settled.

Where it cannot be handed on (no Function Compute endpoint, or a Password that must not
travel in a payload; a PasswordSecretName travels, not its value), the result stays a retryable WaitTimeout: the platform's retry
finds the same snapshot.
"""

from __future__ import annotations

from reinit.chunks import ALREADY_HANDED_OFF, Dispatcher, continuation_payload
from reinit.config import Config
from reinit.context import Context
from reinit.ecs import Credentials, EcsCallError
from reinit.idempotency import StoreUnavailable
from reinit.request import Request
from reinit.result import Result
from reinit.retry import retryable_read
from reinit.scrub import Scrubber
from reinit.snapshot import continuation_task_id

MAX_CONTINUATIONS = 144  # a day of 10-minute invocations waiting for one evidence snapshot


def function_name(config: Config, context) -> str | None:
    """This function's own name: configured, else the one Function Compute passes in."""
    return config.function_name or getattr(getattr(context, "function", None), "name", None)


def continue_later(ctx: Context, config: Config, creds: Credentials | None, name: str | None,
                   request: Request, result: Result) -> Result:
    """Hand the request on, or return `result` as it is where that cannot be done. The
    hand-off is recorded in the claim first (a take-over re-sends it, never the request);
    a take-over that found one (`result.handoff`) re-sends exactly that."""
    handoff = result.handoff
    if not config.fc_endpoint or not name:
        return result
    assert result.disk_id is not None, "a snapshot outlasts the invocation for one disk (flow._pending)"
    if handoff is None:
        handoff = new_handoff(ctx, request, result)
        if handoff is None or not record_handoff(ctx, result.disk_id, handoff):
            return result
        result.handoff = handoff
    task = handoff["Task"]
    assert config.region is not None, "a configuration without a region is refused (admit) before any ECS call"
    assert creds is not None, "claim() refused a call with no credentials"
    dispatcher = Dispatcher(config.fc_endpoint, config.region, creds, name)
    try:
        handed = ctx.retrier().call(lambda: dispatcher.invoke_async(handoff["Payload"], task), retryable_read)
    except EcsCallError as err:
        ctx.log.error("snapshot.continue.failed", disk=result.disk_id, code=err.code)
        return result
    # The task id is this request's own (its nonce is in it): a 409 is the hand-off this
    # request made, never an older request's.
    ctx.log.info("snapshot.continued", disk=result.disk_id, snapshot=result.snapshot_id, task=task,
                 already=handed == ALREADY_HANDED_OFF)
    result.retryable = False  # the continuation carries it on; a retry of this one is not needed
    result.message += (f" The work goes on in an asynchronous invocation of this function (task {task}), which "
                       "waits for the same snapshot and publishes the outcome; nothing was written to the disk.")
    result.extra["ContinuedAs"] = task
    return result


def new_handoff(ctx: Context, request: Request, result: Result) -> dict | None:
    """The continuation of this request: its task id (one per request, disk and hop) and
    payload, which carries the instance the disk was on (a continuation refuses a disk that
    moved); None where the request cannot travel (a Password) or has waited long enough."""
    hop = (request.continuation or 0) + 1
    # A Password read from PasswordSecretName travels as the name (section 13.2); a plain one never.
    plain_password = request.password is not None and request.password_secret_name is None
    if plain_password or hop > MAX_CONTINUATIONS:
        return None
    # One task id per hop: a redelivery of this invocation meets its 409, while the
    # continuation that in turn runs out of time hands on to the next hop.
    assert result.disk_id is not None, "a snapshot outlasts the invocation for one disk (flow._pending)"
    assert ctx.evidence_key is not None, "claim() gave the request's Context its evidence key"
    task = continuation_task_id(f"{ctx.evidence_key}#{hop}", result.disk_id)
    payload = {**continuation_payload(request, result.disk_id, ctx.evidence_key), "Continuation": hop}
    if result.instance_id:
        payload["InstanceId"] = result.instance_id
    if result.extra.get("InstanceLeftStopped") and request.auto_start is None:
        payload["AutoStartInstance"] = True  # this invocation stopped it: the wipe starts it again
    return {"Task": task, "Payload": payload, "SnapshotId": result.snapshot_id}


def record_handoff(ctx: Context, disk_id: str, handoff: dict) -> bool:
    """Write the hand-off into the claim before it is made (True; also where there is no
    store). False: the claim could not record it, so nothing is handed on."""
    once = ctx.once
    if once is None:
        return True
    try:
        once.store.record_handoff(once.event_key, disk_id, handoff)
    except StoreUnavailable as err:
        ctx.log.error("idempotency.unavailable", error=str(err), disk=disk_id)
        return False
    return True


def settle_claim(ctx: Context, result: Result, scrubber: Scrubber) -> None:
    """A single request whose snapshot outlasted the invocation kept its claim: handed on,
    the request is done here (a redelivery is answered "Duplicate", and only the
    continuation wipes); not handed on, the claim is released for the platform's retry,
    unless a hand-off was recorded in it: then it stays, and the take-over after it
    expires sends that same hand-off again."""
    recorded = result.handoff is not None
    once = ctx.once
    if once is None or not result.snapshot_pending or result.disk_id is None:
        return
    try:
        if result.extra.get("ContinuedAs"):
            once.store.complete(once.event_key, result.disk_id, scrubber.value(result.stored()))
        elif not recorded:
            once.store.release(once.event_key, result.disk_id)
    except StoreUnavailable as err:
        ctx.log.error("idempotency.unavailable", error=str(err), disk=result.disk_id)
