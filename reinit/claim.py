"""The claim step: the request's keys bound to the idempotency store (the same key with
another request is refused, and its nonce recorded), the credentials it acts with (a
member account's role, section 13.1), the approval gate (section 13.3), and the Context
it is carried out in. An approver's decision is claimed here too, keyed by the decision."""

from __future__ import annotations

import uuid
from functools import partial

from reinit import approval
from reinit.call import Call, Where
from reinit.context import Context, Once
from reinit.continuation import function_name
from reinit.door import token_keys
from reinit.errors import ReinitError, failed, rejected
from reinit.idempotency import StoreUnavailable
from reinit.identity import CALLER_KEYS, evidence_key, idempotency_key, request_fingerprint
from reinit.request import Request, shown
from reinit.result import Result
from reinit.sts import role_arn, session_name

NO_STORE = "The idempotency store cannot be used; nothing was done, so that no disk can be wiped twice."


def claim(call: Call, where: Where, request: Request) -> Context:
    """The Context a request is carried out in, its key bound to the store first."""
    if call.creds is None:
        raise failed("Config.Invalid", "No credentials: neither context.credentials nor the ALIBABA_CLOUD_* variables.")
    ecs = call.app.clients.ecs_for(call.config, acting_credentials(call, where), where.region)
    key = idempotency_key(call.inv, call.invocation_id, request)
    once = bind(call, key, request)  # a key used for another request is refused before anything is recorded
    return call.work_context(ecs, once=once, evidence_key=evidence_key_of(call, key, request),
                             gate=gate(call, where, request))


def bind(call: Call, key: str | None, request: Request) -> Once | None:
    """The idempotency key of this request (section 11, "Idempotency"), bound to the
    store; the same key with another request is refused."""
    if call.store is None or key is None:
        return None
    try:
        other = call.store.remember_request(key, request_fingerprint(request))
    except StoreUnavailable as err:
        call.log.error("idempotency.unavailable", error=str(err))
        raise failed("ServiceUnavailable", NO_STORE, retryable=True) from None
    if other is not None:
        raise rejected("InvalidParameter.Conflict", "This idempotency key was already used for a different "
                       "request; use a new ClientToken (or Idempotency-Key) for a new request.")
    return Once(call.store, key, call.hold(), call.invocation_id or "")


def evidence_key_of(call: Call, key: str | None, request: Request) -> str:
    """What names this request's evidence snapshots: its ClientToken, else a digest of
    its idempotency key. A continuation carries it as its ClientToken, so every
    invocation of one request finds the same snapshot."""
    if request.continuation is not None:
        assert request.client_token is not None, "parse_request refuses a Continuation without ClientToken"
        return request.client_token  # the parent's evidence key, carried on
    return evidence_key(key or f"invocation:{call.invocation_id}", nonce(call, key, request))


def nonce(call: Call, key: str | None, request: Request) -> str:
    """What makes one request's task ids and evidence its own (docs/handoffs.md): with a
    store, the nonce recorded for its key (a retry finds it; the key used again after
    it expired is a new request); without one, for a key the caller chose (ClientToken,
    Idempotency-Key), the FC request id, which FC keeps across its retries. A key the
    trigger gives (an event id) is unique to its request already ("")."""
    if key is None or request.continuation is not None or request.batch_id is not None:
        return ""  # carried in the parent's evidence key or BatchId
    candidate = call.invocation_id or uuid.uuid4().hex
    if call.store is None:
        return candidate if key.startswith(CALLER_KEYS) else ""
    try:
        return call.store.request_nonce(key, candidate)
    except StoreUnavailable as err:
        call.log.error("idempotency.unavailable", error=str(err))
        raise failed("ServiceUnavailable", NO_STORE, retryable=True) from None


def acting_credentials(call: Call, where: Where):
    """The function's own credentials, or, for an event from a member account, those of
    the role REINIT_ACCOUNT_ROLE assumed there."""
    if where.account is None:
        return call.creds
    config = call.config
    if not config.sts_endpoint:
        raise failed("Config.Invalid", "No STS endpoint to assume a role in a member account: set "
                     "REINIT_STS_ENDPOINT or REINIT_REGION.")
    arn = role_arn(where.account, config.account_role)
    creds = call.app.roles.credentials(config.sts_endpoint, config.region, call.creds, arn,
                                       session_name(function_name(config, call.context)), call.app.wall())
    call.scrubber.add(creds.access_key_secret)
    call.scrubber.add(creds.security_token)
    call.log.info("account.assumed", account=where.account, role=arn, access_key_id=creds.access_key_id)
    return creds


def gate(call: Call, where: Where, request: Request) -> approval.Gate | None:
    """The approval gate the wipe passes through (section 13.3), or None."""
    if call.config.approval == "never":
        return None
    inv = call.inv
    asked = " ".join(str(p) for p in (inv.trigger, inv.extra.get("source"), inv.event_id) if p)
    store = call.store
    decided = (lambda tid, disk: store.recorded(f"approval:{tid}", disk)) if store is not None else None
    return approval.gate_for(call.config, inv.trigger, request, token_keys(call), call.app.wall,
                             inv.extra.get("type"), asked, where.account, decided)


def decide(call: Call, where: Where) -> Result:
    """An approver's Approve or Deny: the token checked, then carried out once."""
    try:
        if call.config.problems:
            raise failed("Config.Invalid", "The function is misconfigured: " + "; ".join(call.config.problems) + ".")
        assert call.inv.fields is not None, "role_refusal() let the approvers' secret sign one Approve or Deny only"
        return approval.decide(partial(decision_context, call, where), call.inv.fields, token_keys(call),
                               call.app.wall())
    except ReinitError as err:
        return Result.from_error(err)


def decision_context(call: Call, where: Where, region: str, decision_id: str, account: str | None = None) -> Context:
    """The Context a decision is carried out in: the token's region and account, still
    allowed, and a claim keyed by the decision."""
    if region not in call.config.regions:
        raise rejected("Forbidden.Region", f"Region {shown(region)} is not one of REINIT_REGIONS; nothing was done.")
    if account is not None and account not in call.config.event_accounts:
        # Listed when the incident was held, removed since: no longer acted in.
        raise rejected("Forbidden.Account", f"The token's account {shown(account)} is no longer in "
                       "REINIT_EVENT_ACCOUNTS; nothing was done.")
    where.region, where.account = region, account
    if call.creds is None:
        raise failed("Config.Invalid", "No credentials: neither context.credentials nor the ALIBABA_CLOUD_* variables.")
    ecs = call.app.clients.ecs_for(call.config, acting_credentials(call, where), region)
    once = Once(call.store, f"approval:{decision_id}", call.hold(), call.invocation_id or "") if call.store else None
    return call.work_context(ecs, once=once)
