"""The HTTP door (section 11, "HTTP order"): method (405), decoded size (413), signature
(401, a replay too), then the role's own fields; and the secrets a signature or an
approval token is checked against (the webhook's, from the environment or KMS, and the
approvers')."""

from __future__ import annotations

from reinit import approval, events
from reinit.call import Call, Where
from reinit.delivery import http_answer, publish, publisher
from reinit.errors import FAILED, REJECTED, ReinitError, failed
from reinit.idempotency import StoreUnavailable
from reinit.report import http_status, notification
from reinit.result import Result
from reinit.secrets import SecretError
from reinit.webhook import MAX_BODY_BYTES, WINDOW_SECONDS


def through_door(call: Call, where: Where) -> tuple[dict | None, str]:
    """(the HTTP answer of a refusal, or None to go on; who signed: WEBHOOK or APPROVER)."""
    refusal, role = door(call)
    if refusal is not None:  # logged; published only once the signature verified (anyone could fill the topic)
        call.log.warning("http.refused", code=refusal.code, reason=refusal.reason)
        body = call.scrubbed(notification(refusal, call.meta(where)))
        if refusal.code == "ServiceUnavailable":  # the signature verified: a real request, not lost unsaid
            publish(call, publisher(call), body, refusal.outcome)
        return http_answer(http_status(refusal), body), role
    events.http_fields(call.inv)
    refusal = approval.role_refusal(role, call.inv.fields)
    if refusal is not None:
        call.log.warning("http.refused", code=refusal.code, reason=refusal.reason)
        return http_answer(http_status(refusal), call.scrubbed(notification(refusal, call.meta(where)))), role
    return None, role


def door(call: Call) -> tuple[Result | None, str]:
    """Method (405), decoded size (413), then signature (401): section 11, "HTTP order".
    A signature is accepted once: a replay inside the window is 401 too."""
    http = call.inv.http
    assert http is not None, "events._http gives every HTTP invocation its request"
    if http.method != "POST":
        return Result(REJECTED, "MethodNotAllowed", "Only POST starts a reinit.", status=405), approval.WEBHOOK
    if http.body is not None and len(http.body) > MAX_BODY_BYTES:
        return Result(REJECTED, "PayloadTooLarge", "The body is larger than 64 KiB.", status=413), approval.WEBHOOK
    try:
        signature, role = verify_signature(call, http)
    except ReinitError as err:
        return Result.from_error(err), approval.WEBHOOK
    if signature is None:
        return None, role  # REINIT_WEBHOOK_AUTH=fc: the trigger's own authType guards it
    ttl = 2 * WINDOW_SECONDS + 60
    try:
        fresh = (call.store.first_use(signature, ttl) if call.store
                 else call.app.replays.first_use(signature, call.app.wall(), ttl))
    except StoreUnavailable as err:
        call.log.error("idempotency.unavailable", error=str(err))
        return Result(FAILED, "ServiceUnavailable", "The replay store is unreachable; try again.", True,
                      status=503), role
    if not fresh:
        return Result(REJECTED, "Unauthorized.Signature", "The request signature was not accepted.", status=401,
                      reason="the signature was already used (a replay)"), role
    return None, role


def verify_signature(call: Call, http) -> tuple[str | None, str]:
    """(the signature, who signed), checked against the webhook secret (REINIT_WEBHOOK_SECRET,
    or the ACSCurrent and ACSPrevious versions of REINIT_WEBHOOK_SECRET_NAME) and the
    approvers' secret (section 13.3). Where none matches and the webhook secret is read
    from KMS, it is read again once (the caller may sign with a newer version)."""
    def check(webhooks):
        return approval.authenticate(call.config, webhooks, lambda: approver_secrets(call), http.headers,
                                     http.body, call.app.wall())
    name = call.config.webhook_secret_name
    if not name or call.config.webhook_auth != "hmac":
        return check(webhook_secrets(call))
    versions = webhook_secrets(call)
    try:
        return check(versions)
    except ReinitError as err:
        if err.reason != "the signature does not match":
            raise
        newer = webhook_versions(call, lambda: call.secrets.refresh(name))
        if not newer or newer == versions:
            raise err from None
        return check(newer)


def webhook_secrets(call: Call) -> tuple:
    """Every version of the webhook secret that a signature may be made with now."""
    name = call.config.webhook_secret_name
    if not name:
        return (call.config.webhook_secret,) if call.config.webhook_secret else ()
    return webhook_versions(call, lambda: call.secrets.get(name))


def webhook_versions(call: Call, read) -> tuple:
    """The versions of the webhook secret `read` returns (added to the scrubber), or a
    refusal that names no value: 503 where KMS may answer later, else Config.Invalid."""
    try:
        versions = read()
    except SecretError as err:
        call.log.error("secret.unreadable", secret=err.name, code=err.code, request_id=err.request_id)
        if err.retryable:
            raise failed("ServiceUnavailable", f"The webhook secret could not be read from KMS ({err.code}); "
                         "try again.", retryable=True) from None
        raise failed("Config.Invalid", f"The webhook secret named by REINIT_WEBHOOK_SECRET_NAME could not be "
                     f"read from KMS ({err.code}).") from None
    for value in versions or ():
        call.scrubber.add(value)
    return tuple(v for v in versions or () if v)


def approver_secrets(call: Call) -> tuple[str, ...]:
    try:
        secrets = approval.approver_secrets(call.config, call.app.get_secret or call.secrets.get)
    except SecretError as err:
        call.log.error("approval.secret.unavailable", error=err.code)
        if err.retryable:  # KMS may answer later: retryable, as for the webhook secret (found in review)
            raise failed("ServiceUnavailable", f"The approvers' secret could not be read from KMS ({err.code}); "
                         "try again.", retryable=True) from None
        return ()
    except Exception as err:  # unreadable for good: no approval is accepted, nothing else changes
        call.log.error("approval.secret.unavailable", error=type(err).__name__)
        return ()
    for secret in secrets:
        call.scrubber.add(secret)
    return secrets


def token_keys(call: Call) -> list[bytes]:
    """The keys an approval token is signed with (approval.token_keys)."""
    return approval.token_keys(approver_secrets(call), webhook_secrets(call))
