"""Events from a real account (INTERFACE.md 13.1), through the real handler and the emulator:
ECS system events and a security tool's custom-bus events, the event types that may start
anything, the accounts they may come from, and a member account acted on with a role that
the function assumes there through STS."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import pytest

from emulator.auth import Credential
from emulator.demo import SEED as FLEET
from emulator.demo import cloud_variables
from reinit.ecs import Credentials, EcsApi, EcsCallError
from reinit.errors import ReinitError
from reinit.sts import RENEW_SECONDS, assume_role
from tests.conftest import AK, SECRET, TOKEN, base_seed, disk_id, instance_id, load_event, member_account_seed

HOME, MEMBER, STRANGER = "1234567890123456", "1987654321098765", "1111222233334444"
M_DISK, M_INSTANCE = "d-bp1member00000001", "i-bp1member00000001"
TPM = "ecs:Instance:Security.TpmAlert"
CUSTOM = "soc:Incident:HostCompromised"


@pytest.fixture
def seed():
    seed = base_seed(3)
    seed["accountId"] = HOME
    seed["accounts"] = {MEMBER: member_account_seed(M_DISK, M_INSTANCE, (HOME,),
                                               {"RoleName": "untrusting", "Trusts": [STRANGER]})}
    return seed


@pytest.fixture
def env(env, cloud):
    env.update({"FC_ACCOUNT_ID": HOME, "REINIT_EVENT_ACCOUNTS": MEMBER, "REINIT_STS_ENDPOINT": cloud.endpoint})
    return env


def ecs_event(instance: str, account: str = HOME, event_type: str = TPM, region: str = "cn-hangzhou", **envelope) -> dict:
    """An ECS system event as EventBridge delivers it: the instance in content.instanceId and
    in the resourceId ARN, nowhere else."""
    event = load_event("eventbridge")
    arn = f"acs:ecs:{region}:{account}:instance/{instance}"
    event.update(type=event_type, aliyunaccountid=account, aliyunregionid=region, subject=arn, **envelope)
    event["data"] = {"ver": "1.0", "product": "ECS", "resourceId": arn, "level": "WARN",
                     "name": "Instance:Security.TpmAlert:Executing", "userId": account, "regionId": region,
                     "content": {"eventId": "e-bp1test0001", "instanceId": instance, "eventType": "Security.TpmAlert",
                                 "eventStatus": "Executing"}}
    return event


def ecs_calls(cloud) -> list[dict]:
    return cloud.calls(service="ecs")


# -- ECS system events and custom buses -----------------------------------------------------
def test_an_ecs_tpm_alert_names_its_instance_in_content_and_in_the_arn(invoke, cloud):
    answer = invoke(ecs_event(instance_id(1)))
    assert (answer["Outcome"], answer["DiskId"], answer["InstanceId"]) == ("Succeeded", disk_id(1), instance_id(1))
    assert invoke.reinit_count(disk_id(1)) == 1
    assert {c["Account"] for c in ecs_calls(cloud)} == {HOME}
    assert cloud.calls(service="sts") == []  # the function's own account: no role assumed


def test_an_arn_alone_is_enough_and_a_disk_arn_names_the_disk(invoke):
    event = ecs_event(instance_id(1))
    event["data"] = {"resourceId": f"acs:ecs:cn-hangzhou:{HOME}:disk/{disk_id(2)}", "DryRun": True}
    answer = invoke(event)
    assert (answer["Outcome"], answer["DiskId"]) == ("DryRun", disk_id(2))


def test_a_custom_bus_event_of_a_listed_type_is_acted_on(invoke, env):
    env["REINIT_EVENT_TYPES"] = f"{TPM},{CUSTOM}"
    event = load_event("eventbridge")
    event.update(source="soc.siem", type=CUSTOM, aliyuneventbusname="reinit-security")
    event["data"] = {"instanceId": instance_id(2), "severity": "critical", "finding": "webshell"}
    answer = invoke(event)
    assert (answer["Outcome"], answer["DiskId"]) == ("Succeeded", disk_id(2))


def test_a_custom_type_that_is_not_listed_is_refused(invoke, cloud):
    event = load_event("eventbridge")
    event.update(source="soc.siem", type=CUSTOM)
    event["data"] = {"instanceId": instance_id(2)}
    answer = invoke(event)
    assert answer["Code"] == "Forbidden.EventType" and cloud.calls() == []


def test_a_state_change_never_wipes_and_nothing_is_looked_up(invoke, cloud):
    """A rule widened by mistake to every ECS instance event: the StateChange is refused
    before any ECS call, and the refusal is published."""
    answer = invoke(ecs_event(instance_id(1), event_type="ecs:Instance:StateChange"))
    assert (answer["Outcome"], answer["Code"], answer["Retryable"]) == ("Rejected", "Forbidden.EventType", False)
    assert "ecs:Instance:StateChange" in answer["Message"]
    assert cloud.calls() == [] and invoke.writes() == []
    assert invoke.messages()[-1]["Code"] == "Forbidden.EventType"


def test_forbidden_event_type_is_403_in_the_catalogue():
    from reinit.errors import CATALOGUE
    assert CATALOGUE["Forbidden.EventType"] == (403, False) and CATALOGUE["Forbidden.Account"] == (403, False)


def test_an_event_naming_nothing_says_which_type_it_was(invoke, cloud):
    event = ecs_event(instance_id(1))
    event["data"] = {"content": {"eventType": "Security.TpmAlert"}}
    answer = invoke(event)
    assert answer["Code"] == "MissingParameter.DiskId" and TPM in answer["Message"]
    assert cloud.calls() == []


@pytest.mark.parametrize("data", [
    {"Password": "Abcdefg1"},  # names no disk: still the credential that is refused first
    {"DiskId": None, "Password": "Abcdefg1"},
    {"content": {"instanceId": instance_id(1)}, "KEYPAIRNAME": "kp-attacker"},
])
def test_a_credential_in_an_event_is_refused_before_its_target_is_read(invoke, cloud, data):
    """Found by the fuzz test after the target rules of section 13.1 came in: an event with
    a Password and no disk answered MissingParameter.DiskId instead of EventCredential."""
    event = ecs_event(instance_id(1))
    event["data"] = data
    answer = invoke(event)
    assert (answer["Outcome"], answer["Code"]) == ("Rejected", "Forbidden.EventCredential")
    assert cloud.calls() == []


@pytest.mark.parametrize("data, named", [
    ({"instanceId": instance_id(1), "content": {"instanceId": instance_id(2)}}, "instanceId"),
    ({"content": {"instanceId": instance_id(1)}, "resourceId": f"acs:ecs:cn-hangzhou:{HOME}:instance/{instance_id(2)}"},
     "content.instanceId"),
    ({"DiskId": disk_id(1), "diskId": disk_id(2)}, "DiskId"),
    ({"diskId": disk_id(1), "resourceId": f"acs:ecs:cn-hangzhou:{HOME}:disk/{disk_id(2)}"}, "diskId"),
])
def test_places_that_name_different_resources_conflict(invoke, cloud, data, named):
    event = ecs_event(instance_id(1))
    event["data"] = data
    answer = invoke(event)
    assert answer["Code"] == "InvalidParameter.Conflict" and named in answer["Message"]
    assert cloud.calls() == []


def test_the_arn_region_is_the_region_and_must_agree_with_aliyunregionid(invoke, cloud):
    event = ecs_event(instance_id(1), region="cn-shanghai")
    event["aliyunregionid"] = "cn-hangzhou"
    answer = invoke(event)
    assert answer["Code"] == "InvalidParameter.Conflict" and "cn-shanghai" in answer["Message"]
    assert cloud.calls() == []
    del event["aliyunregionid"]
    answer = invoke(event)  # now the ARN's region is the RegionId: not one this function serves
    assert answer["Code"] == "Forbidden.Region" and "cn-shanghai" in answer["Message"]


# -- accounts --------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["aliyunaccountid", "resourceId"])
def test_an_event_from_an_unlisted_account_is_refused_before_anything(invoke, cloud, where):
    event = ecs_event(instance_id(1))
    if where == "aliyunaccountid":
        event["aliyunaccountid"] = STRANGER
    else:
        event["data"]["resourceId"] = f"acs:ecs:cn-hangzhou:{STRANGER}:instance/{instance_id(1)}"
    answer = invoke(event)
    assert (answer["Outcome"], answer["Code"]) == ("Rejected", "Forbidden.Account")
    assert STRANGER in answer["Message"] and where in answer["Message"]
    assert cloud.calls() == [] and cloud.calls(service="sts") == []
    assert invoke.messages()[-1]["Code"] == "Forbidden.Account"


def test_without_fc_account_id_the_check_is_skipped_and_logged_once(invoke, env, capsys):
    del env["FC_ACCOUNT_ID"]
    env["REINIT_EVENT_ACCOUNTS"] = ""
    capsys.readouterr()
    for n in (1, 2):
        assert invoke(ecs_event(instance_id(n), account=STRANGER))["Outcome"] == "Succeeded"
    log = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [x["event"] for x in log].count("event.account_unchecked") == 1


def test_a_listed_member_account_is_acted_on_with_the_assumed_role(invoke, cloud):
    answer = invoke(ecs_event(M_INSTANCE, account=MEMBER))
    assert (answer["Outcome"], answer["DiskId"], answer["Account"]) == ("Succeeded", M_DISK, MEMBER)
    assert invoke.messages()[-1]["Account"] == MEMBER
    [assume] = cloud.calls("AssumeRole", service="sts")
    assert assume["Params"]["RoleArn"] == f"acs:ram::{MEMBER}:role/reinit-member"
    assert assume["AccessKeyId"] == AK and assume["Account"] == HOME  # asked with the function's own role
    [issued] = cloud.sts.issued
    calls = ecs_calls(cloud)
    assert [c["Action"] for c in calls] == ["DescribeDisks", "DescribeInstances", "ReInitDisk"]
    # Every ECS call was signed with the STS credentials, and acted on the member's resources.
    assert {(c["AccessKeyId"], c["Account"]) for c in calls} == {(issued.access_key_id, MEMBER)}
    assert cloud.accounts.ecs[MEMBER].disks[M_DISK].reinit_count == 1
    assert all(d.reinit_count == 0 for d in cloud.ecs.disks.values())
    notified = json.dumps(invoke.messages())  # the assumed secret and token never leave the function
    assert issued.access_key_secret not in notified and issued.security_token not in notified


def test_a_role_the_policy_does_not_grant_is_refused_by_ram(invoke, cloud, env):
    env["REINIT_ACCOUNT_ROLE"] = "reinit-admin"
    answer = invoke(ecs_event(M_INSTANCE, account=MEMBER))
    assert (answer["Outcome"], answer["Code"]) == ("Failed", "NoPermission")
    assert [d["Action"] for d in cloud.ram.decisions if d["Denied"]] == ["sts:AssumeRole"]
    assert ecs_calls(cloud) == []


def test_the_home_keys_do_not_reach_a_member_accounts_disk(invoke, cloud, env):
    """Without the role, the member's disk is not there for the function's own keys."""
    env["REINIT_EVENT_ACCOUNTS"] = ""
    env.pop("FC_ACCOUNT_ID")
    answer = invoke(ecs_event(M_INSTANCE, account=MEMBER))
    assert answer["Code"] == "InvalidInstanceId.NotFound"
    assert cloud.accounts.ecs[MEMBER].disks[M_DISK].reinit_count == 0


def test_assumed_credentials_are_reused_until_they_near_expiry(invoke, cloud, clock):
    invoke(ecs_event(M_INSTANCE, account=MEMBER))
    clock.advance(60)
    assert invoke(ecs_event(M_INSTANCE, account=MEMBER, id="second"))["Outcome"] == "Succeeded"
    assert len(cloud.calls("AssumeRole", service="sts")) == 1
    clock.advance(3600 - RENEW_SECONDS)  # the function's wall clock moves with the test clock
    assert invoke(ecs_event(M_INSTANCE, account=MEMBER, id="third"))["Outcome"] == "Succeeded"
    assert len(cloud.calls("AssumeRole", service="sts")) == 2
    first, second = cloud.sts.issued
    last_calls = ecs_calls(cloud)[-3:]
    assert {c["AccessKeyId"] for c in last_calls} == {second.access_key_id} != {first.access_key_id}


@pytest.mark.ram_off  # STS's own answers: the shipped policy grants reinit-member only, and RAM answers first
@pytest.mark.parametrize("role, code", [("missing-role", "EntityNotExist.Role"), ("untrusting", "NoPermission")])
def test_a_role_that_cannot_be_assumed_fails_with_stss_code_and_nothing_is_done(invoke, cloud, env, role, code):
    env["REINIT_ACCOUNT_ROLE"] = role
    event = ecs_event(M_INSTANCE, account=MEMBER)
    answer = invoke(event)
    assert (answer["Outcome"], answer["Code"], answer["Retryable"]) == ("Failed", code, False)
    assert f"acs:ram::{MEMBER}:role/{role}" in answer["Message"]
    assert ecs_calls(cloud) == []
    assert cloud.accounts.ecs[MEMBER].disks[M_DISK].reinit_count == 0


def test_sts_unreachable_is_retryable_and_nothing_is_done(invoke, env, cloud):
    env["REINIT_STS_ENDPOINT"] = "http://127.0.0.1:9"
    from reinit.app import InvocationFailed
    with pytest.raises(InvocationFailed) as info:
        invoke(ecs_event(M_INSTANCE, account=MEMBER))
    body = json.loads(str(info.value))
    assert (body["Code"], body["Retryable"]) == ("ServiceUnavailable", True)
    assert ecs_calls(cloud) == []


def test_a_member_accounts_slow_snapshot_is_a_retryable_wait_not_a_hand_off(invoke, cloud, env, clock):
    """A continuation would run in the function's own account; the event's retry instead
    assumes the role again and finds the same snapshot."""
    import index
    from reinit.app import InvocationFailed
    env.update(REINIT_FC_ENDPOINT=cloud.endpoint, REINIT_FUNCTION_NAME="reinit")
    cloud.fc.register("reinit", lambda event, context: index.handler(event, context), timeout=600)
    member = cloud.accounts.ecs[MEMBER]
    member.timings["snapshot"] = 100.0
    event = ecs_event(M_INSTANCE, account=MEMBER)
    event["data"]["Snapshot"] = True
    with pytest.raises(InvocationFailed) as info:
        invoke(event, timeout=60)
    first = json.loads(str(info.value))
    assert (first["Code"], first["Retryable"]) == ("WaitTimeout", True) and first["SnapshotId"]
    assert cloud.calls("InvokeFunction", service="fc") == [] and member.disks[M_DISK].reinit_count == 0
    clock.advance(100)
    again = invoke(event, timeout=60)  # the platform's retry of the same event
    assert (again["Outcome"], again["SnapshotId"]) == ("Succeeded", first["SnapshotId"])
    assert len(cloud.calls("CreateSnapshot")) == 1 and member.disks[M_DISK].reinit_count == 1
    assert {c["Account"] for c in ecs_calls(cloud)} == {MEMBER}


# -- the emulator's STS ---------------------------------------------------------------------
def test_the_emulator_refuses_expired_sts_credentials(cloud):
    home = Credentials(AK, SECRET, TOKEN)
    creds, expires = assume_role(cloud.endpoint, "cn-hangzhou", home, f"acs:ram::{MEMBER}:role/reinit-member", "reinit-test")
    assert 3500 < expires - time.time() <= 3600
    ecs = EcsApi(cloud.endpoint, "cn-hangzhou", creds)
    assert [d["DiskId"] for d in ecs.describe_disks()[0]] == [M_DISK]  # the member's disks only
    held = cloud.keyring.lookup(creds.access_key_id)
    cloud.keyring.add(dataclasses.replace(held, expires_at=time.time() - 1))
    with pytest.raises(EcsCallError) as info:
        ecs.describe_disks()
    assert (info.value.code, info.value.status) == ("InvalidSecurityToken.Expired", 400)


@pytest.mark.parametrize("duration, code", [(899, "InvalidParameter.DurationSeconds"),
                                            (3601, "InvalidParameter.DurationSeconds")])
def test_the_emulator_checks_assume_role_parameters(cloud, duration, code, monkeypatch):
    import reinit.sts as sts
    monkeypatch.setattr(sts, "DURATION_SECONDS", duration)
    with pytest.raises(ReinitError) as info:
        assume_role(cloud.endpoint, "cn-hangzhou", Credentials(AK, SECRET, TOKEN),
                    f"acs:ram::{MEMBER}:role/reinit-member", "reinit-test")
    assert info.value.code == code


def test_an_issued_credential_is_bound_to_the_roles_account(cloud):
    _, cred = cloud.sts.assume_role(HOME, f"acs:ram::{MEMBER}:role/REINIT-MEMBER", "s", 900)
    assert isinstance(cred, Credential) and cred.account == MEMBER


# -- the samples in events/ ----------------------------------------------------------------
SAMPLES = pathlib.Path(__file__).resolve().parents[1] / "events"
# Each EventBridge sample and what it shows; a sample meant to be refused says so in its name.
EXPECTED = {
    "eventbridge.json": ("Succeeded", None),
    "eventbridge-custom-bus.json": ("Succeeded", None),
    "eventbridge-member-account.json": ("Succeeded", None),
    "eventbridge-statechange-refused.json": ("Rejected", "Forbidden.EventType"),
    "eventbridge-unlisted-account-refused.json": ("Rejected", "Forbidden.Account"),
}


def test_every_eventbridge_sample_is_listed_and_named_for_what_it_shows():
    names = {p.name for p in SAMPLES.glob("eventbridge*.json")}
    assert names == set(EXPECTED)
    for name, (outcome, _) in EXPECTED.items():
        assert name.endswith("-refused.json") == (outcome == "Rejected"), name


class TestSamplesOnTheSampleFleet:
    """The samples as `make demo` and `python -m reinit invoke --emulator` run them: the
    sample fleet and the environment that points the function at it (emulator/demo.py)."""

    @pytest.fixture
    def seed(self):
        return json.loads(FLEET.read_text())

    @pytest.fixture
    def env(self, cloud, seed):
        env = cloud_variables(cloud, seed)
        env["REINIT_POLL_SECONDS"] = "1"
        return env

    @pytest.mark.parametrize("name", sorted(EXPECTED))
    def test_each_sample_through_the_handler(self, invoke, cloud, name):
        event = json.loads((SAMPLES / name).read_text())
        answer = invoke(event)
        assert (answer["Outcome"], answer["Code"]) == EXPECTED[name], answer["Message"]
        assert answer["EventId"] == event["id"]
        if answer["Outcome"] == "Rejected":
            assert cloud.calls() == [] and cloud.calls(service="sts") == []
        member = event["aliyunaccountid"] != json.loads(FLEET.read_text())["accountId"]
        if member and answer["Outcome"] == "Succeeded":
            [issued] = cloud.sts.issued
            assert {c["AccessKeyId"] for c in cloud.calls()} == {issued.access_key_id}
            assert cloud.accounts.ecs[event["aliyunaccountid"]].disks[answer["DiskId"]].reinit_count == 1
        elif answer["Outcome"] == "Succeeded":
            assert invoke.reinit_count(answer["DiskId"]) == 1 and cloud.calls(service="sts") == []


# -- approval of a member account's incident (red-team F2) ---------------------------------
APPROVER_SECRET = "apsec-test-fedcba9876543210"


def _approve(invoke, cloud, token: str, decision: str = "Approve") -> dict:
    cloud.clock.advance(1)  # a fresh signature
    return json.loads(invoke.http({decision: token}, secret=APPROVER_SECRET)["body"])


@pytest.fixture
def approving(env, redis_store):
    env.update(REINIT_APPROVAL="incident", REINIT_APPROVER_SECRET=APPROVER_SECRET)
    return env


def test_an_approved_member_account_incident_is_wiped_in_the_member_account(invoke, cloud, approving):
    """The approval acts where the incident was held (found by review: it looked the disk
    up with the home account's keys, answered InvalidDiskId.NotFound, and the member's
    instance stayed stopped for good)."""
    held = invoke(ecs_event(M_INSTANCE, account=MEMBER))
    assert (held["Outcome"], held["DiskId"], held["Account"]) == ("AwaitingApproval", M_DISK, MEMBER)
    holding = len(ecs_calls(cloud))
    answer = _approve(invoke, cloud, held["Approval"]["Token"])
    assert (answer["Outcome"], answer["DiskId"], answer["Account"]) == ("Succeeded", M_DISK, MEMBER), answer
    assert invoke.messages()[-1]["Account"] == MEMBER
    assert cloud.accounts.ecs[MEMBER].disks[M_DISK].reinit_count == 1
    assert all(d.reinit_count == 0 for d in cloud.ecs.disks.values())
    # Every ECS call of the approval was signed with a role assumed in the member account.
    issued = {c.access_key_id for c in cloud.sts.issued}
    approval_calls = ecs_calls(cloud)[holding:]
    assert "ReInitDisk" in [c["Action"] for c in approval_calls]
    assert {c["Account"] for c in approval_calls} == {MEMBER} and {c["AccessKeyId"] for c in approval_calls} <= issued


def test_a_member_account_unlisted_since_the_hold_is_refused_at_approval(invoke, cloud, approving):
    held = invoke(ecs_event(M_INSTANCE, account=MEMBER))
    assert held["Outcome"] == "AwaitingApproval"
    approving["REINIT_EVENT_ACCOUNTS"] = ""
    assumed, holding = len(cloud.calls("AssumeRole", service="sts")), len(ecs_calls(cloud))
    answer = _approve(invoke, cloud, held["Approval"]["Token"])
    assert (answer["Outcome"], answer["Code"]) == ("Rejected", "Forbidden.Account")
    assert len(ecs_calls(cloud)) == holding and len(cloud.calls("AssumeRole", service="sts")) == assumed
    assert cloud.accounts.ecs[MEMBER].disks[M_DISK].reinit_count == 0


def test_a_denied_member_account_incident_names_the_account(invoke, cloud, approving):
    held = invoke(ecs_event(M_INSTANCE, account=MEMBER))
    answer = _approve(invoke, cloud, held["Approval"]["Token"], "Deny")
    assert (answer["Code"], answer["Account"], answer["InstanceLeftStopped"]) == ("ApprovalDenied", MEMBER, M_INSTANCE)
    assert cloud.accounts.ecs[MEMBER].disks[M_DISK].reinit_count == 0
