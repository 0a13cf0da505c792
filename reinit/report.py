"""Results -> the notification (section 5), the batch summary, and the HTTP status (section 9)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from reinit.errors import DRY_RUN, FAILED, REJECTED, SUCCEEDED
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
        **result.extra,
    }


def batch_outcome(results: list[Result]) -> str:
    outcomes = {r.outcome for r in results}
    if outcomes <= {SUCCEEDED, DRY_RUN}:
        return SUCCEEDED
    return FAILED if FAILED in outcomes else REJECTED


def summary(results: list[Result], meta: Meta, duration: float, error: Result | None = None) -> dict:
    """The batch summary: counts by Outcome and Code, and every per-disk result."""
    counts = Counter(r.outcome for r in results)
    codes = Counter(r.code for r in results if r.code)
    if error is not None:  # refused whole (too many disks, a selection that failed)
        outcome, code, message, retryable = error.outcome, error.code, error.message, error.retryable
    else:
        outcome = batch_outcome(results)
        code = codes.most_common(1)[0][0] if codes else None
        message = (f"{counts.get(SUCCEEDED, 0)} of {len(results)} disks succeeded"
                   + (f", {counts.get(DRY_RUN, 0)} dry runs" if counts.get(DRY_RUN) else "")
                   + (f", {counts.get(FAILED, 0)} failed" if counts.get(FAILED) else "")
                   + (f", {counts.get(REJECTED, 0)} rejected" if counts.get(REJECTED) else "") + ".")
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
        "Counts": {k: counts.get(k, 0) for k in (SUCCEEDED, FAILED, REJECTED, DRY_RUN)},
        "Codes": dict(codes),
        "DurationSeconds": round(duration, 3),
        "Results": [notification(r, meta) for r in results],
    }


def summary_message(full: dict) -> dict:
    """The summary as published: counts, then the items that did not succeed, until the
    message would pass MNS's 64 KiB (the returned summary stays complete)."""
    message = {**full, "Results": []}
    budget = MAX_MESSAGE_BYTES - 1024 - len(encode(message).encode())
    kept = 0
    for item in full["Results"]:
        if item["Outcome"] in (SUCCEEDED, DRY_RUN):
            continue
        size = len(encode(item).encode()) + 1
        if size > budget:
            break
        message["Results"].append(item)
        budget -= size
        kept += 1
    message["ResultsOmitted"] = len(full["Results"]) - kept
    return message


def http_status(result: Result) -> int:
    return 200 if result.outcome in (SUCCEEDED, DRY_RUN) else result.status


def batch_http_status(summary_body: dict, error: Result | None) -> int:
    if error is not None:
        return error.status
    return 200 if summary_body["Outcome"] == SUCCEEDED else 207
