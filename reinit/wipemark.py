"""The wipe's memory on the ECS side (docs/idempotency.md): a tag on the disk, written
just before ReInitDisk, that names the request (a digest of its idempotency key), when,
and the instance's StartTime then. The idempotency store can forget (a restart without
persistence, an eviction); the disk cannot. A request that finds its own mark on the disk
and no record in the store treats the pair as in doubt: the disk is looked at again under
the rules of INTERFACE.md section 11, "Ambiguous failures", before anything is repeated,
so a disk whose instance ran since is never wiped a second time.

One tag (a disk has at most 20): the latest wipe in full, then the digests and times of
up to three earlier ones within the TTL, so that another request's wipe in between does
not erase the memory of this one. The value stays under ECS's 128 characters:
`v1.<digest>.<epoch>.<AutoStart t/f/n><StoppedByUs s/->.<StartTime>[ <digest>.<epoch>]...`

RAM: the role may write only this tag key on disks (ecs:TagResources with
`acs:RequestTag/reinit-wipe`); see docs/idempotency.md.
"""

from __future__ import annotations

import hashlib

from reinit.ecs import EcsCallError
from reinit.errors import failed
from reinit.retry import retryable_read

MARK_KEY = "reinit-wipe"
VERSION = "v1"
EARLIER = 3  # earlier wipes kept beside the latest


def digest(event_key: str) -> str:
    return hashlib.sha256(event_key.encode("utf-8")).hexdigest()[:12]


def current_mark(disk: dict) -> str:
    tags = {t.get("TagKey"): t.get("TagValue", "") for t in (disk.get("Tags") or {}).get("Tag") or []}
    return tags.get(MARK_KEY) or ""


def _entries(value: str) -> tuple[list[str], list[tuple[str, int]]]:
    """The latest entry's five fields ([] if none readable) and the earlier (digest, epoch)."""
    head, *rest = value.split(" ") if value else [""]
    latest = head.split(".", 4)
    if len(latest) != 5 or latest[0] != VERSION or len(latest[3]) != 2 or not latest[2].isdigit():
        latest = []
    earlier = []
    for item in rest:
        d, _, epoch = item.partition(".")
        if epoch.isdigit():
            earlier.append((d, int(epoch)))
    return latest, earlier


def mark_value(previous: str, event_key: str, now: float, facts: dict, ttl: int) -> str:
    """The tag's new value: this wipe in full, then the earlier ones still within the TTL."""
    auto = {True: "t", False: "f", None: "n"}.get(facts.get("AutoStart"), "n")
    stopped = "s" if facts.get("StoppedByUs") else "-"
    head = f"{VERSION}.{digest(event_key)}.{int(now)}.{auto}{stopped}.{facts.get('StartTime') or ''}"
    latest, earlier = _entries(previous)
    if latest:
        earlier.insert(0, (latest[1], int(latest[2])))
    kept = [f"{d}.{e}" for d, e in earlier if now - e < ttl and d != digest(event_key)][:EARLIER]
    return " ".join([head, *kept])[:128]


def read_mark(disk: dict, event_key: str, now: float, ttl: int) -> dict | None:
    """This request's mark on the disk (younger than the TTL), as the facts a store record
    would keep (idempotency.FACTS); None if the disk carries none of this request's. Where
    another request's wipe came after it, nothing tells whether the disk stayed quiet since
    ours: no StartTime, so that the look that follows never repeats it."""
    latest, earlier = _entries(current_mark(disk))
    mine = digest(event_key)
    if latest and latest[1] == mine and now - int(latest[2]) < ttl:
        auto = {"t": True, "f": False}.get(latest[3][0])
        return {"AutoStart": auto, "StoppedByUs": latest[3][1] == "s", "StartTime": latest[4] or None}
    if any(d == mine and now - e < ttl for d, e in earlier):
        return {"AutoStart": None, "StoppedByUs": False, "StartTime": None}
    return None


def write_mark(ctx, disk_id: str, value: str, previous: str) -> None:
    """Tag the disk before ReInitDisk; if that cannot be done, nothing is written to it."""
    try:
        ctx.retrier().call(lambda: ctx.ecs.tag_resources("disk", [disk_id], [(MARK_KEY, value)]), retryable_read)
    except EcsCallError as err:
        ctx.log.error("wipemark.failed", disk=disk_id, code=err.code)
        clear_mark(ctx, disk_id, previous)  # an answer lost may have written it
        raise failed("ServiceUnavailable", f"The wipe mark could not be written on disk {disk_id} ({err.code}); "
                     "ReInitDisk was not called, so that a redelivery cannot wipe it twice.", retryable=True) from None


def clear_mark(ctx, disk_id: str, previous: str) -> None:
    """Put the tag back as it was, after a ReInitDisk that certainly did not run (best
    effort: left behind, the mark only makes a retry of the same request look first)."""
    if previous:
        call = lambda: ctx.ecs.tag_resources("disk", [disk_id], [(MARK_KEY, previous)])  # noqa: E731
    else:
        call = lambda: ctx.ecs.untag_resources("disk", [disk_id], [MARK_KEY])  # noqa: E731
    try:
        ctx.retrier().call(call, retryable_read)
    except EcsCallError as err:
        ctx.log.warning("wipemark.left", disk=disk_id, code=err.code)
