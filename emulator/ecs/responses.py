"""The ECS wire: parameters in, response dicts out, with the SDK models' field names.

Each action only parses its parameters, calls the backend and shapes the answer.
Field names follow alibabacloud_ecs20140526's response models (a test checks them).
"""

from __future__ import annotations

import json
import re

from emulator.ecs import exceptions as exc
from emulator.ecs.models import Disk, EcsBackend, Instance

VERSION = "2014-05-26"
MAX_PAGE = 100
CREATED = "2026-01-01T00:00:00Z"


def _bool(params: dict, name: str, default: bool = False) -> bool:
    raw = params.get(name)
    if raw is None:
        return default
    if raw.lower() not in ("true", "false"):
        raise exc.InvalidParameter(f"The specified parameter {name} is not valid.")
    return raw.lower() == "true"


def _int(params: dict, name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise exc.InvalidParameter(f"The specified parameter {name} is not valid.")
    return int(raw)


def _id_list(params: dict, name: str) -> list[str] | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        ids = json.loads(raw)
    except ValueError as err:
        raise exc.InvalidParameter(f"The specified parameter {name} is not valid.") from err
    if not isinstance(ids, list) or len(ids) > MAX_PAGE or not all(isinstance(i, str) for i in ids):
        raise exc.InvalidParameter(f"The specified parameter {name} is not valid.")
    return ids


def _tags(params: dict) -> list[tuple[str, str | None]]:
    tags = []
    for key, value in params.items():
        m = re.fullmatch(r"Tag\.(\d+)\.Key", key)
        if m:
            tags.append((int(m.group(1)), value, params.get(f"Tag.{m.group(1)}.Value")))
    if any(n < 1 or n > 20 for n, _, _ in tags):
        raise exc.InvalidParameter("The specified parameter Tag.N is not valid.")
    return [(k, v) for _, k, v in sorted(tags)]


def _page(params: dict, items: list) -> tuple[list, dict]:
    """PageNumber/PageSize, or NextToken/MaxResults when either is given (at most 100)."""
    total = len(items)
    if "NextToken" in params or "MaxResults" in params:
        size = _int(params, "MaxResults", 10, 1, MAX_PAGE)
        token = params.get("NextToken") or "0"
        if not token.isdigit():
            raise exc.InvalidParameter("The specified parameter NextToken is not valid.")
        start = int(token)
        chunk = items[start:start + size]
        nxt = str(start + size) if start + size < total else ""
        return chunk, {"NextToken": nxt, "TotalCount": total, "PageSize": size}
    number = _int(params, "PageNumber", 1, 1, 10**9)
    size = _int(params, "PageSize", 10, 1, MAX_PAGE)
    chunk = items[(number - 1) * size: number * size]
    return chunk, {"TotalCount": total, "PageNumber": number, "PageSize": size, "NextToken": ""}


def disk_to_wire(disk: Disk, region: str) -> dict:
    attached = bool(disk.instance_id)
    device = "/dev/xvda" if disk.type == "system" else "/dev/xvdb"
    return {
        "DiskId": disk.disk_id,
        "DiskName": disk.disk_id,
        "Description": "",
        "RegionId": region,
        "ZoneId": disk.zone_id,
        "Status": disk.status,
        "Type": disk.type,
        "Category": disk.category,
        "Size": disk.size,
        "InstanceId": disk.instance_id,
        "Device": device if attached else "",
        "ImageId": disk.image_id,
        "SourceSnapshotId": disk.source_snapshot_id,
        "Portable": disk.type == "data",
        "MultiAttach": "Enabled" if disk.multi_attach else "Disabled",
        "DeleteWithInstance": disk.type == "system",
        "Encrypted": False,
        "DiskChargeType": "PostPaid",
        "PerformanceLevel": "PL0",
        "EnableAutoSnapshot": True,
        "CreationTime": CREATED,
        "AttachedTime": CREATED if attached else "",
        "Tags": {"Tag": [{"TagKey": k, "TagValue": v} for k, v in disk.tags.items()]},
        "OperationLocks": {"OperationLock": []},
        "Attachments": {"Attachment": [
            {"InstanceId": disk.instance_id, "Device": device, "AttachedTime": CREATED}
        ] if attached else []},
    }


def instance_to_wire(inst: Instance, region: str) -> dict:
    locks = [{"LockReason": "security", "LockMsg": "locked for security"}] if inst.locked_for_security else []
    if inst.expired:
        locks.append({"LockReason": "financial", "LockMsg": "expired or in arrears"})
    return {
        "InstanceId": inst.instance_id,
        "InstanceName": inst.name,
        "HostName": inst.name,
        "RegionId": region,
        "ZoneId": inst.zone_id,
        "Status": inst.status,
        "OSType": inst.os_type,
        "OSName": "Windows Server 2022" if inst.os_type == "windows" else "Alibaba Cloud Linux 3",
        "ImageId": inst.image_id,
        "InstanceType": inst.instance_type,
        "InstanceChargeType": "PostPaid",
        "StoppedMode": inst.stopped_mode if inst.status == "Stopped" else "Not-applicable",
        "KeyPairName": inst.key_pair_name,
        "CreationTime": CREATED,
        "ExpiredTime": "2099-12-31T15:59Z",
        "OperationLocks": {"LockReason": locks},
        "HibernationOptions": {"Configured": inst.hibernation},
        "Tags": {"Tag": []},
    }


class EcsResponses:
    """One method an action; each returns the response body without RequestId."""

    def __init__(self, backend: EcsBackend):
        self.backend = backend

    def dispatch(self, action: str, params: dict) -> dict:
        method = {
            "DescribeDisks": self.describe_disks,
            "DescribeInstances": self.describe_instances,
            "StopInstance": self.stop_instance,
            "StartInstance": self.start_instance,
            "ReInitDisk": self.reinit_disk,
        }.get(action)
        if method is None:
            raise exc.InvalidAction()
        if params.get("Version", VERSION) != VERSION:
            raise exc.InvalidAction("The specified version is not supported.")
        return method(params)

    def _region(self, params: dict) -> str:
        region = params.get("RegionId")
        if not region:
            raise exc.MissingParameter("The input parameter RegionId that is mandatory for processing this request is not supplied.")
        if region != self.backend.region:
            raise exc.InvalidRegionId()
        return region

    def describe_disks(self, params: dict) -> dict:
        region = self._region(params)
        disk_type = params.get("DiskType", "all")
        if disk_type not in ("all", "system", "data"):
            raise exc.InvalidParameter("The specified parameter DiskType is not valid.")
        disks = self.backend.describe_disks(
            disk_ids=_id_list(params, "DiskIds"),
            instance_id=params.get("InstanceId"),
            disk_type=disk_type,
            tags=_tags(params),
        )
        chunk, paging = _page(params, disks)
        return {**paging, "Disks": {"Disk": [disk_to_wire(d, region) for d in chunk]}}

    def describe_instances(self, params: dict) -> dict:
        region = self._region(params)
        instances = self.backend.describe_instances(_id_list(params, "InstanceIds"))
        chunk, paging = _page(params, instances)
        return {**paging, "Instances": {"Instance": [instance_to_wire(i, region) for i in chunk]}}

    def stop_instance(self, params: dict) -> dict:
        instance_id = params.get("InstanceId") or self._missing("InstanceId")
        _bool(params, "ForceStop")
        mode = params.get("StoppedMode", "KeepCharging")
        if mode not in ("KeepCharging", "StopCharging"):
            raise exc.InvalidParameter("The specified parameter StoppedMode is not valid.")
        self.backend.stop_instance(instance_id, mode)
        return {}

    def start_instance(self, params: dict) -> dict:
        instance_id = params.get("InstanceId") or self._missing("InstanceId")
        self.backend.start_instance(instance_id)
        return {}

    def reinit_disk(self, params: dict) -> dict:
        disk_id = params.get("DiskId") or self._missing("DiskId")
        strategy = params.get("SecurityEnhancementStrategy")
        if strategy is not None and strategy not in ("Active", "Deactive"):
            raise exc.InvalidParameter("The specified parameter SecurityEnhancementStrategy is not valid.")
        self.backend.reinit_disk(
            disk_id,
            password=params.get("Password"),
            key_pair_name=params.get("KeyPairName"),
            auto_start=_bool(params, "AutoStartInstance"),
            security_enhancement_strategy=strategy,
        )
        return {}

    @staticmethod
    def _missing(name: str):
        raise exc.MissingParameter(f"The input parameter {name} that is mandatory for processing this request is not supplied.")
