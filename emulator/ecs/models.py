"""ECS state: instances, disks, images, snapshots and key pairs, on one backend.

State is plain dicts keyed by id. Status changes are scheduled on the clock and applied
whenever state is read, so an instance is Stopping for `timings.stop` seconds and then
Stopped, exactly as a caller polling ECS would see it. A snapshot's progress is a function
of the clock too: `progressing` for `timings.snapshot` seconds, then `accomplished`.

Regions: the backend holds several, and every instance, disk and snapshot lives in exactly
one. A call that names `RegionId` sees that region only. A call addressed by a resource id
without `RegionId` (ReInitDisk, StopInstance, CreateSnapshot...) finds the resource where it
lives: resource ids are unique across regions, and the ECS SDK's own endpoint map sends many
regions to one shared endpoint (`ecs.aliyuncs.com`, `ecs-cn-hangzhou.aliyuncs.com`,
alibabacloud_ecs20140526/client.py), which can only resolve such a call by the id.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field

from emulator.ecs import exceptions as exc

DEFAULT_TIMINGS = {"stop": 3.0, "start": 3.0, "reinit": 5.0, "snapshot": 30.0}
# Categories whose disks ECS cannot reinitialize (local disks live with the host).
UNSUPPORTED_CATEGORIES = {"ephemeral", "ephemeral_ssd", "local_ssd_pro", "local_hdd_pro"}
PASSWORD_SPECIALS = set("()`~!@#$%^&*-_+=|{}[]:;'<>,.?/")
# CreateSnapshot page: "The number of manual snapshots of the disk has reached 256."
MANUAL_SNAPSHOTS_PER_DISK = 256
# Instant access is for the ESSD family only (CreateSnapshotRequest.instant_access in the SDK).
INSTANT_ACCESS_CATEGORIES = {"cloud_essd", "cloud_auto", "cloud_essd_entry", "cloud_regional_disk_auto"}
# Snapshot ids carry a region code, as ECS's do (s-bp1... in cn-hangzhou); "emu" elsewhere.
REGION_CODES = {"cn-hangzhou": "bp1", "cn-shanghai": "uf6", "cn-beijing": "2ze", "cn-shenzhen": "wz9",
                "cn-hongkong": "j6c", "ap-southeast-1": "t4n", "eu-central-1": "gw8", "us-west-1": "rj9"}
DAY = 86400.0


@dataclass
class Instance:
    instance_id: str
    status: str = "Running"
    os_type: str = "linux"
    image_id: str = ""
    zone_id: str = ""
    instance_type: str = "ecs.g7.large"
    name: str = ""
    started_once: bool = True
    # When it last began to start (clock seconds): DescribeInstances' StartTime. Seeded
    # instances were last started a day before clock 0.
    started_at: float | None = -86400.0
    locked_for_security: bool = False
    expired: bool = False
    hibernation: bool = False
    stopped_mode: str = ""
    key_pair_name: str = ""
    region: str = ""
    pending: list = field(default_factory=list)  # [(at, status)]
    tags: dict = field(default_factory=dict)  # what RAM's tag conditions read (emulator/ram)


@dataclass
class Disk:
    disk_id: str
    instance_id: str = ""
    type: str = "system"
    category: str = "cloud_essd"
    status: str = "In_use"
    size: int = 40
    zone_id: str = ""
    image_id: str = ""
    source_snapshot_id: str = ""
    source_disk_id: str = ""
    tags: dict = field(default_factory=dict)
    multi_attach: bool = False
    instant_access_snapshots: bool = False
    creating_snapshot: bool = False
    reinit_unsupported: bool = False
    region: str = ""
    snapshot_seconds: float | None = None  # how long a snapshot of this disk takes (default: timings)
    snapshot_fails_at: int | None = None  # every snapshot of this disk fails at this percent
    pending: list = field(default_factory=list)
    reinit_count: int = 0
    last_reinit: dict = field(default_factory=dict)  # what the last ReInitDisk asked for


@dataclass
class Snapshot:
    """A disk snapshot. Status and progress follow the clock: progressing from `created_at`
    for `duration` seconds, then accomplished; or failed when `fails_at` (a percent) is
    reached. Released (gone) `retention_days` after creation, as the CreateSnapshot page says."""

    snapshot_id: str
    region: str
    source_disk_id: str = ""
    source_disk_type: str = "system"
    source_disk_size: int = 40
    name: str = ""
    description: str = ""
    retention_days: int | None = None
    instant_access: bool = False
    tags: dict = field(default_factory=dict)
    created_at: float = 0.0
    duration: float = 0.0
    fails_at: int | None = None
    manual: bool = True  # SnapshotType user (auto: made by an automatic snapshot policy)
    deleted: bool = False  # a disk's deleted source snapshot (seeded)
    too_old: bool = False  # made before 2013-07-15 (seeded)

    def progress(self, now: float) -> int:
        done = 100 if self.duration <= 0 else int(100 * (now - self.created_at) / self.duration)
        done = max(0, min(100, done))
        return done if self.fails_at is None else min(done, self.fails_at)

    def status(self, now: float) -> str:
        if self.fails_at is not None and self.progress(now) >= self.fails_at:
            return "failed"
        return "accomplished" if self.progress(now) >= 100 else "progressing"

    def remain_time(self, now: float) -> int:
        if self.status(now) != "progressing":
            return 0
        return max(0, int(round(self.created_at + self.duration - now)))

    def released(self, now: float) -> bool:
        return self.deleted or (self.retention_days is not None and now >= self.created_at + self.retention_days * DAY)


class EcsBackend:
    """ECS in several regions: the state and the rules of its actions.

    `region` is the default region: what a seed without regions, and `add_disk` without
    `RegionId`, fill. Public images are the same in every region, so images are shared;
    key pairs belong to one region, as in ECS.
    """

    def __init__(self, clock, region: str = "cn-hangzhou", timings: dict | None = None):
        self.clock = clock
        self.region = region
        self.regions: set[str] = {region}
        self.timings = {**DEFAULT_TIMINGS, **(timings or {})}
        self.instances: dict[str, Instance] = {}
        self.disks: dict[str, Disk] = {}
        self.images: dict[str, dict] = {}  # ImageId -> {"OSType", "Deleted", "Shared"}
        self.snapshots: dict[str, Snapshot] = {}
        self.key_pairs: dict[str, set[str]] = {}  # region -> names
        self.client_tokens: dict[str, tuple[tuple, str]] = {}  # CreateSnapshot ClientToken -> (request, SnapshotId)
        self.snapshot_failures: dict[str, list[int]] = {}  # DiskId -> percents at which its next snapshots fail
        self._snapshot_serial = 0
        self.lock = threading.RLock()
        self.calls: Counter = Counter()  # action -> accepted calls

    # -- seeding -----------------------------------------------------------------
    def seed(self, data: dict) -> None:
        """The seed's top level is the default region (`region`); `regions` maps further
        regions to the same shape: {"cn-shanghai": {"instances": [...], "disks": [...]}}."""
        with self.lock:
            if "region" in data:
                self.regions.discard(self.region)
                self.region = data["region"]
                self.regions.add(self.region)
            self.timings.update(data.get("timings", {}))
            self._seed_region(self.region, data)
            for region, part in (data.get("regions") or {}).items():
                self._seed_region(region, part)

    def _seed_region(self, region: str, data: dict) -> None:
        self.regions.add(region)
        self.key_pairs.setdefault(region, set()).update(data.get("keyPairs", []))
        for img in data.get("images", []):
            self.images[img["ImageId"]] = {
                "OSType": img.get("OSType", "linux"),
                "Deleted": img.get("Deleted", False),
                "Shared": img.get("Shared", False),
            }
        for raw in data.get("instances", []):
            self.add_instance({"RegionId": region, **raw})
        for raw in data.get("disks", []):
            self.add_disk({"RegionId": region, **raw})
        for raw in data.get("snapshots", []):
            self.add_snapshot({"RegionId": region, **raw})

    def add_instance(self, raw: dict) -> Instance:
        region = raw.get("RegionId", self.region)
        inst = Instance(
            instance_id=raw["InstanceId"],
            status=raw.get("Status", "Running"),
            os_type=raw.get("OSType", "linux"),
            image_id=raw.get("ImageId", ""),
            zone_id=raw.get("ZoneId", f"{region}-h"),
            instance_type=raw.get("InstanceType", "ecs.g7.large"),
            name=raw.get("InstanceName", raw["InstanceId"]),
            started_once=raw.get("StartedOnce", True),
            started_at=-86400.0 if raw.get("StartedOnce", True) else None,
            locked_for_security=raw.get("LockedForSecurity", False),
            expired=raw.get("Expired", False),
            hibernation=raw.get("HibernationConfigured", False),
            key_pair_name=raw.get("KeyPairName", ""),
            region=region,
            tags=_tag_dict(raw.get("Tags", {})),
        )
        with self.lock:
            self.regions.add(region)
            self.instances[inst.instance_id] = inst
        return inst

    def add_disk(self, raw: dict) -> Disk:
        region = raw.get("RegionId", self.region)
        disk = Disk(
            disk_id=raw["DiskId"],
            instance_id=raw.get("InstanceId", ""),
            type=raw.get("Type", "system"),
            category=raw.get("Category", "cloud_essd"),
            status=raw.get("Status", "In_use" if raw.get("InstanceId") else "Available"),
            size=raw.get("Size", 40),
            zone_id=raw.get("ZoneId", f"{region}-h"),
            image_id=raw.get("ImageId", ""),
            source_snapshot_id=raw.get("SourceSnapshotId", ""),
            source_disk_id=raw.get("SourceDiskId", ""),
            tags=_tag_dict(raw.get("Tags", {})),
            multi_attach=raw.get("MultiAttach", False),
            instant_access_snapshots=raw.get("InstantAccessSnapshots", False),
            creating_snapshot=raw.get("CreatingSnapshot", False),
            reinit_unsupported=raw.get("ReInitUnsupported", False),
            region=region,
            snapshot_seconds=raw.get("SnapshotSeconds"),
            snapshot_fails_at=(50 if raw.get("SnapshotFails") is True else raw.get("SnapshotFails") or None),
        )
        with self.lock:
            self.regions.add(region)
            self.disks[disk.disk_id] = disk
        return disk

    def add_snapshot(self, raw: dict) -> Snapshot:
        """A seeded snapshot: a disk's source snapshot (`Deleted`, `TooOld`), or one of a
        disk (`SourceDiskId`) that is `accomplished` (default), `progressing` for `Seconds`
        more seconds, or `failed`."""
        status = raw.get("Status", "accomplished")
        now = self.clock.now()
        snap = Snapshot(
            snapshot_id=raw["SnapshotId"],
            region=raw.get("RegionId", self.region),
            source_disk_id=raw.get("SourceDiskId", ""),
            name=raw.get("SnapshotName", ""),
            retention_days=raw.get("RetentionDays"),
            instant_access=raw.get("InstantAccess", False),
            tags=_tag_dict(raw.get("Tags", {})),
            created_at=now,
            duration=float(raw.get("Seconds", self.timings["snapshot"])) if status == "progressing" else 0.0,
            fails_at=0 if status == "failed" else None,
            manual=raw.get("SnapshotType", "user") == "user",
            deleted=raw.get("Deleted", False),
            too_old=raw.get("TooOld", False),
        )
        with self.lock:
            self.regions.add(snap.region)
            self.snapshots[snap.snapshot_id] = snap
        return snap

    # -- time --------------------------------------------------------------------
    def _settle(self) -> None:
        now = self.clock.now()
        for res in (*self.instances.values(), *self.disks.values()):
            while res.pending and res.pending[0][0] <= now:
                at, res.status = res.pending.pop(0)
                if res.status == "Starting" and isinstance(res, Instance):
                    res.started_at = at

    def _schedule(self, res, *steps: tuple[float, str]) -> None:
        """steps: (seconds from now, status), in order."""
        now = self.clock.now()
        res.pending = [(now + delay, status) for delay, status in steps]

    # -- getters: the one place each not-found error is raised --------------------
    def get_disk(self, disk_id: str, region: str | None = None) -> Disk:
        disk = self.disks.get(disk_id)
        if disk is None or (region is not None and disk.region != region):
            raise exc.InvalidDiskIdNotFound()
        return disk

    def get_instance(self, instance_id: str, region: str | None = None) -> Instance:
        inst = self.instances.get(instance_id)
        if inst is None or (region is not None and inst.region != region):
            raise exc.InvalidInstanceIdNotFound()
        return inst

    def snapshots_of(self, disk: Disk) -> list[Snapshot]:
        """The disk's snapshots that still exist."""
        now = self.clock.now()
        return [s for s in self.snapshots.values() if s.source_disk_id == disk.disk_id and not s.released(now)]

    def snapshot_in_progress(self, disk: Disk) -> bool:
        now = self.clock.now()
        return disk.creating_snapshot or any(s.status(now) == "progressing" for s in self.snapshots_of(disk))

    def has_instant_access_snapshots(self, disk: Disk) -> bool:
        return disk.instant_access_snapshots or any(s.instant_access for s in self.snapshots_of(disk))

    # -- reads -------------------------------------------------------------------
    def describe_disks(self, disk_ids=None, instance_id=None, disk_type=None, tags=None, region=None) -> list[Disk]:
        """region None: every region (for the control API and tests)."""
        with self.lock:
            self._settle()
            return [disk for disk in self.disks.values()
                    if (disk_ids is None or disk.disk_id in disk_ids) and disk_matches(disk, instance_id, disk_type,
                                                                                       tags, region)]

    def describe_instances(self, instance_ids=None, region=None) -> list[Instance]:
        with self.lock:
            self._settle()
            return [
                inst
                for inst in self.instances.values()
                if (instance_ids is None or inst.instance_id in instance_ids)
                and (region is None or inst.region == region)
            ]

    def describe_snapshots(self, region: str, snapshot_ids=None, disk_id=None, instance_id=None, status=None,
                           snapshot_type=None, source_disk_type=None, tags=None, now=None) -> list[Snapshot]:
        """DescribeSnapshots: the filters are ANDed, as its API page says. Newest first.
        `now`: the moment the answer describes (the clock's, by default)."""
        with self.lock:
            now = self.clock.now() if now is None else now
            found = []
            for snap in self.snapshots.values():
                if snap.region != region or snap.released(now):
                    continue
                if snapshot_ids is not None and snap.snapshot_id not in snapshot_ids:
                    continue
                if disk_id and snap.source_disk_id != disk_id:
                    continue
                if instance_id:
                    disk = self.disks.get(snap.source_disk_id)
                    if disk is None or disk.instance_id != instance_id:
                        continue
                if status and status != "all" and snap.status(now) != status:
                    continue
                if snapshot_type and snapshot_type != "all" and snap.manual != (snapshot_type == "user"):
                    continue
                if source_disk_type and snap.source_disk_type != source_disk_type.lower():
                    continue
                if tags and not _tags_match(snap.tags, tags):
                    continue
                found.append(snap)
            return sorted(found, key=lambda s: (-s.created_at, s.snapshot_id))

    # -- writes ------------------------------------------------------------------
    def stop_instance(self, instance_id: str, stopped_mode: str = "", region: str | None = None) -> None:
        with self.lock:
            self._settle()
            inst = self.get_instance(instance_id, region)
            if inst.status != "Running":
                raise exc.IncorrectInstanceStatus()
            inst.status = "Stopping"
            inst.stopped_mode = stopped_mode or "KeepCharging"
            self._schedule(inst, (self.timings["stop"], "Stopped"))
            self.calls["StopInstance"] += 1

    def start_instance(self, instance_id: str, region: str | None = None) -> None:
        with self.lock:
            self._settle()
            inst = self.get_instance(instance_id, region)
            if inst.status != "Stopped":
                raise exc.IncorrectInstanceStatus()
            inst.status = "Starting"
            inst.started_once = True
            inst.started_at = self.clock.now()
            self._schedule(inst, (self.timings["start"], "Running"))
            self.calls["StartInstance"] += 1

    def reinit_disk(self, disk_id: str, password=None, key_pair_name=None, auto_start=False,
                    security_enhancement_strategy=None, region: str | None = None) -> None:
        """ReInitDisk, with the preconditions of the API page in the order ECS checks them."""
        with self.lock:
            self._settle()
            disk = self.get_disk(disk_id, region)
            if disk.status != "In_use":
                raise exc.IncorrectDiskStatus()
            if disk.multi_attach:
                raise exc.MultiAttachDisk()
            if disk.category in UNSUPPORTED_CATEGORIES:
                raise exc.DiskCategoryNotSupported()
            if disk.reinit_unsupported:
                raise exc.ReInitUnsupported()
            inst = self.get_instance(disk.instance_id)
            if inst.locked_for_security:
                raise exc.InstanceLockedForSecurity()
            if inst.expired:
                raise exc.InstanceExpiredOrInArrears()
            if inst.hibernation:
                raise exc.HibernationConfigured()
            if inst.status != "Stopped":
                raise exc.IncorrectInstanceStatus()
            if not inst.started_once:
                raise exc.IncorrectInstanceStatus("The instance has never been started.")
            # The API page: "You cannot reinitialize a disk that has local snapshots" (instant
            # access replaced them), and 403 DiskCreatingSnapshot while a snapshot is unfinished.
            if self.has_instant_access_snapshots(disk):
                raise exc.InstantAccessSnapshots()
            if self.snapshot_in_progress(disk):
                raise exc.DiskCreatingSnapshot()
            if disk.source_disk_id:
                raise exc.DiskFromCloned(
                    f"The specified disk {disk.disk_id} is cloned from source disk "
                    f"{disk.source_disk_id}, so not support reinit"
                )
            self._check_source(disk)
            if password is not None and not password_is_valid(password, inst.os_type):
                raise exc.InvalidPasswordMalformed()
            if key_pair_name is not None:
                if inst.os_type == "windows":
                    raise exc.WindowsKeyPair()
                if key_pair_name not in self.key_pairs.get(disk.region, ()):
                    raise exc.InvalidKeyPairNameNotFound()
            # Accepted: the disk is wiped now.
            disk.reinit_count += 1
            disk.last_reinit = {
                "PasswordSet": password is not None,
                "KeyPairName": key_pair_name,
                "AutoStartInstance": auto_start,
                "SecurityEnhancementStrategy": security_enhancement_strategy,
            }
            self.calls["ReInitDisk"] += 1
            # `reinit_start`: ECS may show ReIniting a moment after it accepted the call
            # (the completion wait must not take that moment for the end).
            late = self.timings.get("reinit_start", 0.0)
            reinit = late + self.timings["reinit"]
            if late > 0:
                self._schedule(disk, (late, "ReIniting"), (reinit, "In_use"))
            else:
                disk.status = "ReIniting"
                self._schedule(disk, (reinit, "In_use"))
            if auto_start:
                inst.started_once = True
                self._schedule(
                    inst, (reinit, "Starting"), (reinit + self.timings["start"], "Running")
                )

    def _check_source(self, disk: Disk) -> None:
        if disk.type == "system":
            image = self.images.get(disk.image_id)
            if image is None:
                raise exc.ImageNotExist()
            if image["Deleted"]:
                raise exc.SharedImageDeleted() if image["Shared"] else exc.ImageNotExist()
        elif disk.source_snapshot_id:
            snap = self.snapshots.get(disk.source_snapshot_id)
            if snap is None or snap.released(self.clock.now()):
                raise exc.InvalidSourceSnapshot()
            if snap.too_old:
                raise exc.SnapshotTooOld()

    # -- snapshots -----------------------------------------------------------------
    def create_snapshot(self, disk_id: str, region: str | None = None, name: str = "", description: str = "",
                        retention_days: int | None = None, instant_access: bool = False, tags: dict | None = None,
                        client_token: str | None = None) -> str:
        """CreateSnapshot, with the refusals of its API page (doc-detail/25524) in that order.

        A repeated ClientToken with the same request answers the first SnapshotId, even while
        that snapshot is still in progress; with another request, IdempotentParameterMismatch
        ("How to ensure idempotence", doc-detail/25693)."""
        tags = dict(tags or {})
        request = (disk_id, name, description, retention_days, instant_access, tuple(sorted(tags.items())))
        with self.lock:
            self._settle()
            if client_token and client_token in self.client_tokens:
                first, snapshot_id = self.client_tokens[client_token]
                if first != request:
                    raise exc.IdempotentParameterMismatch()
                return snapshot_id
            disk = self.get_disk(disk_id, region)
            if disk.category in UNSUPPORTED_CATEGORIES:
                raise exc.DiskCategoryNotSupported()
            if disk.status not in ("In_use", "Available"):
                raise exc.IncorrectDiskStatus()
            if disk.instance_id:
                inst = self.get_instance(disk.instance_id)
                if inst.locked_for_security:
                    raise exc.SnapshotInstanceLocked()
                if not inst.started_once or inst.status not in ("Running", "Stopped"):
                    raise exc.SnapshotIncorrectInstanceStatus()
            if self.snapshot_in_progress(disk):
                raise exc.CreatingSnapshotInProgress()
            if sum(s.manual for s in self.snapshots_of(disk)) >= MANUAL_SNAPSHOTS_PER_DISK:
                raise exc.QuotaExceedSnapshot()
            if instant_access and disk.category not in INSTANT_ACCESS_CATEGORIES:
                raise exc.DiskCategoryNotSupported("Instant access is supported by ESSD disks only.")
            queued = self.snapshot_failures.get(disk_id)
            fails_at = queued.pop(0) if queued else disk.snapshot_fails_at
            self._snapshot_serial += 1
            snap = Snapshot(
                snapshot_id=f"s-{REGION_CODES.get(disk.region, 'emu')}{self._snapshot_serial:017d}",
                region=disk.region, source_disk_id=disk.disk_id, source_disk_type=disk.type,
                source_disk_size=disk.size, name=name, description=description, retention_days=retention_days,
                instant_access=instant_access, tags=tags, created_at=self.clock.now(),
                duration=self.timings["snapshot"] if disk.snapshot_seconds is None else disk.snapshot_seconds,
                fails_at=fails_at,
            )
            self.snapshots[snap.snapshot_id] = snap
            if client_token:
                self.client_tokens[client_token] = (request, snap.snapshot_id)
            self.calls["CreateSnapshot"] += 1
            return snap.snapshot_id

    def tag_resources(self, region: str, resource_type: str, ids: list[str], tags: dict) -> None:
        """TagResources on snapshots or disks: all exist in `region`, or nothing is tagged."""
        with self.lock:
            for res in self._tagged(region, resource_type, ids):
                res.tags.update(tags)

    def untag_resources(self, region: str, resource_type: str, ids: list[str], keys: list[str]) -> None:
        with self.lock:
            for res in self._tagged(region, resource_type, ids):
                for key in keys:
                    res.tags.pop(key, None)

    def _tagged(self, region: str, resource_type: str, ids: list[str]) -> list:
        table = self.snapshots if resource_type == "snapshot" else self.disks
        found = [table.get(i) for i in ids]
        if any(r is None or (r.region or region) != region for r in found):
            raise exc.InvalidResourceIdNotFound()
        return found


    def fail_next_snapshots(self, disk_id: str, times: int = 1, at_percent: int = 50) -> None:
        """Faults for tests and the demo: the disk's next `times` snapshots fail at `at_percent`."""
        with self.lock:
            self.snapshot_failures.setdefault(disk_id, []).extend([at_percent] * times)

    def fail_snapshot(self, snapshot_id: str) -> None:
        """A snapshot in progress fails now, at the progress it has reached (a finished one
        stays as it is)."""
        with self.lock:
            snap, now = self.snapshots[snapshot_id], self.clock.now()
            if snap.status(now) == "progressing":
                snap.fails_at = snap.progress(now)

    # -- what tests and the demo read back ----------------------------------------
    def status_of(self, resource_id: str) -> str:
        with self.lock:
            self._settle()
            res = self.disks.get(resource_id) or self.get_instance(resource_id)
            return res.status


def _tag_dict(tags) -> dict:
    """Seed tags as {"k": "v"} or [{"Key": k, "Value": v}]."""
    if isinstance(tags, list):
        return {t["Key"]: t.get("Value", "") for t in tags}
    return dict(tags)


def disk_matches(disk: Disk, instance_id=None, disk_type=None, tags=None, region=None) -> bool:
    """DescribeDisks' filters other than DiskIds, as ECS applies them."""
    return ((region is None or disk.region == region) and (not instance_id or disk.instance_id == instance_id)
            and (not disk_type or disk_type == "all" or disk.type == disk_type)
            and (not tags or _tags_match(disk.tags, tags)))


def _tags_match(have: dict, wanted) -> bool:
    """Every (key, value) wanted is carried; a value of None matches any value."""
    return all(k in have and (v is None or have[k] == v) for k, v in wanted)


def password_is_valid(password: str, os_type: str) -> bool:
    """The rule of the ReInitDisk page, as ECS applies it."""
    if not 8 <= len(password) <= 30:
        return False
    kinds = [
        any("A" <= c <= "Z" for c in password),
        any("a" <= c <= "z" for c in password),
        any("0" <= c <= "9" for c in password),
        any(c in PASSWORD_SPECIALS for c in password),
    ]
    if sum(kinds) < 3:
        return False
    if not re.fullmatch(r"[A-Za-z0-9()`~!@#$%^&*\-_+=|{}\[\]:;'<>,.?/]+", password):
        return False
    return not (os_type == "windows" and password.startswith("/"))
