"""Delivery, the end of every invocation: publish the outcome (retried), fall back to the
log where the topic stays down, answer; and `failing`, the one rule for when the
invocation ends with an error so that the platform retries it (section 11, "Which
invocations fail")."""

from __future__ import annotations

import json
from collections.abc import Sequence

from reinit.call import Call, Where
from reinit.errors import FAILED
from reinit.events import HTTP
from reinit.notify import PublishError
from reinit.report import Meta, batch_http_status, http_status, notification, summary, summary_message
from reinit.result import Result
from reinit.retry import Retrier

PUBLISH_ATTEMPTS = 4
PUBLISH_ATTEMPTS_TO_DEADLINE = 1000  # bounded by the deadline long before this
# Batch outcomes of a disk not carried out for a passing reason: a retry of the invocation does it.
PASSING = ("Conflict.InProgress", "WaitTimeout", "ServiceUnavailable")
NOTIFICATION_FAILED, RETRY = "NotificationFailed", "Retry"


class InvocationFailed(Exception):
    """Raised after notifying, so that the platform retries (section 11, "Which invocations fail")."""


def http_answer(status: int, body: dict) -> dict:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "isBase64Encoded": False, "body": json.dumps(body)}


def failing(results: Sequence[Result], *, http: bool, delivered: bool, has_store: bool, batch: bool) -> str | None:
    """How an invocation ends: None (it answers), NOTIFICATION_FAILED or RETRY (it ends
    with an error). An HTTP caller always gets the answer. Where the topic stayed down, the
    platform's retry and, in the end, its failure destination get the outcome, but only
    where a retry cannot wipe again: a store answers it from the record, nothing was
    written, or the outcome says a repeat is safe (Retryable). Otherwise one disk ends in
    error when it Failed retryably; a batch, with a store, when a disk was not carried out
    for a passing reason (a holder that died, past the deadline, or in doubt: the retry
    looks first, docs/handoffs.md), since nobody else repeats an asynchronous batch."""
    if http:
        return None
    if not delivered and (has_store or not any(r.may_have_run and not r.retryable for r in results)):
        return NOTIFICATION_FAILED
    if batch:
        passing = any(r.retryable and r.code in PASSING and (r.in_doubt or not r.may_have_run) for r in results)
        return RETRY if has_store and passing else None
    return RETRY if any(r.outcome == FAILED and r.retryable for r in results) else None


def _ending(end: str | None, body: dict, answer: dict) -> dict:
    if end == NOTIFICATION_FAILED:
        raise InvocationFailed(json.dumps({**body, "NotificationFailed": True}))
    if end == RETRY:
        raise InvocationFailed(json.dumps(body))
    return answer


def publisher(call: Call):
    """The MNS topic's publisher, or None where no topic (or no client) is to be had."""
    config = call.config
    if not config.topic or not config.mns_endpoint or call.creds is None:
        return None
    try:
        return call.app.clients.get(config, call.creds)[1]
    except Exception:
        return None


def publish(call: Call, publisher, body: dict, tag: str, until_deadline: bool = False) -> bool:
    """Publish through the retry engine; if the topic stays down, the whole outcome goes
    to the log. False only where a topic is configured and it could not be published.
    `until_deadline` (the outcome of a wipe that ran): retried until the invocation's
    end less its margin, not a fixed number of times (INTERFACE.md section 13.5)."""
    body = call.scrubbed(body)
    if publisher is None:
        if not call.config.topic:
            call.warn_once("notify.disabled", "REINIT_TOPIC is not set: outcomes are only logged")
            return True
        call.log.error("notify.unavailable", notification=body)
        return False
    app = call.app
    retrier = Retrier(app.clock, app.sleep, app.random, call.deadline.hard_end,
                      max_attempts=PUBLISH_ATTEMPTS_TO_DEADLINE if until_deadline else PUBLISH_ATTEMPTS,
                      errors=(PublishError,), base=0.2, cap=2.0)
    try:
        message_id = retrier.call(lambda: publisher.publish(body, tag), lambda err: err.retryable)
    except PublishError as err:
        call.log.error("notify.failed", topic=call.config.topic, code=err.code, notification=body)
        return False
    call.log.info("notify.published", topic=call.config.topic, message_id=message_id, tag=tag)
    return True


def deliver(call: Call, where: Where, result: Result) -> dict:
    """One outcome: published, logged, answered (or ended with an error, see failing)."""
    if where.account is not None:  # acted on in a member account (section 13.1)
        result.extra.setdefault("Account", where.account)
    body = call.scrubbed(notification(result, call.meta(where)))
    published = publish(call, publisher(call), body, result.outcome, until_deadline=result.may_have_run)
    call.log.info("result", disk=result.disk_id, outcome=result.outcome, code=result.code,
                  ecs_request_id=result.ecs_request_id, duration=round(call.app.clock() - call.start, 3))
    if call.inv.trigger == HTTP:
        return http_answer(http_status(result), body)
    end = failing([result], http=False, delivered=published, has_store=call.store is not None, batch=False)
    return _ending(end, body, body)


def deliver_batch(call: Call, meta: Meta, publisher, results: list[Result], refusal, figures: dict,
                  unpublished: list[Result]) -> dict:
    """A batch's end: each disk's outcome was published as it came (`unpublished` could not
    be); a wipe that ran is published even through an outage of the topic (again, until
    the deadline), then the summary, logged and answered."""
    unpublished = [r for r in unpublished if not (
        r.may_have_run and publish(call, publisher, notification(r, meta), r.outcome, until_deadline=True))]
    full = summary(results, meta, call.app.clock() - call.start, refusal)
    full.update(figures)
    summary_published = publish(call, publisher, summary_message(full), "Summary",
                                until_deadline=any(r.may_have_run for r in results))
    call.log.info("batch.result", outcome=full["Outcome"], code=full["Code"], total=full["Total"],
                  counts=full["Counts"], duration=full["DurationSeconds"])
    full = call.scrubbed(full)
    if call.inv.trigger == HTTP:
        return http_answer(batch_http_status(full, refusal), full)
    end = failing(results, http=False, delivered=not unpublished and summary_published,
                  has_store=call.store is not None, batch=True)
    return _ending(end, summary_message(full), full)
