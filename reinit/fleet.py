"""Batches: selection by DiskIds or Tags, bounded concurrency, per-API pacing, MaxErrors.

Look-ups are batched (at most 100 per DescribeDisks / DescribeInstances call), so a batch
of N disks costs N ReInitDisk plus ceil(N/100) of each Describe. Disks of one instance run
one after another, the system disk last; instances run side by side.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from reinit.ecs import PAGE
from reinit.errors import CATALOGUE, FAILED, REJECTED, ReinitError, rejected
from reinit.flow import InstanceGroup, at_most_once, carry_out
from reinit.pace import PacedEcs, Paces
from reinit.request import Request
from reinit.result import Context, Result

WORKERS = 8
PROGRESS_EVERY = 5.0  # seconds between progress lines


def select(ctx: Context, req: Request) -> tuple[list[dict], list[str]]:
    """The disks a batch names, and the named disk IDs that do not exist."""
    if req.disk_ids is not None:
        found: dict[str, dict] = {}
        ids = list(req.disk_ids)
        for i in range(0, len(ids), PAGE):
            chunk = ids[i:i + PAGE]
            disks, _ = ctx.read(lambda chunk=chunk: ctx.ecs.describe_disks(disk_ids=chunk))
            found.update((d["DiskId"], d) for d in disks)
        return [found[d] for d in ids if d in found], [d for d in ids if d not in found]
    disks, token = [], None
    while True:
        page, token = ctx.read(lambda token=token: ctx.ecs.describe_disks(
            tags=req.tags, disk_type=None if req.disk_type == "all" else req.disk_type, next_token=token))
        disks.extend(page)
        if not token:
            return disks, []


def instances_of(ctx: Context, disks: list[dict]) -> dict[str, dict]:
    ids = sorted({d["InstanceId"] for d in disks if d.get("InstanceId")})
    found: dict[str, dict] = {}
    for i in range(0, len(ids), PAGE):
        chunk = ids[i:i + PAGE]
        found.update((x["InstanceId"], x) for x in ctx.read(lambda chunk=chunk: ctx.ecs.describe_instances(chunk)))
    return found


def run_batch(ctx: Context, req: Request, paces: Paces, on_result: Callable[[Result], None] | None = None,
              split: Callable[[list[str]], dict | None] | None = None) -> tuple[list[Result], Result | None, dict]:
    """Run a batch. Returns the per-disk results, a whole-batch refusal (or None), and
    figures for the summary (throttles seen; for a split batch, its chunks).

    `split(ids)`, where given, hands a selection too large for one invocation to
    asynchronous invocations and returns their figures (None: small enough, run it here).
    """
    paced = PacedEcs(ctx.ecs, paces)
    ctx = replace(ctx, ecs=paced)
    try:
        disks, missing = select(ctx, req)
        total = len(disks) + len(missing)
        if total > ctx.config.max_disks:
            raise rejected("Forbidden.TooManyDisks",
                           f"The batch selects {total} disks; REINIT_MAX_DISKS allows {ctx.config.max_disks}. Nothing was done.")
        if split is not None and req.batch_id is None:
            handed_off = split([d["DiskId"] for d in disks] + missing)
            if handed_off is not None:
                return [], None, handed_off
        instances = instances_of(ctx, disks)
    except ReinitError as err:
        return [], Result.from_error(err), {}

    results: list[Result] = [
        Result(REJECTED, "InvalidDiskId.NotFound", f"Disk {d} does not exist in {ctx.config.region}.",
               disk_id=d, status=404) for d in missing]
    for r in results:
        on_result and on_result(r)
    groups: dict[str, list[dict]] = {}
    for disk in disks:
        groups.setdefault(disk.get("InstanceId") or disk["DiskId"], []).append(disk)
    for group in groups.values():
        group.sort(key=lambda d: (d.get("Type") == "system", d["DiskId"]))

    state = {"failures": 0, "done": len(results), "last_progress": ctx.clock()}
    lock = threading.Lock()
    started = ctx.clock()

    def record(result: Result) -> None:
        with lock:
            results.append(result)
            state["done"] += 1
            if result.outcome in (FAILED, REJECTED) and result.code != "Aborted.MaxErrors":
                state["failures"] += 1
            if ctx.clock() - state["last_progress"] >= PROGRESS_EVERY:
                state["last_progress"] = ctx.clock()
                elapsed = max(ctx.clock() - started, 1e-9)
                ctx.log.info("batch.progress", done=state["done"], total=total,
                             rate=round(state["done"] / elapsed, 2),
                             throttles=paced.throttles)
        if on_result:
            on_result(result)

    def aborted() -> bool:
        with lock:
            return req.max_errors is not None and state["failures"] >= req.max_errors

    def not_attempted(disk: dict, outcome: str, code: str, why: str) -> Result:
        return Result(outcome, code, f"Not attempted: {why}", disk_id=disk["DiskId"],
                      instance_id=disk.get("InstanceId") or None, status=CATALOGUE[code][0])

    def run_group(group: list[dict]) -> None:
        instance = dict(instances[group[0]["InstanceId"]]) if group[0].get("InstanceId") in instances else None
        shared = InstanceGroup()
        for i, disk in enumerate(group):
            if aborted():
                record(not_attempted(disk, REJECTED, "Aborted.MaxErrors", f"{req.max_errors} failures came first (MaxErrors)."))
                continue
            if ctx.clock() >= ctx.deadline:  # report it rather than be killed mid-batch
                record(not_attempted(disk, FAILED, "WaitTimeout", "the function ran out of time first."))
                continue
            try:
                last = i == len(group) - 1
                record(at_most_once(ctx, req, disk,
                                    lambda disk=disk, last=last: carry_out(ctx, req, disk, instance, last, shared)))
            except Exception as err:  # one disk's bug must not lose the others
                ctx.log.error("batch.disk.crashed", disk=disk["DiskId"], error=type(err).__name__)
                record(Result(FAILED, "InternalError", "An internal error stopped this disk.",
                              disk_id=disk["DiskId"], instance_id=disk.get("InstanceId") or None, status=500))

    with ThreadPoolExecutor(max_workers=max(1, min(WORKERS, len(groups)))) as pool:
        list(pool.map(run_group, groups.values()))
    order = {d: i for i, d in enumerate(req.disk_ids or [d["DiskId"] for d in disks])}
    results.sort(key=lambda r: order.get(r.disk_id, len(order)))
    figures = {"Throttles": paced.throttles}
    if req.batch_id is not None:
        figures.update(BatchId=req.batch_id, Chunk=req.chunk, Chunks=req.chunks)
    return results, None, figures
