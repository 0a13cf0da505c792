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

from reinit.ecs import PAGE, EcsCallError
from reinit.errors import CATALOGUE, FAILED, REJECTED, ReinitError, rejected
from reinit.flow import Context, InstanceGroup, Result, at_most_once, carry_out
from reinit.request import Request

WORKERS = 8
PROGRESS_EVERY = 5.0  # seconds between progress lines


class Pacer:
    """One API's pace: calls spaced 1/rate apart. On Throttling the rate drops by a third,
    and the ceiling it climbs back to (2% of it a success) becomes 90% of the rate that was
    throttled, so the pace settles just under the real quota instead of probing it again.
    Calls already in flight when the rate was cut do not cut it again.

    ECS throttles per API, per region, per minute; each API gets its own Pacer.
    """

    def __init__(self, clock, sleep, rate: float, floor: float = 0.5):
        self.clock, self.sleep = clock, sleep
        self.rate, self.floor, self.ceiling = rate, min(floor, rate), rate
        self._next = clock()
        self._lock = threading.Lock()
        self._generation = 0  # bumped at every cut
        self.throttles = 0

    def acquire(self) -> int:
        """Wait for this call's turn; return the generation it was sent in."""
        with self._lock:
            now = self.clock()
            at = max(now, self._next)
            self._next = at + 1.0 / self.rate
            generation = self._generation
        if at > now:
            self.sleep(at - now)
        return generation

    def throttled(self, generation: int) -> None:
        with self._lock:
            self.throttles += 1
            if generation != self._generation:
                return  # sent before the last cut: that cut already answered it
            self._generation += 1
            self.ceiling = max(self.floor, min(self.ceiling, self.rate * 0.9))
            self.rate = max(self.floor, self.rate * 2 / 3)

    def succeeded(self) -> None:
        with self._lock:
            self.rate = min(self.ceiling, self.rate + self.ceiling * 0.02)


class PacedEcs:
    """EcsApi with every call paced by its API's Pacer."""

    def __init__(self, ecs, clock, sleep, rate: float):
        self._ecs = ecs
        self._make = lambda: Pacer(clock, sleep, rate)
        self.pacers: dict[str, Pacer] = {}
        self._lock = threading.Lock()
        self.region = ecs.region

    def _pacer(self, action: str) -> Pacer:
        with self._lock:
            if action not in self.pacers:
                self.pacers[action] = self._make()
            return self.pacers[action]

    def call(self, action: str, query: dict) -> dict:
        pacer = self._pacer(action)
        generation = pacer.acquire()
        try:
            result = self._ecs.call(action, query)
        except EcsCallError as err:
            if err.kind == "throttled":
                pacer.throttled(generation)
            raise
        pacer.succeeded()
        return result

    # The typed calls of EcsApi, routed through `call` above.
    def __getattr__(self, name):
        method = getattr(type(self._ecs), name)
        return lambda *a, **kw: method(self, *a, **kw)


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


def run_batch(ctx: Context, req: Request, rate: float, on_result: Callable[[Result], None] | None = None,
              split: Callable[[list[str]], dict | None] | None = None) -> tuple[list[Result], Result | None, dict]:
    """Run a batch. Returns the per-disk results, a whole-batch refusal (or None), and
    figures for the summary (throttles seen; for a split batch, its chunks).

    `split(ids)`, where given, hands a selection too large for one invocation to
    asynchronous invocations and returns their figures (None: small enough, run it here).
    """
    paced = PacedEcs(ctx.ecs, ctx.clock, ctx.sleep, rate)
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
                             throttles=sum(p.throttles for p in paced.pacers.values()))
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
    figures = {"Throttles": sum(p.throttles for p in paced.pacers.values())}
    if req.batch_id is not None:
        figures.update(BatchId=req.batch_id, Chunk=req.chunk, Chunks=req.chunks)
    return results, None, figures
