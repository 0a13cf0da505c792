"""RAM enforced in the local cloud: ram/reinit-policy.json is sufficient (every call the
function makes passes) and necessary (without any one statement, a named path breaks), and
the cloud itself refuses an untagged disk even where the function's own guard is off.

The walk drives the real handler through the emulator, which evaluates the policy on every
ECS, MNS and FC call, and on FC's failure destination (emulator/ram).
"""

from __future__ import annotations

import json

import pytest

import index
from emulator.ram import Policy, Resource
from emulator.ram.calls import CALLS
from reinit.app import InvocationFailed
from tests.conftest import (
    POLICY,
    WEBHOOK_SECRET,
    base_seed,
    disk_id,
    instance_id,
    load_event,
    member_account_seed,
)

FAILURES = "reinit-failures"  # s.yaml's onFailure destination
HOME, MEMBER = "1234567890123456", "1987654321098765"
M_DISK, M_INSTANCE = "d-bp1member00000001", "i-bp1member00000001"
APPROVER_SECRET = "apsec-test-fedcba9876543210"
KMS_HOOK = "whsec-from-kms-0123456789abcdef"
STORE: list[str] = []  # the idempotency store approved_wipe needs (approval_store)


@pytest.fixture
def approval_store(redis_url):
    """Approval needs the store; only approved_wipe uses it (the other paths share an event id)."""
    import redis
    redis.Redis.from_url(redis_url).flushdb()
    STORE[:] = [redis_url]
    yield redis_url
    STORE.clear()


@pytest.fixture
def seed():
    seed = base_seed(5)
    del seed["disks"][4]["Tags"]["fleet"]  # the approval path's disk: not in the split batch's selection
    seed["topics"].append(FAILURES)
    seed["accountId"] = HOME
    seed["accounts"] = {MEMBER: member_account_seed(M_DISK, M_INSTANCE, (HOME,))}  # its role trusts this account
    return seed


def _run(invoke, event, **kw):
    try:
        return invoke(event, **kw)
    except InvocationFailed as failed:  # the platform would retry; the walk looks at the cloud
        return json.loads(str(failed))


def _register(cloud, env, **kw):
    env.update(REINIT_FC_ENDPOINT=cloud.endpoint, REINIT_FUNCTION_NAME="reinit")
    cloud.fc.register("reinit", lambda event, context: index.handler(event, context), **kw)


# -- the paths: each returns whether it did its whole job ------------------------------
def single_wipe(invoke, cloud, env):
    """A running instance: DescribeDisks/Instances, StopInstance, ReInitDisk (which starts it), the outcome."""
    cloud.ecs.instances[instance_id(1)].status = "Running"
    before = invoke.reinit_count(disk_id(1))
    answer = _run(invoke, {"DiskId": disk_id(1), "StopInstance": True})
    published = [m for m in invoke.messages() if m.get("DiskId") == disk_id(1)]
    return answer.get("Outcome") == "Succeeded" and invoke.reinit_count(disk_id(1)) == before + 1 and bool(published)


def restart_after_a_refusal(invoke, cloud, env):
    """ECS refuses the wipe of a disk whose instance the function stopped: StartInstance."""
    cloud.ecs.instances[instance_id(1)].status = "Running"
    cloud.faults.inject("ReInitDisk", code="InvalidOperation.ReInitUnsupported", status=403)
    answer = _run(invoke, {"DiskId": disk_id(1), "StopInstance": True})
    return answer.get("InstanceRestarted") == instance_id(1)


def evidence_snapshot(invoke, cloud, env):
    """A wipe that keeps a snapshot first: CreateSnapshot, DescribeSnapshots, TagResources."""
    before = invoke.reinit_count(disk_id(2))
    answer = _run(invoke, {"DiskId": disk_id(2), "Snapshot": True})
    consumed = [c for c in cloud.calls("TagResources") if c["Status"] == 200]
    return answer.get("Outcome") == "Succeeded" and invoke.reinit_count(disk_id(2)) == before + 1 and bool(consumed)


def split_batch(invoke, cloud, env):
    """A fleet too big for one invocation: chunks handed to the function itself (InvokeFunction)."""
    _register(cloud, env)
    env["REINIT_FLEET_CHUNK"] = "2"
    event = load_event("timer")
    event["payload"] = json.dumps({"Tags": [{"Key": "fleet", "Value": "lab"}], "StopInstance": True})
    before = [invoke.reinit_count(disk_id(n)) for n in range(1, 5)]
    parent = _run(invoke, event)
    cloud.fc.run_pending()
    return parent.get("Chunks") == 2 and [invoke.reinit_count(disk_id(n)) - 1 for n in range(1, 5)] == before


def continuation(invoke, cloud, env):
    """A snapshot that outlasts the invocation: continued by an async invocation, then wiped."""
    _register(cloud, env, timeout=600)
    cloud.ecs.timings["snapshot"] = 500.0
    event = load_event("eventbridge")
    event["data"] = {"instanceId": instance_id(3), "Snapshot": True}
    before = invoke.reinit_count(disk_id(3))
    first = _run(invoke, event, timeout=60)
    cloud.fc.run_pending()
    cloud.ecs.timings["snapshot"] = 0.0
    return bool(first.get("ContinuedAs")) and invoke.reinit_count(disk_id(3)) == before + 1


def failure_destination(invoke, cloud, env):
    """An async invocation that fails: FC publishes it to reinit-failures with the function's role."""
    _register(cloud, env, on_failure=FAILURES)
    cloud.faults.inject("ReInitDisk", code="ServiceUnavailable", status=503, times=1000)
    cloud.fc.invoke_async("reinit", json.dumps({"DiskId": disk_id(4)}).encode())
    cloud.fc.run_pending()
    cloud.faults.clear()
    return "Error" in cloud.fc.invocations[-1] and len(cloud.messages(FAILURES)) == 1


def webhook_secret_from_kms(invoke, cloud, env):
    """A signed webhook whose secret the function reads from KMS by name (section 13.2)."""
    env.pop("REINIT_WEBHOOK_SECRET", None)
    env.update(REINIT_KMS_ENDPOINT=cloud.endpoint, REINIT_WEBHOOK_SECRET_NAME="reinit-webhook-secret")
    cloud.kms.put("reinit-webhook-secret", KMS_HOOK)
    cloud.clock.advance(1)
    answer = json.loads(invoke.http({"DiskId": disk_id(2), "DryRun": True}, secret=KMS_HOOK)["body"])
    env.pop("REINIT_WEBHOOK_SECRET_NAME")
    env["REINIT_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    return answer.get("Outcome") == "DryRun"


def password_from_kms(invoke, cloud, env):
    """A wipe whose Password is read from a KMS secret the request names (section 13.2)."""
    env.update(REINIT_KMS_ENDPOINT=cloud.endpoint, REINIT_PASSWORD_SECRETS="reinit/root-password")
    cloud.kms.put("reinit/root-password", "Kms-Passw0rd!")
    before = invoke.reinit_count(disk_id(2))
    answer = _run(invoke, {"DiskId": disk_id(2), "PasswordSecretName": "reinit/root-password"})
    return answer.get("Outcome") == "Succeeded" and invoke.reinit_count(disk_id(2)) == before + 1


def member_account(invoke, cloud, env):
    """An incident in a member account: STS AssumeRole there, then its ECS calls (section 13.1)."""
    env.update(FC_ACCOUNT_ID=HOME, REINIT_EVENT_ACCOUNTS=MEMBER, REINIT_STS_ENDPOINT=cloud.endpoint)
    event = load_event("eventbridge")
    arn = f"acs:ecs:cn-hangzhou:{MEMBER}:instance/{M_INSTANCE}"
    event.update(aliyunaccountid=MEMBER, data={"content": {"instanceId": M_INSTANCE}, "resourceId": arn})
    before = cloud.accounts.ecs[MEMBER].disks[M_DISK].reinit_count
    answer = _run(invoke, event)
    return answer.get("Outcome") == "Succeeded" and cloud.accounts.ecs[MEMBER].disks[M_DISK].reinit_count == before + 1


def approved_wipe(invoke, cloud, env):
    """An incident held for approval, then approved: the decision is marked on the disk
    (TagResources) before the wipe (section 13.3, docs/approval.md)."""
    env.update(REINIT_APPROVAL="incident", REINIT_APPROVER_SECRET=APPROVER_SECRET, REINIT_IDEMPOTENCY_URL=STORE[0])
    try:
        event = load_event("eventbridge")
        event["data"] = {"instanceId": instance_id(5)}
        held = _run(invoke, event)
        if held.get("Outcome") != "AwaitingApproval":
            return False
        cloud.clock.advance(1)  # a fresh signature
        before = invoke.reinit_count(disk_id(5))
        answer = json.loads(invoke.http({"Approve": held["Approval"]["Token"]}, secret=APPROVER_SECRET)["body"])
    finally:
        env.pop("REINIT_APPROVAL")
        env.pop("REINIT_IDEMPOTENCY_URL")
    return answer.get("Outcome") == "Succeeded" and invoke.reinit_count(disk_id(5)) == before + 1


def wipe_mark_taken_away(invoke, cloud, env):
    """With a store: the disk's wipe mark is written before ReInitDisk and taken away when ECS
    certainly did not run it (docs/idempotency.md), so no later look mistakes it for a wipe."""
    env["REINIT_IDEMPOTENCY_URL"] = STORE[0]
    try:
        cloud.faults.inject("ReInitDisk", code="InvalidOperation.ReInitUnsupported", status=403)
        _run(invoke, {"DiskId": disk_id(4), "ClientToken": "ram-walk-refused"})
    finally:
        env.pop("REINIT_IDEMPOTENCY_URL")
    tagged = [c for c in cloud.calls("TagResources") if c["Params"].get("ResourceId.1") == disk_id(4)]
    untagged = [c for c in cloud.calls("UntagResources") if c["Params"].get("ResourceId.1") == disk_id(4)]
    return bool(tagged) and all(c["Status"] == 200 for c in tagged + untagged) and bool(untagged)


WALK = [single_wipe, evidence_snapshot, split_batch, continuation, failure_destination, restart_after_a_refusal,
        member_account, approved_wipe, webhook_secret_from_kms, password_from_kms, wipe_mark_taken_away]

# Each statement of the policy, and the path that breaks without it (the action refused).
NEEDED_BY = {
    "ReadDisksAndInstances": (single_wipe, "ecs:DescribeDisks"),
    "StopAndStartOnlyInstancesThatCarryTheRequiredTag": (single_wipe, "ecs:StopInstance"),
    "ReInitOnlyDisksThatCarryTheRequiredTag": (single_wipe, "ecs:ReInitDisk"),
    "PublishOutcomesToTheResultsTopic": (single_wipe, "mns:PublishMessage"),
    "FollowEvidenceSnapshots": (evidence_snapshot, "ecs:DescribeSnapshots"),
    "SnapshotOnlyDisksThatCarryTheRequiredTag": (evidence_snapshot, "ecs:CreateSnapshot"),
    "CreateAndTagTheEvidenceSnapshotsOnly": (evidence_snapshot, "ecs:CreateSnapshot"),
    "HandChunksOfABigBatchToThisFunction": (split_batch, "fc:InvokeFunction"),
    "FailedInvocationsReachTheFailureTopic": (failure_destination, "mns:PublishMessage"),
    "ActInMemberAccountsThroughTheirRole": (member_account, "sts:AssumeRole"),
    "MarkApprovalDecisionsOnDisksThatCarryTheRequiredTag": (approved_wipe, "ecs:TagResources"),
    "MarkOnlyTheWipeTagOnDisksItMayWipe": (wipe_mark_taken_away, "ecs:TagResources"),
    "TakeAWipeMarkAwayOnDisksItMayWipe": (wipe_mark_taken_away, "ecs:UntagResources"),
    "ReadTheWebhookSecret": (webhook_secret_from_kms, "kms:GetSecretValue"),
    "ReadPasswordAndApproverSecretsUnderTheReinitPrefix": (password_from_kms, "kms:GetSecretValue"),
}


def denied(cloud) -> list[dict]:
    return [d for d in cloud.ram.decisions if d["Denied"]]


def test_the_policy_is_sufficient_for_every_call_the_function_makes(invoke, cloud, env, clock, approval_store):
    assert cloud.ram.enforcing
    done = {}
    for path in WALK:
        done[path.__name__] = path(invoke, cloud, env)
        clock.advance(120)  # the last wipe settles (disks In_use again) before the next path
    assert all(done.values()), done
    assert denied(cloud) == []
    made = {(d["Service"], d["Api"]) for d in cloud.ram.decisions}
    assert made == set(CALLS)  # every mapped call was made, and allowed
    codes = {r.get("Code") for r in cloud.requests}
    assert not codes & {"Forbidden.RAM", "AccessDenied"}
    # The failure destination was published to, and checked as the function's own call.
    [via] = [r for r in cloud.requests if r.get("Via")]
    assert (via["Topic"], via["Status"]) == (FAILURES, 201)


def test_every_statement_is_named_by_a_path():
    sids = [s["Sid"] for s in Policy.load(POLICY).statements]
    assert len(sids) == len(set(sids)) and set(sids) == set(NEEDED_BY)


@pytest.mark.parametrize("sid", [sid for sid, path in NEEDED_BY.items() if path])
def test_without_any_statement_a_named_path_breaks(invoke, cloud, env, sid, approval_store):
    path, action = NEEDED_BY[sid]
    cloud.ram.use(Policy.load(POLICY).without(sid))
    assert path(invoke, cloud, env) is False
    assert action in {d["Action"] for d in denied(cloud)}
    if action.startswith("ecs:"):
        assert any(r.get("Code") == "Forbidden.RAM" and r["Status"] == 403 for r in cloud.requests)
    elif action.startswith("sts:"):
        assert any(r.get("Code") == "NoPermission" and r["Status"] == 403 for r in cloud.requests)
    elif action.startswith("kms:"):
        assert any(r.get("Code") == "Forbidden.NoPermission" and r["Status"] == 403 for r in cloud.requests)
    else:
        assert any(r.get("Code") == "AccessDenied" and r["Status"] == 403 for r in cloud.requests)


def test_the_secret_statement_is_needed():
    secret = Resource("acs:kms:cn-hangzhou:1234567890123456:secret/reinit-webhook-secret")
    policy = Policy.load(POLICY)
    assert policy.allowed_by("kms:GetSecretValue", secret) == ["ReadTheWebhookSecret"]
    assert not policy.without("ReadTheWebhookSecret").allows("kms:GetSecretValue", secret)
    assert not policy.allows("kms:GetSecretValue", Resource("acs:kms:cn-hangzhou:1234567890123456:secret/other"))


def test_an_untagged_disk_is_refused_by_the_cloud_even_with_the_guard_off(invoke, cloud, env):
    env["REINIT_REQUIRED_TAG"] = "none"  # the function's own guard off
    cloud.ecs.disks[disk_id(1)].tags.clear()
    answer = _run(invoke, {"DiskId": disk_id(1)})
    assert (answer["Outcome"], answer["Code"]) == ("Failed", "Forbidden.RAM")
    assert invoke.reinit_count(disk_id(1)) == 0
    [refused] = cloud.calls("ReInitDisk")
    assert (refused["Status"], refused["Code"]) == (403, "Forbidden.RAM")
    # A tag with another value is no better; the tagged disk next to it still goes through.
    cloud.ecs.disks[disk_id(2)].tags["reinit-allowed"] = "false"
    assert _run(invoke, {"DiskId": disk_id(2)})["Code"] == "Forbidden.RAM"
    assert _run(invoke, {"DiskId": disk_id(3)})["Outcome"] == "Succeeded"


def test_an_untagged_instance_is_not_stopped(invoke, cloud, env):
    cloud.ecs.instances[instance_id(1)].status = "Running"
    cloud.ecs.instances[instance_id(1)].tags.clear()
    answer = _run(invoke, {"DiskId": disk_id(1), "StopInstance": True})
    assert answer["Outcome"] != "Succeeded" and invoke.reinit_count(disk_id(1)) == 0
    assert cloud.ecs.instances[instance_id(1)].status == "Running"
    assert [(c["Action"], c["Code"]) for c in cloud.calls("StopInstance")] == [("StopInstance", "Forbidden.RAM")]


# -- the evaluator ------------------------------------------------------------------------
def test_deny_wins_wildcards_match_and_conditions_read_the_tags():
    policy = Policy({"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": "ecs:Describe*", "Resource": "*"},
        {"Effect": "Allow", "Action": ["ecs:ReInitDisk"], "Resource": "acs:ecs:*:*:disk/*",
         "Condition": {"StringLike": {"ecs:tag/team": "sec-*"}}},
        {"Effect": "Deny", "Action": "ecs:*", "Resource": "acs:ecs:cn-beijing:*:disk/*"},
    ]})
    disk = "acs:ecs:cn-hangzhou:1:disk/d-1"
    assert policy.allows("ECS:describedisks", Resource(disk))  # actions ignore case
    assert policy.allows("ecs:ReInitDisk", Resource(disk, {"team": "sec-ops"}))
    assert not policy.allows("ecs:ReInitDisk", Resource(disk, {"team": "dev"}))
    assert not policy.allows("ecs:ReInitDisk", Resource(disk))  # no tag: the condition fails
    assert not policy.allows("ecs:ReInitDisk", Resource("acs:ecs:cn-beijing:1:disk/d-1", {"team": "sec-ops"}))
    assert not policy.allows("ecs:StopInstance", Resource("acs:ecs:cn-hangzhou:1:instance/i-1"))  # implicit deny
    odd = Policy({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*",
                                 "Condition": {"NumericEquals": {"ecs:tag/n": "1"}}}]})
    assert not odd.allows("ecs:DescribeDisks", Resource(disk, {"n": "1"}))  # unknown operator: fails closed


def test_a_call_without_a_mapping_is_refused(cloud):
    denial = cloud.ram.check("ecs", "DeleteDisk", {"DiskId": disk_id(1)})
    assert denial and "no RAM mapping" in str(denial)


def test_python_m_emulator_enforces_the_policy_it_is_given(tmp_path):
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from reinit.ecs import Credentials, EcsApi, EcsCallError
    from tests.conftest import REGION
    root = POLICY.parents[1]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "emulator", "--port", str(port), "--ram-policy", str(POLICY)],
                            cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert "enforced" in proc.stdout.readline()
        for _ in range(50):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/state", timeout=5).close()
                break
            except OSError:
                time.sleep(0.1)
        cred = json.loads((root / "emulator" / "fleet.json").read_text())["credentials"][0]
        creds = Credentials(cred["AccessKeyId"], cred["AccessKeySecret"], cred["SecurityToken"])
        api = EcsApi(f"http://127.0.0.1:{port}", REGION, creds)
        with pytest.raises(EcsCallError) as refused:
            api.reinit_disk("d-bp1database000001")  # the sample fleet's untagged production disk
        assert (refused.value.code, refused.value.status) == ("Forbidden.RAM", 403)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
