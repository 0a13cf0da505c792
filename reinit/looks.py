"""The look the guard is checked on right before a write, shared by a batch (issues 20 and 23).

A batch's selection is only a plan: just before each ReInitDisk, the tag, `In_use` and the
instance are checked again on a fresh DescribeDisks (flow.look_again). One DescribeDisks
names up to 100 disks, so one look serves the disk, the rest of its instance, and the next
disks the batch will run; a chunk's page look-up (DescribeDisks by the page's DiskIds, just
before the page runs) is such a look too. A look serves a disk's write only where

    taken after the instance's last wait   (its stop, its evidence snapshot, the wait for
                                            an earlier disk's reinit): group.settled_at
    at most FRESH seconds old               a tag removed, or the disk moved, more than
                                            FRESH s before the check always saves it (the
                                            write follows at its turn at the pace: not
                                            checked again before a retry, a known gap)
    not used by a write already             each look serves one write

and otherwise a new one is taken. Its age counts from when its request was sent, before any
wait for the pace or a retry: a look can only seem older than it is. At the quota's speed a
batch so costs one DescribeDisks per 100 disks instead of one per instance (docs/fleet.md).

Race (threads of one batch): one look is on its way at a time; workers that need one
meanwhile wait for it (on a Condition, outside the call: the bench's virtual clock sees a
thread waiting there as blocked) and then find their disk in it, rather than each sending
its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from reinit.ecs import PAGE

FRESH = 60.0  # seconds a look may serve a write for (a page of 100 at 5 calls a second, over 3 chunks)


class Looks:
    """The batch's recent looks (DiskId -> when, and the disk as seen, None where not found)
    and its plan (the disk IDs still to run, in the order they run)."""

    def __init__(self, clock: Callable[[], float], plan: Iterable[str] = ()):
        self.clock = clock
        self._plan: dict[str, None] = dict.fromkeys(plan)
        self._seen: dict[str, tuple[float, dict | None]] = {}
        self._cond = threading.Condition()
        self._taking = False  # a look is on its way

    def plan(self, ids: Iterable[str]) -> None:
        """Disks to run next, in order: the next look names them after the ones before."""
        with self._cond:
            self._plan.update(dict.fromkeys(ids))

    def saw(self, ids: Iterable[str], found: Iterable[dict], at: float) -> None:
        """A DescribeDisks of `ids` sent at `at` (a page's look-up) answered `found`."""
        by_id = {d["DiskId"]: d for d in found}
        with self._cond:
            self._seen.update((i, (at, by_id.get(i))) for i in ids)

    def done(self, ids: Iterable[str]) -> None:
        """These disks will not be written in this batch: no look names them again."""
        with self._cond:
            for disk_id in ids:
                self._plan.pop(disk_id, None)
                self._seen.pop(disk_id, None)

    def take(self, disk_id: str, members: Iterable[str], settled_at: float,
             read: Callable[[list[str]], list[dict]]) -> dict | None:
        """The disk as a look valid for its write shows it (None: it no longer exists); a new
        look, of it, the rest of its instance (`members`) and the plan's next disks, where
        none is. `read(ids)` is the DescribeDisks; its errors are the caller's."""
        with self._cond:
            while self._taking:  # another worker's look is on its way, and may name this disk
                self._cond.wait()
            now = self.clock()
            if self._serves(disk_id, settled_at, now):
                return self._use(disk_id)
            ids = self._ahead(disk_id, members)
            self._taking = True
        try:
            found = read(ids)  # sent outside the lock: the pace may hold it for a while
        except BaseException:
            with self._cond:
                self._taking = False
                self._cond.notify_all()
            raise
        by_id = {d["DiskId"]: d for d in found}
        with self._cond:  # stored and released at once: a waiting worker finds it (found in review)
            self._seen = {i: seen for i, seen in self._seen.items() if now - seen[0] <= FRESH}
            # A disk another worker wrote meanwhile (on an older look) is not put back.
            self._seen.update((i, (now, by_id.get(i))) for i in ids if i in self._plan or i == disk_id)
            self._taking = False
            self._cond.notify_all()
            return self._use(disk_id)

    def _ahead(self, disk_id: str, members: Iterable[str]) -> list[str]:
        """What a new look names: the disk, the rest of its instance, then the plan, up to
        PAGE (without copying a plan of thousands at every look)."""
        ids = dict.fromkeys([disk_id, *(m for m in members if m in self._plan)])
        for planned in self._plan:
            if len(ids) >= PAGE:
                break
            ids.setdefault(planned)
        return list(ids)[:PAGE]

    def _serves(self, disk_id: str, settled_at: float, now: float) -> bool:
        when = self._seen.get(disk_id, (None, None))[0]
        return when is not None and when >= settled_at and now - when <= FRESH

    def _use(self, disk_id: str) -> dict | None:
        self._plan.pop(disk_id, None)
        return self._seen.pop(disk_id)[1]
