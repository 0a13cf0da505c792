"""Results -> the notification (section 5), the batch summary, and the HTTP status (section 9)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from reinit.errors import AWAITING_APPROVAL, DRY_RUN, FAILED, PARTIAL, REJECTED, SUCCEEDED
from reinit.notify import MAX_MESSAGE_BYTES, encode
from reinit.result import Result

RESULT_SCHEMA = "reinit.result.v1"
BATCH_SCHEMA = "reinit.batch.v1"


@dataclass(frozen=True)
class Meta:
    """What every message of one invocation shares."""

    trigger: str
    event_id: str | None
    invocation_id: str | None
    region: str | None


def timestamp(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def notification(result: Result, meta: Meta) -> dict:
    return {
        "Schema": RESULT_SCHEMA,
        "Outcome": result.outcome,
        "Code": result.code,
        "Message": result.message,
        "Retryable": result.retryable,
        "DiskId": result.disk_id,
        "InstanceId": result.instance_id,
        "Trigger": meta.trigger,
        "EventId": meta.event_id,
        "InvocationId": meta.invocation_id,
        "EcsRequestId": result.ecs_request_id,
        "SnapshotId": result.snapshot_id,
        "Region": meta.region,
        "Timestamp": timestamp(),
        **({"SnapshotPending": True} if result.snapshot_pending else {}),
        **result.extra,
    }


def batch_outcome(results: list[Result]) -> str:
    """Succeeded; Partial where some disks were written and others not; Rejected and Failed
    only where no disk was written (INTERFACE 13.4)."""
    outcomes = {r.outcome for r in results}
    if outcomes <= {SUCCEEDED, DRY_RUN}:
        return SUCCEEDED
    if outcomes == {AWAITING_APPROVAL}:  # section 13.3: every disk held for a person's decision
        return AWAITING_APPROVAL
    if any(r.outcome == SUCCEEDED or r.may_have_run for r in results):
        # Section 13.4: some disks were written (or may have been: a ReInitDisk accepted whose
        # wait ran out), others not. Failed and Rejected promise that none was (found in review).
        return PARTIAL
    return FAILED if FAILED in outcomes else REJECTED


def _disks(n: int) -> str:
    return f"{n} disk" if n == 1 else f"{n} disks"


def batch_message(counts: Counter, total: int) -> str:
    """The summary's sentence: what happened to how many disks, in the words of the outcomes."""
    succeeded, dry_runs = counts.get(SUCCEEDED, 0), counts.get(DRY_RUN, 0)
    if total == 0:
        return "No disk matched the selection; nothing was done."
    if dry_runs == total:
        return f"Dry run: {'the' if total == 1 else 'all'} {_disks(total)} passed every check; nothing was written."
    if succeeded == total:
        return f"{'The' if total == 1 else 'All'} {_disks(total)} succeeded."
    parts = [f"{succeeded} succeeded" if succeeded else "",
             f"{dry_runs} passed every check in a dry run (nothing written)" if dry_runs else "",
             f"{counts.get(FAILED, 0)} failed" if counts.get(FAILED) else "",
             f"{counts.get(REJECTED, 0)} rejected" if counts.get(REJECTED) else "",
             f"{counts.get(AWAITING_APPROVAL, 0)} await approval" if counts.get(AWAITING_APPROVAL) else ""]
    return f"Of {_disks(total)}: " + ", ".join(filter(None, parts)) + "."


def summary(results: list[Result], meta: Meta, duration: float, error: Result | None = None) -> dict:
    """The batch summary: counts by Outcome and Code, and every per-disk result."""
    counts = Counter(r.outcome for r in results)
    codes = Counter(r.code for r in results if r.code)
    if error is not None:  # refused whole (too many disks, a selection that failed)
        outcome, code, message, retryable = error.outcome, error.code, error.message, error.retryable
    else:
        outcome = batch_outcome(results)
        code = codes.most_common(1)[0][0] if codes else None
        message = batch_message(counts, len(results))
        retryable = any(r.retryable for r in results if r.outcome == FAILED)
    return {
        "Schema": BATCH_SCHEMA,
        "Outcome": outcome,
        "Code": code,
        "Message": message,
        "Retryable": retryable,
        "DiskId": None,
        "InstanceId": None,
        "Trigger": meta.trigger,
        "EventId": meta.event_id,
        "InvocationId": meta.invocation_id,
        "EcsRequestId": None,
        "SnapshotId": None,
        "Region": meta.region,
        "Timestamp": timestamp(),
        "Total": len(results),
        # AwaitingApproval counted only where a disk awaits it (the four keys stay as they were).
        "Counts": {k: counts.get(k, 0) for k in (SUCCEEDED, FAILED, REJECTED, DRY_RUN, AWAITING_APPROVAL)
                   if k != AWAITING_APPROVAL or counts.get(k)},
        "Codes": dict(codes),
        "DurationSeconds": round(duration, 3),
        "Results": [notification(r, meta) for r in results],
    }


def summary_message(full: dict) -> dict:
    """The summary as published: counts, then the items that did not succeed, until the
    message would pass MNS's 64 KiB (the returned summary stays complete).

    What is left out is counted in two parts, because they mean different things:
    `ResultsNotListed` the successes and dry runs, left out by design (each has its own
    message, and the counts say how many); `ResultsCutOff` the results that did not
    succeed but did not fit (each still has its own message). `ResultsOmitted` is their
    sum, kept for subscribers that read it."""
    message = {**full, "Results": []}
    budget = MAX_MESSAGE_BYTES - 1024 - len(encode(message).encode())
    not_listed = cut_off = 0
    for item in full["Results"]:
        if item["Outcome"] in (SUCCEEDED, DRY_RUN):
            not_listed += 1
            continue
        size = len(encode(item).encode()) + 1
        if cut_off or size > budget:
            cut_off += 1
            continue
        message["Results"].append(item)
        budget -= size
    message["ResultsOmitted"] = not_listed + cut_off
    message["ResultsNotListed"] = not_listed
    message["ResultsCutOff"] = cut_off
    if cut_off:
        message["Message"] = (f"{full['Message']} {cut_off} of the results that did not succeed did not fit in this "
                              "message; each was published on its own.")
    return message


def http_status(result: Result) -> int:
    return 200 if result.outcome in (SUCCEEDED, DRY_RUN) else result.status


def batch_http_status(summary_body: dict, error: Result | None) -> int:
    if error is not None:
        return error.status
    if summary_body["Outcome"] == AWAITING_APPROVAL:
        return 202
    return 200 if summary_body["Outcome"] == SUCCEEDED else 207
