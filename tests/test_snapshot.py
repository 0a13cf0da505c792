"""Evidence snapshots: the emulator's CreateSnapshot and DescribeSnapshots through the typed
ECS SDK (codes, fields, progress on the shared clock, failures, faults, ReInitDisk's
refusals), and reinit/snapshot.py's steps against it (one snapshot per event and disk,
continued across invocations, failures that stop the wipe)."""

from __future__ import annotations

import json

import pytest
from alibabacloud_ecs20140526 import models as ecs_models

from reinit.config import load_config
from reinit.context import Context
from reinit.ecs import Credentials, EcsApi
from reinit.errors import ReinitError
from reinit.log import Log
from reinit.snapshot import (
    DISK_TAG,
    EVENT_TAG,
    INSTANCE_TAG,
    EvidenceError,
    SnapshotPending,
    client_token,
    continuation_task_id,
    evidence_snapshot,
    tag_value,
    take_evidence_snapshot,
    wait_for_snapshot,
)
from tests.conftest import AK, LINUX_IMAGE, REGION, SECRET, TOKEN, base_seed, disk_id, instance_id
from tests.test_emulator import _keys, error_of, reinit, sdk

DISK, INSTANCE = disk_id(1), instance_id(1)
SNAPSHOT_SECONDS = 30.0  # the emulator's default


@pytest.fixture
def seed():
    seed = base_seed(3)
    extra = [  # (disk overrides, instance overrides)
        ({"SnapshotFails": 40}, {}),                             # 4: its snapshots fail at 40%
        ({"Category": "ephemeral_ssd"}, {}),                     # 5: a local disk
        ({}, {"LockedForSecurity": True}),                       # 6: instance locked
        ({}, {"Status": "Starting"}),                            # 7: instance neither Running nor Stopped
        ({"Category": "cloud_efficiency"}, {}),                  # 8: no instant access
        ({"SnapshotSeconds": 600}, {}),                          # 9: a long snapshot
    ]
    for n, (disk, inst) in enumerate(extra, start=4):
        seed["instances"].append({"InstanceId": instance_id(n), "Status": "Stopped", "ImageId": LINUX_IMAGE, **inst})
        seed["disks"].append({"DiskId": disk_id(n), "InstanceId": instance_id(n), "Type": "system",
                              "ImageId": LINUX_IMAGE, "Tags": {"reinit-allowed": "true"}, **disk})
    # Disk 3 has an automatic snapshot under way, made by a snapshot policy.
    seed["snapshots"] = [{"SnapshotId": "s-bp1auto0000000001", "SourceDiskId": disk_id(3), "Status": "progressing",
                          "Seconds": 20, "SnapshotType": "auto"}]
    return seed


def create(cloud, disk=DISK, **kw):
    return sdk(cloud).create_snapshot(ecs_models.CreateSnapshotRequest(disk_id=disk, **kw)).body.snapshot_id


def describe(cloud, region=REGION, **kw):
    return sdk(cloud).describe_snapshots(ecs_models.DescribeSnapshotsRequest(region_id=region, **kw)).body


def one(cloud, snapshot_id):
    found = describe(cloud, snapshot_ids=json.dumps([snapshot_id])).snapshots.snapshot
    return found[0] if found else None


def tag(key, value):
    return ecs_models.CreateSnapshotRequestTag(key=key, value=value)


# -- the emulator, through the typed SDK --------------------------------------------------
def test_a_snapshot_progresses_on_the_clock_and_keeps_what_it_was_given(cloud, clock):
    snapshot_id = create(cloud, retention_days=7, instant_access=False, snapshot_name="evidence-1",
                         description="kept before reinit", tag=[tag("case", "IR-7"), tag("owner", "")])
    assert snapshot_id.startswith("s-bp1")
    snap = one(cloud, snapshot_id)
    assert (snap.status, snap.progress, snap.remain_time, snap.available) == ("progressing", "0%", 30, False)
    assert (snap.source_disk_id, snap.source_disk_type, snap.retention_days, snap.instant_access) == (DISK, "system", 7, False)
    assert (snap.snapshot_name, snap.description, snap.snapshot_type) == ("evidence-1", "kept before reinit", "user")
    assert {(t.tag_key, t.tag_value) for t in snap.tags.tag} == {("case", "IR-7"), ("owner", "")}
    clock.advance(SNAPSHOT_SECONDS * 0.37)
    snap = one(cloud, snapshot_id)
    assert (snap.status, snap.progress, snap.remain_time) == ("progressing", "37%", 19)
    clock.advance(SNAPSHOT_SECONDS)
    snap = one(cloud, snapshot_id)
    assert (snap.status, snap.progress, snap.remain_time, snap.available) == ("accomplished", "100%", 0, True)


def test_describe_snapshots_answers_with_the_sdk_models_field_names(cloud):
    snapshot_id = create(cloud, retention_days=3, tag=[tag("k", "v")])
    sent = EcsApi(cloud.endpoint, REGION, Credentials(AK, SECRET, TOKEN)).call(
        "DescribeSnapshots", {"RegionId": REGION, "SnapshotIds": json.dumps([snapshot_id])})
    parsed = ecs_models.DescribeSnapshotsResponseBody().from_map(sent).to_map()
    assert _keys(sent) == _keys(parsed)  # every key the emulator sends is a field of the model
    assert sent["Snapshots"]["Snapshot"][0]["SnapshotId"] == snapshot_id




def test_reinitdisk_waits_for_the_snapshot_and_refuses_instant_access(cloud, clock):
    create(cloud)
    assert error_of(lambda: reinit(cloud, DISK)) == ("DiskCreatingSnapshot", 403)
    clock.advance(SNAPSHOT_SECONDS)
    assert reinit(cloud, DISK).status_code == 200
    # An instant-access snapshot (ESSD only): ReInitDisk refuses the disk while it exists.
    create(cloud, disk=disk_id(2), instant_access=True)
    clock.advance(SNAPSHOT_SECONDS)
    assert error_of(lambda: reinit(cloud, disk_id(2))) == ("DiskHasSnapshotsWithInstantAccessEnabled.OperationNotSupported", 400)
    assert error_of(lambda: create(cloud, disk=disk_id(8), instant_access=True)) == ("DiskCategory.OperationNotSupported", 400)
    assert cloud.ecs.disks[disk_id(2)].reinit_count == 0


def test_client_token_makes_one_snapshot_and_a_second_one_waits_its_turn(cloud, clock):
    first = create(cloud, client_token="tok-1", retention_days=5, tag=[tag("a", "1")])
    assert create(cloud, client_token="tok-1", retention_days=5, tag=[tag("a", "1")]) == first
    assert cloud.ecs.calls["CreateSnapshot"] == 1
    assert error_of(lambda: create(cloud, client_token="tok-1", retention_days=6, tag=[tag("a", "1")])) == (
        "IdempotentParameterMismatch", 403)
    assert error_of(lambda: create(cloud)) == ("IncorrectDiskStatus.CreatingSnapshot", 403)
    # An automatic snapshot in progress blocks a manual one and ReInitDisk alike.
    assert error_of(lambda: create(cloud, disk=disk_id(3))) == ("IncorrectDiskStatus.CreatingSnapshot", 403)
    assert error_of(lambda: reinit(cloud, disk_id(3))) == ("DiskCreatingSnapshot", 403)
    clock.advance(SNAPSHOT_SECONDS)
    assert create(cloud) != first  # done: another snapshot may start
    assert create(cloud, disk=disk_id(3))


# (what, disk, request, code, HTTP status): the error table of the CreateSnapshot page.
CREATE_ERRORS = [
    ("unknown disk", "d-bp1nosuchdisk00001", {}, "InvalidDiskId.NotFound", 404),
    ("name starting with auto", DISK, {"snapshot_name": "auto-evidence"}, "InvalidSnapshotName.Malformed", 400),
    ("name of one character", DISK, {"snapshot_name": "e"}, "InvalidSnapshotName.Malformed", 400),
    ("name with a URL", DISK, {"snapshot_name": "see-http://x"}, "InvalidSnapshotName.Malformed", 400),
    ("description starting with a URL", DISK, {"description": "https://evil"}, "InvalidDescription.Malformed", 404),
    ("retention of 0 days", DISK, {"retention_days": 0}, "InvalidParameter", 400),
    ("retention over 65536 days", DISK, {"retention_days": 65537}, "InvalidParameter", 400),
    ("client token over 64 characters", DISK, {"client_token": "x" * 65}, "InvalidParameter", 400),
    ("tag key starting with acs:", DISK, {"tag": [tag("acs:owner", "x")]}, "InvalidTagKey.Malformed", 400),
    ("tag value with a URL", DISK, {"tag": [tag("k", "http://x")]}, "InvalidTagValue.Malformed", 400),
    ("the same tag key twice", DISK, {"tag": [tag("k", "1"), tag("k", "2")]}, "Duplicate.TagKey", 400),
    ("21 tags", DISK, {"tag": [tag(f"k{n}", "v") for n in range(21)]}, "QuotaExceed.Tags", 403),
    ("local disk", disk_id(5), {}, "DiskCategory.OperationNotSupported", 400),
    ("instance locked for security", disk_id(6), {}, "InstanceLockedForSecurity", 403),
    ("instance neither Running nor Stopped", disk_id(7), {}, "IncorrectInstanceStatus", 400),
]


@pytest.mark.ram_off  # the emulator's own answers (an unknown disk has no tag RAM could read)
@pytest.mark.parametrize("case", CREATE_ERRORS, ids=[c[0] for c in CREATE_ERRORS])
def test_create_snapshot_refusals_reach_the_sdk_as_ecs_sends_them(cloud, case):
    _, disk, request, code, status = case
    assert error_of(lambda: create(cloud, disk=disk, **request)) == (code, status)
    assert cloud.ecs.calls["CreateSnapshot"] == 0


def test_a_reinitializing_disk_cannot_be_snapshotted(cloud):
    reinit(cloud, DISK)
    assert error_of(lambda: create(cloud)) == ("IncorrectDiskStatus", 403)


def test_describe_snapshots_filters_and_refusals(cloud, clock):
    kept = create(cloud, tag=[tag(EVENT_TAG, "ev-1"), tag(DISK_TAG, DISK)])
    other = create(cloud, disk=disk_id(2), tag=[tag(EVENT_TAG, "ev-2")])
    ids = lambda body: {s.snapshot_id for s in body.snapshots.snapshot}  # noqa: E731
    assert ids(describe(cloud, disk_id=DISK)) == {kept}
    assert ids(describe(cloud, tag=[ecs_models.DescribeSnapshotsRequestTag(key=EVENT_TAG, value="ev-1")])) == {kept}
    assert ids(describe(cloud, tag=[ecs_models.DescribeSnapshotsRequestTag(key=EVENT_TAG)])) == {kept, other}
    assert ids(describe(cloud, snapshot_type="auto")) == {"s-bp1auto0000000001"}
    assert ids(describe(cloud, status="accomplished")) == set()
    clock.advance(SNAPSHOT_SECONDS)
    assert ids(describe(cloud, status="accomplished")) == {kept, other, "s-bp1auto0000000001"}
    assert ids(describe(cloud, source_disk_type="Data")) == set()  # case-insensitive, as the page says
    assert error_of(lambda: describe(cloud, status="done")) == ("InvalidStatus.NotFound", 404)
    assert error_of(lambda: describe(cloud, snapshot_type="manual")) == ("InvalidSnapshotType.NotFound", 404)
    assert error_of(lambda: describe(cloud, snapshot_ids=json.dumps([f"s-{n}" for n in range(101)]))) == (
        "InvalidSnapshotIds.Malformed", 403)
    assert error_of(lambda: describe(cloud, tag=[ecs_models.DescribeSnapshotsRequestTag(value="orphan")])) == (
        "InvalidTag.Mismatch", 400)
    assert error_of(lambda: describe(cloud, region=None)) == ("MissingParameter", 400)


def test_snapshots_fail_when_seeded_or_injected(cloud, clock):
    seeded = create(cloud, disk=disk_id(4))
    clock.advance(SNAPSHOT_SECONDS * 0.39)
    assert (one(cloud, seeded).status, one(cloud, seeded).progress) == ("progressing", "39%")
    clock.advance(SNAPSHOT_SECONDS * 0.02)
    assert (one(cloud, seeded).status, one(cloud, seeded).progress) == ("failed", "40%")
    assert cloud.ecs.status_of(disk_id(4)) == "In_use"  # a failed snapshot leaves the disk as it was
    cloud.ecs.fail_next_snapshots(DISK, times=1, at_percent=10)
    injected = create(cloud)
    clock.advance(SNAPSHOT_SECONDS)
    assert (one(cloud, injected).status, one(cloud, injected).progress) == ("failed", "10%")
    healthy = create(cloud)  # the next one is healthy again
    clock.advance(SNAPSHOT_SECONDS / 2)
    cloud.ecs.fail_snapshot(healthy)
    clock.advance(SNAPSHOT_SECONDS)
    assert (one(cloud, healthy).status, one(cloud, healthy).progress) == ("failed", "50%")
    assert reinit(cloud, DISK).status_code == 200  # no snapshot in progress any more


def test_faults_strike_both_snapshot_apis(cloud):
    cloud.faults.inject("DescribeSnapshots", code="ServiceUnavailable", status=503)
    assert error_of(lambda: describe(cloud)) == ("ServiceUnavailable", 503)
    # `after`: ECS made the snapshot and answered 500; the same ClientToken finds it again.
    cloud.faults.inject("CreateSnapshot", code="InternalError", status=500, when="after")
    assert error_of(lambda: create(cloud, client_token="tok-after")) == ("InternalError", 500)
    again = create(cloud, client_token="tok-after")
    assert [s.snapshot_id for s in describe(cloud, disk_id=DISK).snapshots.snapshot] == [again]
    cloud.faults.throttle("CreateSnapshot", per_second=1)
    create(cloud, disk=disk_id(2))
    assert error_of(lambda: create(cloud, disk=disk_id(2))) == ("Throttling", 400)


def test_a_snapshot_is_released_when_its_retention_ends(cloud, clock):
    snapshot_id = create(cloud, retention_days=1)
    clock.advance(86399)
    assert one(cloud, snapshot_id).status == "accomplished"
    clock.advance(1)
    assert one(cloud, snapshot_id) is None


# -- reinit/snapshot.py against the emulator ------------------------------------------------
def context(cloud, clock, env, seconds=300.0) -> Context:
    """What app.py builds for one invocation, with `seconds` of it left."""
    ecs = EcsApi(cloud.endpoint, REGION, Credentials(AK, SECRET, TOKEN))
    return Context(ecs, load_config(env), clock.now, clock.advance, lambda: 0.5, clock.now() + seconds,
                   Log({"invocation": "test"}))


def test_evidence_snapshot_then_the_wipe(cloud, clock, env):
    ctx = context(cloud, clock, env)
    snapshot_id = evidence_snapshot(ctx, DISK, INSTANCE, "event-1", retention_days=30)
    snap = one(cloud, snapshot_id)
    assert (snap.status, snap.retention_days, snap.instant_access, snap.source_disk_id) == ("accomplished", 30, False, DISK)
    tags = {t.tag_key: t.tag_value for t in snap.tags.tag}
    assert (tags[EVENT_TAG], tags[DISK_TAG], tags[INSTANCE_TAG]) == ("event-1", DISK, INSTANCE)
    create_call = cloud.calls("CreateSnapshot")[0]["Params"]
    assert (create_call["InstantAccess"], create_call["ClientToken"]) == ("false", client_token("event-1", DISK))
    assert ctx.ecs.reinit_disk(DISK)  # the disk accepts the wipe now
    # The same event again: the same snapshot, found by its tags, and no second CreateSnapshot.
    assert evidence_snapshot(context(cloud, clock, env), DISK, INSTANCE, "event-1", 30) == snapshot_id
    assert len(cloud.calls("CreateSnapshot")) == 1
    # Another event makes its own.
    clock.advance(10)
    assert evidence_snapshot(context(cloud, clock, env), DISK, INSTANCE, "event-2", 30) != snapshot_id


def test_a_snapshot_that_outlasts_the_invocation_is_continued_on_the_same_snapshot(cloud, clock, env):
    long_disk = disk_id(9)
    with pytest.raises(SnapshotPending) as pending:
        evidence_snapshot(context(cloud, clock, env, seconds=60), long_disk, instance_id(9), "event-9", 30)
    snapshot_id = pending.value.snapshot_id
    assert one(cloud, snapshot_id).status == "progressing"
    assert pending.value.progress == one(cloud, snapshot_id).progress != "0%"
    assert cloud.ecs.disks[long_disk].reinit_count == 0
    as_error = pending.value.as_error()
    assert (as_error.code, as_error.retryable, as_error.snapshot_id) == ("WaitTimeout", True, snapshot_id)
    # The next invocation (with a fresh deadline) picks the same snapshot up and sees it through.
    ctx = context(cloud, clock, env, seconds=900)
    assert take_evidence_snapshot(ctx, long_disk, instance_id(9), "event-9", 30) == snapshot_id
    assert wait_for_snapshot(ctx, snapshot_id, long_disk)["Status"] == "accomplished"
    assert len(cloud.calls("CreateSnapshot")) == 1
    # It slept as ECS's RemainTime suggested (capped), not every poll interval for ten minutes.
    assert len(cloud.calls("DescribeSnapshots")) < 100
    assert continuation_task_id("event-9", long_disk) == continuation_task_id("event-9", long_disk)
    assert continuation_task_id("event-9", long_disk) != continuation_task_id("event-9", DISK)


def test_a_failed_snapshot_is_snapshot_failed_and_nothing_is_wiped(cloud, clock, env):
    with pytest.raises(EvidenceError) as failure:
        evidence_snapshot(context(cloud, clock, env), disk_id(4), instance_id(4), "event-4", 30)
    err = failure.value
    assert (err.code, err.status, err.retryable, err.outcome) == ("SnapshotFailed", 500, False, "Failed")
    assert err.snapshot_id and "40%" in err.message
    assert cloud.ecs.disks[disk_id(4)].reinit_count == 0
    # Again for the same event: the same (failed) snapshot, not a second one.
    with pytest.raises(EvidenceError):
        evidence_snapshot(context(cloud, clock, env), disk_id(4), instance_id(4), "event-4", 30)
    assert len(cloud.calls("CreateSnapshot")) == 1


def test_a_refused_create_snapshot_says_why_and_whether_to_retry(cloud, clock, env):
    with pytest.raises(EvidenceError) as busy:  # an automatic snapshot is under way
        take_evidence_snapshot(context(cloud, clock, env), disk_id(3), instance_id(3), "event-3", 30)
    assert (busy.value.code, busy.value.status, busy.value.retryable) == ("SnapshotFailed", 500, True)
    assert "IncorrectDiskStatus.CreatingSnapshot" in busy.value.message
    with pytest.raises(EvidenceError) as local:
        take_evidence_snapshot(context(cloud, clock, env), disk_id(5), instance_id(5), "event-5", 30)
    assert (local.value.code, local.value.retryable) == ("SnapshotFailed", False)


@pytest.mark.parametrize("when", ["after", "drop_after"])
def test_create_snapshot_without_a_clear_answer_is_repeated_and_makes_one_snapshot(cloud, clock, env, when):
    cloud.faults.inject("CreateSnapshot", code="InternalError", status=500, when=when)
    snapshot_id = evidence_snapshot(context(cloud, clock, env), DISK, INSTANCE, "event-1", 30)
    assert [c["Status"] for c in cloud.calls("CreateSnapshot")] == [500 if when == "after" else None, 200]
    assert [s.snapshot_id for s in describe(cloud, disk_id=DISK).snapshots.snapshot] == [snapshot_id]


def test_create_snapshot_that_fails_for_good_is_service_unavailable(cloud, clock, env):
    cloud.faults.inject("CreateSnapshot", code="ServiceUnavailable", status=503, times=100)
    with pytest.raises(ReinitError) as err:
        take_evidence_snapshot(context(cloud, clock, env), DISK, INSTANCE, "event-1", 30)
    assert (err.value.code, err.value.status, err.value.retryable) == ("ServiceUnavailable", 503, True)
    assert describe(cloud, disk_id=DISK).snapshots.snapshot == []


def test_the_wait_rides_out_passing_describe_faults(cloud, clock, env):
    cloud.faults.inject("DescribeSnapshots", code="ServiceUnavailable", status=503, times=2, skip=2)
    assert evidence_snapshot(context(cloud, clock, env), DISK, INSTANCE, "event-1", 30)
    assert [c["Status"] for c in cloud.calls("DescribeSnapshots")].count(503) == 2


def test_event_ids_that_are_no_tag_value_are_kept_by_digest(cloud, clock, env):
    odd = "https://hooks.example/" + "x" * 200
    assert tag_value(odd).startswith("sha256:") and len(tag_value(odd)) <= 128
    assert tag_value("plain-id") == "plain-id"
    assert len(client_token(odd, DISK)) <= 64 and client_token(odd, DISK).isascii()
    first = evidence_snapshot(context(cloud, clock, env), DISK, INSTANCE, odd, 30)
    assert evidence_snapshot(context(cloud, clock, env), DISK, INSTANCE, odd, 30) == first
    assert len(cloud.calls("CreateSnapshot")) == 1


def test_the_ram_policy_allows_snapshots_only_of_disks_it_may_wipe():
    import pathlib
    policy = json.loads((pathlib.Path(__file__).resolve().parents[1] / "ram" / "reinit-policy.json").read_text())
    granting = {s["Sid"]: s for s in policy["Statement"] if {"ecs:CreateSnapshot", "ecs:DescribeSnapshots",
                                                                "ecs:TagResources"} & set(s["Action"])
                and not (s["Resource"] == "acs:ecs:*:*:disk/*" and "ecs:CreateSnapshot" not in s["Action"])}
    # (the disk marks are not snapshots: the approval's, docs/approval.md, and the wipe's, docs/idempotency.md)
    on_disks, on_snapshots, listing = (granting[sid] for sid in (
        "SnapshotOnlyDisksThatCarryTheRequiredTag", "CreateAndTagTheEvidenceSnapshotsOnly", "FollowEvidenceSnapshots"))
    assert len(granting) == 3
    # CreateSnapshot is authorized on the disk and on the new snapshot (RAM's "Create a snapshot" example).
    assert (on_disks["Action"], on_disks["Resource"]) == (["ecs:CreateSnapshot"], "acs:ecs:*:*:disk/*")
    assert on_disks["Condition"] == {"StringEquals": {"acs:ResourceTag/reinit-allowed": "true"}}  # the ReInitDisk tag
    assert on_snapshots["Resource"] == "acs:ecs:*:*:snapshot/*" and "Condition" not in on_snapshots
    assert (listing["Action"], listing["Resource"]) == (["ecs:DescribeSnapshots"], "*")  # a list action


def test_in_a_batch_the_snapshot_calls_are_paced_like_every_other_api(cloud, clock, env):
    from dataclasses import replace

    from reinit.pace import PacedEcs, Paces
    paces = Paces(clock.now, clock.advance, rate=1.0)
    ctx = context(cloud, clock, env, seconds=900)
    ctx = replace(ctx, ecs=PacedEcs(ctx.ecs, paces))
    started = clock.now()
    ids = [evidence_snapshot(ctx, disk_id(n), instance_id(n), "batch-1", 30) for n in (1, 2)]
    assert len(set(ids)) == 2 and {"CreateSnapshot", "DescribeSnapshots"} <= set(paces.pacers)
    creates = [c for c in cloud.calls("CreateSnapshot") if c["Status"] == 200]
    assert len(creates) == 2 and clock.now() - started >= 2 * SNAPSHOT_SECONDS
