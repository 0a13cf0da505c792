"""Batches: selection by DiskIds or Tags, bounded concurrency, per-API pacing, MaxErrors.

Look-ups are batched (at most 100 per DescribeDisks / DescribeInstances call), and so is the
look right before the writes (looks.py): at the quota's speed a batch of N disks costs N
ReInitDisk plus about ceil(N/100) of each Describe and ceil(N/100) looks. Disks of one
instance run one after another, the system disk last; instances run side by side.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from reinit.context import Context
from reinit.ecs import PAGE
from reinit.errors import CATALOGUE, FAILED, REJECTED, ReinitError, rejected
from reinit.flow import carry_out, resolve_in_doubt
from reinit.idempotency import at_most_once
from reinit.looks import Looks
from reinit.pace import PacedEcs, Paces
from reinit.request import Request
from reinit.result import Result
from reinit.stopping import InstanceGroup, settle_instance

WORKERS = 8
PROGRESS_EVERY = 5.0  # seconds between progress lines
HAND_ON_RESERVE = 30.0  # seconds kept, beyond the longest instance so far, to hand the rest on


# What a batch reads of a selected disk. The rest of DescribeDisks' answer (some 30 fields
# a disk) is dropped as each page comes; past the most one invocation takes on (the batch
# will be split, and each chunk looks its disks up again), only what splitting needs is
# kept: a parent that selects 100,000 disks stays well under 100 MB (docs/fleet.md).
SELECTED = ("DiskId", "InstanceId", "Status", "Tags", "Type")
SPLIT_ONLY = ("DiskId", "InstanceId", "Type")


def kept(disk: dict, keys=SELECTED) -> dict:
    return {k: disk[k] for k in keys if k in disk}


def select(ctx: Context, req: Request, whole: int | None = None) -> tuple[list[dict], list[str]]:
    """The disks a batch names, and the named disk IDs that do not exist. `whole`: beyond
    this many disks, keep only what splitting needs (the batch will be split)."""
    if req.disk_ids is not None:
        found: dict[str, dict] = {}
        ids = list(req.disk_ids)
        for i in range(0, len(ids), PAGE):
            chunk = ids[i:i + PAGE]
            disks, _ = ctx.read(lambda chunk=chunk: ctx.ecs.describe_disks(disk_ids=chunk))
            found.update((d["DiskId"], kept(d)) for d in disks)
        return [found[d] for d in ids if d in found], [d for d in ids if d not in found]
    disks, token, keys = [], None, SELECTED
    while True:
        page, token = ctx.read(lambda token=token: ctx.ecs.describe_disks(
            tags=req.tags, disk_type=None if req.disk_type == "all" else req.disk_type, next_token=token))
        if keys is SELECTED and whole is not None and len(disks) + len(page) > whole:
            keys = SPLIT_ONLY
            disks = [kept(d, keys) for d in disks]
        disks.extend(kept(d, keys) for d in page)
        if not token:
            return disks, []


def instances_of(ctx: Context, disks: list[dict]) -> dict[str, dict]:
    ids = sorted({d["InstanceId"] for d in disks if d.get("InstanceId")})
    found: dict[str, dict] = {}
    for i in range(0, len(ids), PAGE):
        chunk = ids[i:i + PAGE]
        found.update((x["InstanceId"], x) for x in ctx.read(lambda chunk=chunk: ctx.ecs.describe_instances(chunk)))
    return found


class Batch:
    """One batch in this invocation: select, refuse or split, then run the instances side
    by side, each instance's disks one after another; every result is recorded (and
    published) as it comes."""

    def __init__(self, ctx: Context, req: Request, paces: Paces, on_result: Callable[[Result], None] | None = None,
                 hand_on: Callable[[list[str]], dict | None] | None = None):
        self.paced = PacedEcs(ctx.ecs, paces, deadline=ctx.deadline)  # no call after the deadline
        self.hand_on = hand_on  # where given: hands disks not started in time to another invocation
        self.left: list[list[str]] = []  # groups of disk IDs not started: time ran short
        self._longest = 0.0  # seconds the slowest instance's disks took
        self._groups_started = 0  # instances whose disks this invocation has begun
        self.ctx = replace(ctx, ecs=self.paced)
        self.req = req
        self.on_result = on_result
        self.results: list[Result] = []
        self.looks = Looks(ctx.clock)  # the look right before each write, shared (looks.py)
        self.total = 0
        self.failures = 0
        self._lock = threading.Lock()
        self._started = self._last_progress = ctx.clock()

    # -- steps ------------------------------------------------------------------------
    def run(self, split: Callable[[list[str]], dict | None] | None = None) -> tuple[list[Result], Result | None, dict]:
        """Returns the per-disk results, a whole-batch refusal (or None), and figures for
        the summary (throttles seen; for a split batch, its chunks).

        `split(groups)`, where given, hands a selection too large for one invocation (its
        disk IDs grouped by instance) to asynchronous invocations and returns their figures
        (None: small enough, run it here).
        """
        if self.req.batch_id is not None and self.hand_on is not None:
            return self.run_paged()
        try:
            whole = getattr(split, "limit", None) if split is not None and self.req.batch_id is None else None
            disks, missing = select(self.ctx, self.req, whole)
            self.total = len(disks) + len(missing)
            self.refuse_if_too_many()
            if self.ctx.gate is not None:  # REINIT_APPROVAL=batch holds only batches of REINIT_APPROVAL_MIN_DISKS
                self.ctx = replace(self.ctx, gate=self.ctx.gate.for_batch(self.total, self.req))
            groups = by_instance(disks)
            if split is not None and self.req.batch_id is None:
                handed_off = split([[d["DiskId"] for d in group] for group in groups] + [[d] for d in missing])
                if handed_off is not None:
                    return [], None, handed_off
            instances = instances_of(self.ctx, disks)
        except ReinitError as err:
            return [], Result.from_error(err), {}
        self.looks.plan(d["DiskId"] for group in groups for d in group)
        self.progress(force=True)  # a first line at once: a terminal shows the bar from the start
        for disk_id in missing:
            self.record(Result(REJECTED, "InvalidDiskId.NotFound", f"Disk {disk_id} does not exist in "
                               f"{self.ctx.ecs.region}.", disk_id=disk_id, status=404))
        with ThreadPoolExecutor(max_workers=max(1, min(WORKERS, len(groups)))) as pool:
            list(pool.map(lambda group: self.run_group(group, instances), groups))
        return self.ordered(disks), None, self.handed_on(self.figures())

    def run_paged(self) -> tuple[list[Result], Result | None, dict]:
        """A chunk: its disks looked up a page (100) at a time, just before they run, so a
        chunk handed on again and again looks each disk up once, and sees it as it is when
        its turn comes. An instance's disks are contiguous in a chunk (chunks.pack); the
        last instance of a full page may go on in the next page, so it waits for it."""
        ids, done, held = list(self.req.disk_ids), 0, []
        self.total = len(ids)
        self.progress(force=True)
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            while done < len(ids) or held:
                if self._groups_started and self.out_of_time():
                    self.left.append([d["DiskId"] for d in held] + ids[done:])
                    break
                window = ids[done:done + max(1, PAGE - len(held))]
                done += len(window)
                try:
                    at = self.ctx.clock()
                    disks, missing = select(self.ctx, replace(self.req, disk_ids=tuple(window)))
                    self.looks.saw(window, disks, at)  # a look for the writes too, while it is fresh
                    groups = by_instance(held + disks)
                    held = []
                    last = next((d for d in disks if d["DiskId"] == window[-1]), None)
                    if done < len(ids) and last is not None and last.get("InstanceId"):
                        held = next(g for g in groups if g[0].get("InstanceId") == last["InstanceId"])
                        groups.remove(held)
                    instances = instances_of(self.ctx, [d for g in groups for d in g])
                except ReinitError as err:  # a page that cannot be looked up: its disks are named
                    for disk_id in window + [d["DiskId"] for d in held]:
                        self.record(Result.from_error(err, disk_id))
                    held = []
                    continue
                for disk_id in missing:
                    self.record(Result(REJECTED, "InvalidDiskId.NotFound", f"Disk {disk_id} does not exist in "
                                       f"{self.ctx.ecs.region}.", disk_id=disk_id, status=404))
                self.looks.plan(d["DiskId"] for group in groups for d in group)
                list(pool.map(lambda group, found=instances: self.run_group(group, found), groups))
        return self.ordered([]), None, self.handed_on(self.figures())

    def out_of_time(self) -> bool:
        """Time to hand the rest on: what is left would not finish before the deadline."""
        return self.hand_on is not None and (
            self.ctx.clock() >= self.ctx.deadline - HAND_ON_RESERVE - self._longest)

    def take_turn(self, group: list[dict]) -> bool:
        """Whether this instance's disks start here; if not, they are kept to hand on whole.
        Every invocation starts at least one instance's disks, even out of time: a hop that
        handed everything on would be followed by another that does the same, for ever
        (a function timeout below HAND_ON_RESERVE, or a Pace too slow for one call in it).
        That first group's calls still stop at the deadline (PacedEcs), as WaitTimeout."""
        with self._lock:
            if self._groups_started and self.out_of_time():
                self.left.append([d["DiskId"] for d in group])
                return False
            self._groups_started += 1
            return True

    def handed_on(self, figures: dict) -> dict:
        """Hands the disks not started to another invocation; where that fails, each gets
        its own WaitTimeout, as before."""
        left = [group for group in self.left if group]
        if not left:
            return figures
        ids = [d for group in left for d in group]
        handed = self.hand_on(ids) if self.hand_on is not None else None
        if handed is None:
            for disk_id in ids:
                self.record(not_attempted({"DiskId": disk_id}, FAILED, "WaitTimeout",
                                          "the function ran out of time first."))
            return figures
        self.total -= len(ids)
        return {**figures, **handed}

    def refuse_if_too_many(self) -> None:
        limit = self.ctx.config.max_disks
        if self.total > limit:
            raise rejected("Forbidden.TooManyDisks",
                           f"The batch selects {self.total} disks; REINIT_MAX_DISKS allows {limit}. Nothing was done.")

    def run_group(self, group: list[dict], instances: dict[str, dict]) -> None:
        """The disks of one instance, one after another; the last one settles the instance
        (started again unless a reinit will start it), whatever became of that disk."""
        ctx = self.ctx
        if not self.take_turn(group):  # not started: handed on whole, the instance untouched
            self.looks.done(d["DiskId"] for d in group)
            return
        began = ctx.clock()
        instance_id = group[0].get("InstanceId") or None
        instance = dict(instances[instance_id]) if instance_id in instances else None
        shared = InstanceGroup(members=tuple(d["DiskId"] for d in group), looks=self.looks)
        try:
            for i, disk in enumerate(group):
                last = i == len(group) - 1
                result = self.run_disk(disk, instance, last, shared)
                if last:
                    result = settle_instance(ctx, shared, instance_id, result)
                self.record(result)
        finally:
            self.looks.done(shared.members)  # no later look names them
        with self._lock:
            self._longest = max(self._longest, ctx.clock() - began)

    def run_disk(self, disk: dict, instance: dict | None, last: bool, shared: InstanceGroup) -> Result:
        ctx, req = self.ctx, self.req
        if self.aborted():
            return not_attempted(disk, REJECTED, "Aborted.MaxErrors", f"{req.max_errors} failures came first (MaxErrors).")
        if ctx.clock() >= ctx.deadline:  # report it rather than be killed mid-batch; a retry may do it
            result = not_attempted(disk, FAILED, "WaitTimeout", "the function ran out of time first.")
            result.retryable = True
            return result
        try:
            return at_most_once(ctx, req, disk, lambda c: carry_out(c, req, disk, instance, last, shared, continuable=False),
                                lambda c, record: resolve_in_doubt(c, req, disk, record, shared), shared)
        except Exception as err:  # one disk's bug must not lose the others
            ctx.log.error("batch.disk.crashed", disk=disk["DiskId"], error=type(err).__name__)
            return Result(FAILED, "InternalError", "An internal error stopped this disk.",
                          disk_id=disk["DiskId"], instance_id=disk.get("InstanceId") or None, status=500)

    # -- bookkeeping --------------------------------------------------------------------
    def record(self, result: Result) -> None:
        with self._lock:
            self.results.append(result)
            if result.outcome in (FAILED, REJECTED) and result.code != "Aborted.MaxErrors":
                self.failures += 1
            self.progress()
        if self.on_result:
            self.on_result(result)

    def progress(self, force: bool = False) -> None:
        now = self.ctx.clock()
        if force or now - self._last_progress >= PROGRESS_EVERY:
            self._last_progress = now
            done = len(self.results)
            self.ctx.log.info("batch.progress", done=done, total=self.total,
                              rate=round(done / max(now - self._started, 1e-9), 2), throttles=self.paced.throttles)

    def aborted(self) -> bool:
        with self._lock:
            return self.req.max_errors is not None and self.failures >= self.req.max_errors

    def ordered(self, disks: list[dict]) -> list[Result]:
        order = {d: i for i, d in enumerate(self.req.disk_ids or [d["DiskId"] for d in disks])}
        return sorted(self.results, key=lambda r: order.get(r.disk_id, len(order)))

    def figures(self) -> dict:
        figures = {"Throttles": self.paced.throttles}
        if self.req.batch_id is not None:
            figures.update(BatchId=self.req.batch_id, Chunk=self.req.chunk, Chunks=self.req.chunks)
        return figures


def by_instance(disks: list[dict]) -> list[list[dict]]:
    """Disks grouped by instance, each group's system disk last."""
    groups: dict[str, list[dict]] = {}
    for disk in disks:
        groups.setdefault(disk.get("InstanceId") or disk["DiskId"], []).append(disk)
    for group in groups.values():
        group.sort(key=lambda d: (d.get("Type") == "system", d["DiskId"]))
    return list(groups.values())


def not_attempted(disk: dict, outcome: str, code: str, why: str) -> Result:
    return Result(outcome, code, f"Not attempted: {why}", disk_id=disk["DiskId"],
                  instance_id=disk.get("InstanceId") or None, status=CATALOGUE[code][0])


def run_batch(ctx: Context, req: Request, paces: Paces, on_result: Callable[[Result], None] | None = None,
              split: Callable[[list[str]], dict | None] | None = None,
              hand_on: Callable[[list[str]], dict | None] | None = None) -> tuple[list[Result], Result | None, dict]:
    """Run a batch (see Batch.run); `hand_on(ids)` hands disks not started in time to
    another invocation and returns figures for the summary (None: it could not)."""
    return Batch(ctx, req, paces, on_result, hand_on).run(split)
