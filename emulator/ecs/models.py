"""ECS state: instances, disks, images, snapshots and key pairs, on one backend.

State is plain dicts keyed by id. Status changes are scheduled on the clock and applied
whenever state is read, so an instance is Stopping for `timings.stop` seconds and then
Stopped, exactly as a caller polling ECS would see it.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field

from emulator.ecs import exceptions as exc

DEFAULT_TIMINGS = {"stop": 3.0, "start": 3.0, "reinit": 5.0}
# Categories whose disks ECS cannot reinitialize (local disks live with the host).
UNSUPPORTED_CATEGORIES = {"ephemeral", "ephemeral_ssd", "local_ssd_pro", "local_hdd_pro"}
PASSWORD_SPECIALS = set("()`~!@#$%^&*-_+=|{}[]:;'<>,.?/")


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
    locked_for_security: bool = False
    expired: bool = False
    hibernation: bool = False
    stopped_mode: str = ""
    key_pair_name: str = ""
    pending: list = field(default_factory=list)  # [(at, status)]


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
    pending: list = field(default_factory=list)
    reinit_count: int = 0
    last_reinit: dict = field(default_factory=dict)  # what the last ReInitDisk asked for


class EcsBackend:
    """One region's ECS: the state and the rules of the five actions."""

    def __init__(self, clock, region: str = "cn-hangzhou", timings: dict | None = None):
        self.clock = clock
        self.region = region
        self.timings = {**DEFAULT_TIMINGS, **(timings or {})}
        self.instances: dict[str, Instance] = {}
        self.disks: dict[str, Disk] = {}
        self.images: dict[str, dict] = {}  # ImageId -> {"OSType", "Deleted", "Shared"}
        self.snapshots: dict[str, dict] = {}  # SnapshotId -> {"Deleted", "TooOld"}
        self.key_pairs: set[str] = set()
        self.lock = threading.RLock()
        self.calls: Counter = Counter()  # action -> accepted calls

    # -- seeding -----------------------------------------------------------------
    def seed(self, data: dict) -> None:
        with self.lock:
            self.region = data.get("region", self.region)
            self.timings.update(data.get("timings", {}))
            for img in data.get("images", []):
                self.images[img["ImageId"]] = {
                    "OSType": img.get("OSType", "linux"),
                    "Deleted": img.get("Deleted", False),
                    "Shared": img.get("Shared", False),
                }
            for snap in data.get("snapshots", []):
                self.snapshots[snap["SnapshotId"]] = {
                    "Deleted": snap.get("Deleted", False),
                    "TooOld": snap.get("TooOld", False),
                }
            self.key_pairs.update(data.get("keyPairs", []))
            for raw in data.get("instances", []):
                self.add_instance(raw)
            for raw in data.get("disks", []):
                self.add_disk(raw)

    def add_instance(self, raw: dict) -> Instance:
        inst = Instance(
            instance_id=raw["InstanceId"],
            status=raw.get("Status", "Running"),
            os_type=raw.get("OSType", "linux"),
            image_id=raw.get("ImageId", ""),
            zone_id=raw.get("ZoneId", f"{self.region}-h"),
            instance_type=raw.get("InstanceType", "ecs.g7.large"),
            name=raw.get("InstanceName", raw["InstanceId"]),
            started_once=raw.get("StartedOnce", True),
            locked_for_security=raw.get("LockedForSecurity", False),
            expired=raw.get("Expired", False),
            hibernation=raw.get("HibernationConfigured", False),
            key_pair_name=raw.get("KeyPairName", ""),
        )
        with self.lock:
            self.instances[inst.instance_id] = inst
        return inst

    def add_disk(self, raw: dict) -> Disk:
        tags = raw.get("Tags", {})
        if isinstance(tags, list):
            tags = {t["Key"]: t.get("Value", "") for t in tags}
        disk = Disk(
            disk_id=raw["DiskId"],
            instance_id=raw.get("InstanceId", ""),
            type=raw.get("Type", "system"),
            category=raw.get("Category", "cloud_essd"),
            status=raw.get("Status", "In_use" if raw.get("InstanceId") else "Available"),
            size=raw.get("Size", 40),
            zone_id=raw.get("ZoneId", f"{self.region}-h"),
            image_id=raw.get("ImageId", ""),
            source_snapshot_id=raw.get("SourceSnapshotId", ""),
            source_disk_id=raw.get("SourceDiskId", ""),
            tags=dict(tags),
            multi_attach=raw.get("MultiAttach", False),
            instant_access_snapshots=raw.get("InstantAccessSnapshots", False),
            creating_snapshot=raw.get("CreatingSnapshot", False),
            reinit_unsupported=raw.get("ReInitUnsupported", False),
        )
        with self.lock:
            self.disks[disk.disk_id] = disk
        return disk

    # -- time --------------------------------------------------------------------
    def _settle(self) -> None:
        now = self.clock.now()
        for res in (*self.instances.values(), *self.disks.values()):
            while res.pending and res.pending[0][0] <= now:
                res.status = res.pending.pop(0)[1]

    def _schedule(self, res, *steps: tuple[float, str]) -> None:
        """steps: (seconds from now, status), in order."""
        now = self.clock.now()
        res.pending = [(now + delay, status) for delay, status in steps]

    # -- getters: the one place each not-found error is raised --------------------
    def get_disk(self, disk_id: str) -> Disk:
        disk = self.disks.get(disk_id)
        if disk is None:
            raise exc.InvalidDiskIdNotFound()
        return disk

    def get_instance(self, instance_id: str) -> Instance:
        inst = self.instances.get(instance_id)
        if inst is None:
            raise exc.InvalidInstanceIdNotFound()
        return inst

    # -- reads -------------------------------------------------------------------
    def describe_disks(self, disk_ids=None, instance_id=None, disk_type=None, tags=None) -> list[Disk]:
        with self.lock:
            self._settle()
            found = []
            for disk in self.disks.values():
                if disk_ids is not None and disk.disk_id not in disk_ids:
                    continue
                if instance_id and disk.instance_id != instance_id:
                    continue
                if disk_type and disk_type != "all" and disk.type != disk_type:
                    continue
                if tags and not all(
                    k in disk.tags and (v is None or disk.tags[k] == v) for k, v in tags
                ):
                    continue
                found.append(disk)
            return found

    def describe_instances(self, instance_ids=None) -> list[Instance]:
        with self.lock:
            self._settle()
            return [
                inst
                for inst in self.instances.values()
                if instance_ids is None or inst.instance_id in instance_ids
            ]

    # -- writes ------------------------------------------------------------------
    def stop_instance(self, instance_id: str, stopped_mode: str = "") -> None:
        with self.lock:
            self._settle()
            inst = self.get_instance(instance_id)
            if inst.status != "Running":
                raise exc.IncorrectInstanceStatus()
            inst.status = "Stopping"
            inst.stopped_mode = stopped_mode or "KeepCharging"
            self._schedule(inst, (self.timings["stop"], "Stopped"))
            self.calls["StopInstance"] += 1

    def start_instance(self, instance_id: str) -> None:
        with self.lock:
            self._settle()
            inst = self.get_instance(instance_id)
            if inst.status != "Stopped":
                raise exc.IncorrectInstanceStatus()
            inst.status = "Starting"
            inst.started_once = True
            self._schedule(inst, (self.timings["start"], "Running"))
            self.calls["StartInstance"] += 1

    def reinit_disk(self, disk_id: str, password=None, key_pair_name=None, auto_start=False,
                    security_enhancement_strategy=None) -> None:
        """ReInitDisk, with the preconditions of the API page in the order ECS checks them."""
        with self.lock:
            self._settle()
            disk = self.get_disk(disk_id)
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
            if disk.instant_access_snapshots:
                raise exc.InstantAccessSnapshots()
            if disk.creating_snapshot:
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
                if key_pair_name not in self.key_pairs:
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
            disk.status = "ReIniting"
            reinit = self.timings["reinit"]
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
            if snap is None or snap["Deleted"]:
                raise exc.InvalidSourceSnapshot()
            if snap["TooOld"]:
                raise exc.SnapshotTooOld()

    # -- what tests and the demo read back ----------------------------------------
    def status_of(self, resource_id: str) -> str:
        with self.lock:
            self._settle()
            res = self.disks.get(resource_id) or self.get_instance(resource_id)
            return res.status


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
