"""Several regions: the emulator holds disks in more than one and a disk lives in exactly one
(through the typed ECS SDK), ECS clients are made once per region and reused, and the
evidence snapshot is taken in the disk's own region."""

from __future__ import annotations

import json

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi import utils_models as openapi_models

from emulator.clock import ManualClock
from emulator.server import Emulator
from reinit.clients import ClientCache
from reinit.config import ecs_endpoint_for, load_config
from reinit.context import Context
from reinit.ecs import Credentials, EcsApi, EcsCallError
from reinit.log import Log
from reinit.snapshot import evidence_snapshot
from tests.conftest import AK, LINUX_IMAGE, REGION, SECRET, TOKEN, base_seed, disk_id, instance_id
from tests.test_emulator import error_of

OTHER = "cn-shanghai"
SH_DISK, SH_INSTANCE = "d-uf6test00000000001", "i-uf6test00000000001"
CREDS = Credentials(AK, SECRET, TOKEN)


@pytest.fixture
def seed():
    seed = base_seed(2)
    seed["regions"] = {OTHER: {
        "keyPairs": ["shanghai-key"],
        "instances": [{"InstanceId": SH_INSTANCE, "Status": "Stopped", "ImageId": LINUX_IMAGE,
                       "Tags": {"reinit-allowed": "true"}}],
        "disks": [{"DiskId": SH_DISK, "InstanceId": SH_INSTANCE, "Type": "system", "ImageId": LINUX_IMAGE,
                   "Tags": {"reinit-allowed": "true", "fleet": "lab"}}],
    }}
    return seed


def sdk(cloud, region=REGION) -> EcsClient:
    return EcsClient(openapi_models.Config(access_key_id=AK, access_key_secret=SECRET, security_token=TOKEN,
                                           endpoint=cloud.endpoint.split("//")[1], protocol="http", region_id=region))


def disks_in(cloud, region, **kw) -> set[str]:
    body = sdk(cloud, region).describe_disks(ecs_models.DescribeDisksRequest(region_id=region, **kw)).body
    return {d.disk_id for d in body.disks.disk}


def test_a_disk_lives_in_one_region_only(cloud):
    assert disks_in(cloud, REGION) == {disk_id(1), disk_id(2)}
    assert disks_in(cloud, OTHER) == {SH_DISK}
    assert disks_in(cloud, OTHER, disk_ids=json.dumps([disk_id(1), SH_DISK])) == {SH_DISK}
    # Selection by tag stays within the region asked: both regions have `fleet=lab` disks.
    assert disks_in(cloud, OTHER, tag=[ecs_models.DescribeDisksRequestTag(key="fleet", value="lab")]) == {SH_DISK}
    found = sdk(cloud, OTHER).describe_disks(ecs_models.DescribeDisksRequest(region_id=OTHER)).body.disks.disk[0]
    assert (found.region_id, found.zone_id) == (OTHER, f"{OTHER}-h")
    instances = sdk(cloud, OTHER).describe_instances(ecs_models.DescribeInstancesRequest(region_id=OTHER)).body
    assert [(i.instance_id, i.region_id) for i in instances.instances.instance] == [(SH_INSTANCE, OTHER)]
    assert error_of(lambda: disks_in(cloud, "xx-nowhere-1")) == ("InvalidRegionId.MalFormed", 400)


def test_actions_by_id_act_in_the_region_that_holds_the_resource(cloud):
    api = EcsApi(cloud.endpoint, OTHER, CREDS)
    assert api.reinit_disk(SH_DISK)  # no RegionId: found where it lives
    assert cloud.ecs.disks[SH_DISK].reinit_count == 1
    # A RegionId that does not hold the resource: not found there.
    with pytest.raises(EcsCallError) as err:
        api.call("StartInstance", {"InstanceId": SH_INSTANCE, "RegionId": REGION})
    assert (err.value.code, err.value.status) == ("InvalidInstanceId.NotFound", 404)
    with pytest.raises(EcsCallError) as err:
        api.call("ReInitDisk", {"DiskId": disk_id(1), "RegionId": OTHER})
    assert (err.value.code, err.value.status) == ("InvalidDiskId.NotFound", 404)


def test_key_pairs_belong_to_their_region(cloud, clock):
    api = EcsApi(cloud.endpoint, OTHER, CREDS)
    with pytest.raises(EcsCallError) as err:
        api.reinit_disk(SH_DISK, key_pair_name="ops-key")  # a cn-hangzhou key pair
    assert err.value.code == "InvalidKeyPairName.NotFound"
    assert api.reinit_disk(SH_DISK, key_pair_name="shanghai-key")
    assert cloud.ecs.disks[SH_DISK].last_reinit["KeyPairName"] == "shanghai-key"


def test_snapshots_are_listed_in_their_disks_region(cloud, clock):
    snapshot_id = sdk(cloud, OTHER).create_snapshot(ecs_models.CreateSnapshotRequest(disk_id=SH_DISK)).body.snapshot_id
    assert snapshot_id.startswith("s-uf6")  # cn-shanghai's id prefix

    def listed(region):
        body = sdk(cloud, region).describe_snapshots(ecs_models.DescribeSnapshotsRequest(region_id=region)).body
        return [s.snapshot_id for s in body.snapshots.snapshot]

    assert (listed(OTHER), listed(REGION)) == ([snapshot_id], [])


def test_single_region_seeds_keep_their_one_region():
    emu = Emulator(base_seed(1), clock=ManualClock())
    assert (emu.ecs.region, emu.ecs.regions) == (REGION, {REGION})
    assert emu.ecs.disks[disk_id(1)].region == REGION
    emu.ecs.add_disk({"DiskId": "d-bp1added0000000001", "InstanceId": instance_id(1), "Type": "data"})
    assert emu.ecs.disks["d-bp1added0000000001"].region == REGION


def test_the_sample_fleet_has_its_incident_disk_in_cn_shanghai():
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[1]
    emu = Emulator(json.loads((root / "emulator" / "fleet.json").read_text()), clock=ManualClock())
    event = json.loads((root / "events" / "eventbridge-custom-bus.json").read_text())
    instance = event["data"]["instanceId"]
    assert event["data"]["Snapshot"] is True
    assert emu.ecs.instances[instance].region == event["aliyunregionid"] == OTHER
    assert [d.disk_id for d in emu.ecs.describe_disks(instance_id=instance, region=OTHER)] == ["d-uf6incident000001"]


# -- clients per region ---------------------------------------------------------------------
def test_ecs_clients_are_made_once_per_region_and_reused(env):
    cache, config = ClientCache(), load_config(env)
    home, publisher = cache.get(config, CREDS)
    assert cache.ecs_for(config, CREDS) is home and home.region == REGION
    shanghai = cache.ecs_for(config, CREDS, OTHER)
    assert shanghai.region == OTHER and shanghai is not home
    assert cache.ecs_for(config, CREDS, OTHER) is shanghai
    assert cache.get(config, CREDS) == (home, publisher)  # the topic stays in the function's region
    assert cache.builds == 2
    rotated = Credentials("STS.rotated", "rotated-secret", "rotated-token")
    fresh = cache.ecs_for(config, rotated, OTHER)
    assert fresh is not shanghai and fresh.credentials == rotated
    assert cache.builds == 3
    assert cache.ecs_for(config, CREDS, OTHER) is not shanghai  # the old credentials' clients were dropped


def test_each_region_has_its_endpoint_unless_one_is_configured(env):
    assert ecs_endpoint_for(load_config(env), OTHER) == env["REINIT_ECS_ENDPOINT"]  # the emulator serves all
    plain = load_config({"REINIT_REGION": REGION})
    assert ecs_endpoint_for(plain, REGION) == "https://ecs.cn-hangzhou.aliyuncs.com"
    assert ecs_endpoint_for(plain, OTHER) == "https://ecs.cn-shanghai.aliyuncs.com"
    override = load_config({"REINIT_REGION": REGION, "REINIT_ECS_ENDPOINT": "https://ecs-vpc.example.internal"})
    assert ecs_endpoint_for(override, OTHER) == "https://ecs-vpc.example.internal"


def test_the_evidence_snapshot_is_taken_in_the_disks_region(cloud, clock, env):
    config = load_config(env)
    ecs = ClientCache().ecs_for(config, CREDS, OTHER)
    ctx = Context(ecs, config, clock.now, clock.advance, lambda: 0.5, clock.now() + 300, Log())
    snapshot_id = evidence_snapshot(ctx, SH_DISK, SH_INSTANCE, "event-sh", 30)
    snap = cloud.ecs.snapshots[snapshot_id]
    assert (snap.region, snap.source_disk_id, snap.status(clock.now())) == (OTHER, SH_DISK, "accomplished")
    assert [c["Params"]["RegionId"] for c in cloud.calls("DescribeSnapshots")] == [OTHER] * len(cloud.calls("DescribeSnapshots"))
    assert ecs.reinit_disk(SH_DISK)
