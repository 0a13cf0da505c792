"""Carry out or hand off a batch (DiskIds or Tags): split a selection too large for one
invocation into chunks for asynchronous invocations of this function, or carry out this
chunk (fleet.run_batch) and hand on what its time does not cover; each disk's outcome is
published as it comes, and delivery ends it."""

from __future__ import annotations

from reinit.call import Call, Where
from reinit.chunks import MAX_CHUNK_DISKS, hander, splitter
from reinit.context import Context
from reinit.continuation import function_name
from reinit.delivery import deliver_batch, publish, publisher
from reinit.fleet import run_batch
from reinit.report import notification
from reinit.request import Request
from reinit.result import Result


def carry_out_batch(call: Call, where: Where, ctx: Context, request: Request) -> dict:
    """The batch carried out (or split, or handed on), published and answered."""
    meta = call.meta(where)
    topic = publisher(call)
    unpublished: list[Result] = []

    def on_result(result: Result) -> None:
        if not publish(call, topic, notification(result, meta), result.outcome):
            unpublished.append(result)

    split = split_for(call, where, ctx, request)
    paces = call.app.paces(call.config, where.region, 1.0 / (request.chunks or 1))
    if request.pace is not None:
        paces.seed("ReInitDisk", request.pace)
    name = function_name(call.config, call.context)
    assert call.creds is not None, "claim() refused a call with no credentials"
    hand_on = (hander(ctx, request, call.creds, name, paces)
               if request.batch_id is not None and call.config.fc_endpoint and name else None)
    results, refusal, figures = run_batch(ctx, request, paces, on_result, split, hand_on)
    return deliver_batch(call, meta, topic, results, refusal, figures, unpublished)


def split_for(call: Call, where: Where, ctx: Context, request: Request):
    """Where Function Compute can be reached, a selection too large for one invocation
    is split into chunks and handed to asynchronous invocations of this function."""
    config = call.config
    name = function_name(config, call.context)
    if not config.fc_endpoint or not name or request.batch_id is not None:
        return None
    usable = max(0.0, ctx.deadline - call.app.clock() - 30.0)
    # The rate this instance learned ReInitDisk's quota to be, where it has learned one.
    learned = call.app.paces(config, where.region).get("ReInitDisk").known
    rate = learned or config.fleet_rate
    limit = config.fleet_chunk or max(1, min(MAX_CHUNK_DISKS, int(rate * usable * 0.8)))
    # The request's evidence key holds its nonce: its chunks' task ids are its own.
    assert ctx.evidence_key is not None, "claim() gave the request's Context its evidence key"
    assert call.creds is not None, "claim() refused a call with no credentials"
    return splitter(ctx, request, ctx.evidence_key, call.creds, name, limit, learned)
