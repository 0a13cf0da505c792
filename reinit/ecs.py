"""The only place that touches the ECS SDK: one thin typed call per action.

It uses the ECS SDK's own core (alibabacloud_tea_openapi: the same signing, HTTP and
error handling the generated ECS client wraps) through the documented generic call,
`call_api` with `Params`, so that a cold start does not load the ECS client's 1,152
generated model files. Responses are the wire JSON, with the field names of the ECS SDK's
response models. SDK exceptions become EcsCallError here, and nowhere else.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

VERSION = "2014-05-26"
PAGE = 100  # the most DescribeDisks / DescribeInstances return in one call


class EcsCallError(Exception):
    """An ECS call that did not succeed.

    kind: `refused` (ECS answered 4xx: it did not carry the action out), `throttled`,
    `server` (5xx: it may have run), `network` (no answer: it may have run), or
    `unreachable` (no connection: it did not run).
    """

    def __init__(self, action: str, kind: str, code: str, message: str, status: int | None = None,
                 request_id: str | None = None):
        super().__init__(f"{action}: {code}: {message}")
        self.action, self.kind, self.code, self.message = action, kind, code, message
        self.status, self.request_id = status, request_id
        self.gave_up: str | None = None  # set by the Retrier that stopped retrying it: why

    @property
    def ambiguous(self) -> bool:
        return self.kind in ("server", "network")


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    access_key_secret: str
    security_token: str | None = None

    def __repr__(self) -> str:  # never print the secret or the token
        return f"Credentials(access_key_id={self.access_key_id!r}, <secret redacted>)"


def classify_sdk_error(action: str, err: Exception) -> EcsCallError:
    """Any Alibaba Cloud SDK failure (ECS or FC: the same core) as one narrow EcsCallError."""
    from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

    if isinstance(err, AlibabaCloudException):
        data = err.data if isinstance(err.data, dict) else {}
        code = str(err.code or data.get("Code") or "Unknown")
        status = err.status_code
        message = str(data.get("Message") or err.message or code)
        request_id = data.get("RequestId") or (err.request_id if err.request_id not in (None, "None") else None)
        if code.startswith("Throttling"):
            kind = "throttled"
        elif status is not None and status >= 500:
            kind = "server"
        else:
            kind = "refused"
        return EcsCallError(action, kind, code, message, status, request_id)
    inner = getattr(err, "inner_exception", err)
    # urllib3 quotes the request URL in its errors, and the query string carries Password.
    text = re.sub(r"\?[^\s'\"]*", "?<query removed>", f"{type(inner).__name__}: {inner}")
    refused = any(s in text for s in ("NewConnectionError", "Connection refused", "Failed to resolve", "NameResolutionError"))
    kind = "unreachable" if refused else "network"
    return EcsCallError(action, kind, "NetworkError", text[:300])


def tag_params(tags) -> dict:
    """(key, value) pairs as ECS's numbered Tag.N.Key / Tag.N.Value parameters."""
    params = {}
    for n, (key, value) in enumerate(tags or (), start=1):
        params[f"Tag.{n}.Key"] = key
        params[f"Tag.{n}.Value"] = value
    return params


class EcsApi:
    """ECS in one region, with one set of credentials."""

    def __init__(self, endpoint: str, region: str, credentials: Credentials,
                 connect_timeout_ms: int = 5000, read_timeout_ms: int = 10000):
        from alibabacloud_tea_openapi.client import Client
        from alibabacloud_tea_openapi.utils_models import Config

        url = urlsplit(endpoint)
        self.region = region
        self.credentials = credentials
        self._client = Client(Config(
            access_key_id=credentials.access_key_id,
            access_key_secret=credentials.access_key_secret,
            security_token=credentials.security_token,
            endpoint=url.netloc,
            protocol=url.scheme,
            region_id=region,
            connect_timeout=connect_timeout_ms,
            read_timeout=read_timeout_ms,
        ))

    def call(self, action: str, query: dict) -> dict:
        from alibabacloud_tea_openapi.utils import Utils
        from alibabacloud_tea_openapi.utils_models import OpenApiRequest, Params
        from darabonba.runtime import RuntimeOptions

        params = Params(action=action, version=VERSION, protocol="HTTPS", pathname="/", method="POST",
                        auth_type="AK", style="RPC", req_body_type="formData", body_type="json")
        request = OpenApiRequest(query=Utils.query({k: v for k, v in query.items() if v is not None}))
        try:
            return self._client.call_api(params, request, RuntimeOptions())["body"]
        except Exception as err:  # every SDK failure becomes one narrow error
            raise classify_sdk_error(action, err) from None

    # -- reads -------------------------------------------------------------------
    def describe_disks(self, disk_ids=None, instance_id=None, disk_type=None, tags=None,
                       next_token=None) -> tuple[list[dict], str]:
        """One page (up to 100) of disks, and the NextToken ("" when done)."""
        return self.page("DescribeDisks", "Disks", "Disk", next_token, tags, {
            "DiskIds": json.dumps(list(disk_ids)) if disk_ids is not None else None,
            "InstanceId": instance_id, "DiskType": disk_type})

    def page(self, action: str, outer: str, inner: str, next_token, tags, query: dict) -> tuple[list[dict], str]:
        """One page of a paged Describe call (MaxResults/NextToken), filtered by tags."""
        query = {"RegionId": self.region, "MaxResults": PAGE, "NextToken": next_token or None, **query}
        query.update(tag_params(tags))
        body = self.call(action, query)
        return (body.get(outer) or {}).get(inner) or [], body.get("NextToken") or ""

    def describe_instances(self, instance_ids) -> list[dict]:
        body = self.call("DescribeInstances", {
            "RegionId": self.region, "InstanceIds": json.dumps(list(instance_ids)), "MaxResults": PAGE,
        })
        return (body.get("Instances") or {}).get("Instance") or []

    # -- writes ------------------------------------------------------------------
    def stop_instance(self, instance_id: str) -> str | None:
        # KeepCharging so that the instance is sure to start again afterwards.
        body = self.call("StopInstance", {"InstanceId": instance_id, "ForceStop": "false", "StoppedMode": "KeepCharging"})
        return body.get("RequestId")

    def start_instance(self, instance_id: str) -> str | None:
        return self.call("StartInstance", {"InstanceId": instance_id}).get("RequestId")

    def tag_resources(self, resource_type: str, resource_ids: list[str], tags: list[tuple[str, str]]) -> str | None:
        query = {"RegionId": self.region, "ResourceType": resource_type}
        query.update({f"ResourceId.{n}": rid for n, rid in enumerate(resource_ids, start=1)})
        query.update(tag_params(tags))
        return self.call("TagResources", query).get("RequestId")

    def untag_resources(self, resource_type: str, resource_ids: list[str], keys: list[str]) -> str | None:
        query = {"RegionId": self.region, "ResourceType": resource_type}
        query.update({f"ResourceId.{n}": rid for n, rid in enumerate(resource_ids, start=1)})
        query.update({f"TagKey.{n}": key for n, key in enumerate(keys, start=1)})
        return self.call("UntagResources", query).get("RequestId")

    def reinit_disk(self, disk_id: str, password=None, key_pair_name=None, auto_start=None,
                    security_enhancement_strategy=None) -> str | None:
        body = self.call("ReInitDisk", {
            "DiskId": disk_id,
            "Password": password.reveal() if password is not None else None,
            "KeyPairName": key_pair_name,
            "AutoStartInstance": None if auto_start is None else ("true" if auto_start else "false"),
            "SecurityEnhancementStrategy": security_enhancement_strategy,
        })
        return body.get("RequestId")

    # -- snapshots ---------------------------------------------------------------
    def create_snapshot(self, disk_id: str, *, retention_days: int | None = None, tags=(), client_token=None,
                        name=None, description=None, instant_access: bool = False) -> str | None:
        """CreateSnapshot; returns the SnapshotId. `tags`: (key, value) pairs. A repeat with
        the same ClientToken answers the first call's SnapshotId instead of making another."""
        query = {"DiskId": disk_id, "SnapshotName": name, "Description": description,
                 "RetentionDays": retention_days, "InstantAccess": "true" if instant_access else "false",
                 "ClientToken": client_token}
        query.update(tag_params(tags))
        return self.call("CreateSnapshot", query).get("SnapshotId")

    def describe_snapshots(self, snapshot_ids=None, disk_id=None, status=None, tags=None,
                           next_token=None) -> tuple[list[dict], str]:
        """One page (up to 100) of snapshots in this region, and the NextToken ("" when done)."""
        return self.page("DescribeSnapshots", "Snapshots", "Snapshot", next_token, tags, {
            "SnapshotIds": json.dumps(list(snapshot_ids)) if snapshot_ids is not None else None,
            "DiskId": disk_id, "Status": status})
