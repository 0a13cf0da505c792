"""delivery.failing, the one rule for when an invocation ends with an error (section 11,
"Which invocations fail"), as a table. The end-to-end tests (test_handler, test_fleet,
test_handoffs, test_store_failures) show the same rule through the real handler."""

from __future__ import annotations

import pytest

from reinit.delivery import NOTIFICATION_FAILED, RETRY, failing
from reinit.result import Result


def r(outcome="Succeeded", code=None, retryable=False, may_have_run=False, in_doubt=False) -> Result:
    return Result(outcome, code, "", retryable, may_have_run=may_have_run, in_doubt=in_doubt)


WIPED = r(may_have_run=True)
FAILED_BEFORE = r("Failed", "ServiceUnavailable", retryable=True)
FAILED_AFTER = r("Failed", "WaitTimeout", may_have_run=True)
IN_DOUBT = r("Failed", "WaitTimeout", retryable=True, may_have_run=True, in_doubt=True)
REFUSED = r("Rejected", "Forbidden.TagRequired")

ONE = [  # (result, delivered, has store) -> end
    (WIPED, True, False, None),
    (WIPED, False, False, None),  # the topic is down, but a retry without a store would wipe again
    (WIPED, False, True, NOTIFICATION_FAILED),  # the store answers the retry from its record
    (REFUSED, False, False, NOTIFICATION_FAILED),  # nothing was written: a retry is harmless
    (REFUSED, True, False, None),
    (FAILED_BEFORE, True, False, RETRY),  # Failed and Retryable: the platform retries
    (FAILED_BEFORE, False, False, NOTIFICATION_FAILED),
    (FAILED_AFTER, True, True, None),  # ReInitDisk ran: not retried
    (FAILED_AFTER, False, False, None),
    (IN_DOUBT, True, False, RETRY),
]


@pytest.mark.parametrize(("result", "delivered", "has_store", "end"), ONE)
def test_one_disk(result, delivered, has_store, end):
    assert failing([result], http=False, delivered=delivered, has_store=has_store, batch=False) == end


BATCH = [  # (results, delivered, has store) -> end
    ([WIPED, REFUSED], True, True, None),
    ([WIPED, REFUSED], False, False, None),  # a disk was wiped and has no store to answer a retry
    ([WIPED, REFUSED], False, True, NOTIFICATION_FAILED),
    ([REFUSED, REFUSED], False, False, NOTIFICATION_FAILED),
    ([WIPED, FAILED_BEFORE], True, True, RETRY),  # a disk not carried out for a passing reason
    ([WIPED, FAILED_BEFORE], True, False, None),  # without a store, nobody answers the wiped disk
    ([WIPED, IN_DOUBT], True, True, RETRY),  # in doubt: the retry looks first
    ([WIPED, FAILED_AFTER], True, True, None),  # not retryable: ReInitDisk ran
    ([WIPED, r("Failed", "Conflict.InProgress", retryable=True, may_have_run=True)], True, True, None),
    ([r("Failed", "InvalidDiskId.NotFound", retryable=True)], True, True, None),  # not a passing code
]


@pytest.mark.parametrize(("results", "delivered", "has_store", "end"), BATCH)
def test_a_batch(results, delivered, has_store, end):
    assert failing(results, http=False, delivered=delivered, has_store=has_store, batch=True) == end


@pytest.mark.parametrize("batch", [False, True])
def test_an_http_caller_always_gets_the_answer(batch):
    assert failing([FAILED_BEFORE], http=True, delivered=False, has_store=True, batch=batch) is None
