"""Red-team review of round 4 (events and accounts, approval, secrets by reference): each
finding reproduced through the real handler and the emulator, and kept as a test."""

from __future__ import annotations

import json

import pytest

from tests.conftest import base_seed, disk_id, instance_id, load_event, member_account_seed

HOME, MEMBER, OTHER = "1234567890123456", "1987654321098765", "1555566667777888"
M_DISK, M_INSTANCE = "d-bp1member00000001", "i-bp1member00000001"
TPM = "ecs:Instance:Security.TpmAlert"
APPROVER_SECRET = "apsec-redteam-0123456789abcdef"
PASSWORD_NAME = "reinit/root-password"
PASSWORD_VALUE = "Kms9!pAss#Word"


@pytest.fixture
def seed():
    seed = base_seed(3)
    seed["accountId"] = HOME
    seed["secrets"] = {PASSWORD_NAME: PASSWORD_VALUE, "reinit/webhook": "hook-secret-value-1234"}
    seed["accounts"] = {MEMBER: member_account_seed(M_DISK, M_INSTANCE, (HOME,)),
                        OTHER: member_account_seed("d-bp1other000000001", "i-bp1other000000001", (HOME,))}
    return seed


@pytest.fixture
def env(env, cloud):
    env.update({"FC_ACCOUNT_ID": HOME, "REINIT_EVENT_ACCOUNTS": f"{MEMBER},{OTHER}",
                "REINIT_STS_ENDPOINT": cloud.endpoint})
    return env


def ecs_event(instance: str, account: str, arn_account: str | None = None, event_id: str = "evt-1") -> dict:
    """An event as EventBridge delivers it: `aliyunaccountid` is the account that put it on
    the bus; the resourceId ARN is part of the (publisher-controlled) data."""
    event = load_event("eventbridge")
    arn = f"acs:ecs:cn-hangzhou:{arn_account or account}:instance/{instance}"
    event.update(type=TPM, aliyunaccountid=account, aliyunregionid="cn-hangzhou", subject=arn, id=event_id)
    event["data"] = {"resourceId": arn, "content": {"instanceId": instance}}
    return event


def body_of(answer: dict) -> dict:
    return {"statusCode": answer["statusCode"], **json.loads(answer["body"])}


def home_incident(instance: str, event_id: str) -> dict:
    event = load_event("eventbridge")
    event["id"] = event_id
    event["data"] = {"instanceId": instance}
    return event


# -- F1: an event from a member account names a resource of another account ----------------------
def test_f1_member_account_event_cannot_wipe_a_home_account_disk(invoke, cloud):
    """Member account MEMBER's event (aliyunaccountid=MEMBER) whose data's resourceId names an
    instance of the HOME (security) account: the function acts in HOME with its own role."""
    answer = invoke(ecs_event(instance_id(1), account=MEMBER, arn_account=HOME))
    assert invoke.reinit_count(disk_id(1)) == 0, f"member event wiped a home-account disk: {answer}"
    assert answer["Code"] in ("Forbidden.Account", "InvalidParameter.Conflict")


def test_f1b_member_account_event_cannot_wipe_another_member_accounts_disk(invoke, cloud):
    answer = invoke(ecs_event("i-bp1other000000001", account=MEMBER, arn_account=OTHER))
    assert cloud.accounts.ecs[OTHER].disks["d-bp1other000000001"].reinit_count == 0, \
        f"member {MEMBER}'s event wiped a disk of member {OTHER}: {answer}"


# -- F3: PasswordSecretName is silently dropped by an approved wipe ---------------------------
def test_f3_password_secret_name_is_not_silently_dropped_by_approval(invoke, cloud, env, clock, redis_store):
    env.update(REINIT_APPROVAL="always", REINIT_APPROVER_SECRET=APPROVER_SECRET,
               REINIT_KMS_ENDPOINT=cloud.endpoint, REINIT_PASSWORD_SECRETS=PASSWORD_NAME)
    first = body_of(invoke.http({"DiskId": disk_id(2), "PasswordSecretName": PASSWORD_NAME}))
    if first["Outcome"] != "AwaitingApproval":  # refused up front, as a plain Password is: fine
        assert first["Code"] == "InvalidParameter.Conflict", first
        return
    clock.advance(1)
    answer = body_of(invoke.http({"Approve": first["Approval"]["Token"]}, secret=APPROVER_SECRET))
    assert answer["Outcome"] == "Succeeded", answer
    assert cloud.ecs.disks[disk_id(2)].last_reinit["PasswordSet"] is True, \
        "the approved wipe reset no password although the request named PasswordSecretName"


# -- F4: a query string on an approval is ignored ----------------------------------------
def test_f4_query_string_is_not_ignored_on_an_approval(invoke, cloud, env, clock, redis_store):
    env.update(REINIT_APPROVAL="always", REINIT_APPROVER_SECRET=APPROVER_SECRET)
    first = body_of(invoke.http({"DiskId": disk_id(2)}))
    assert first["Outcome"] == "AwaitingApproval", first
    clock.advance(1)
    from reinit import webhook
    raw = json.dumps({"Approve": first["Approval"]["Token"]}).encode()
    event = load_event("http")
    event["queryParameters"] = {"DryRun": "true"}
    event["rawPath"] = "/reinit"
    event["headers"] = webhook.signed_headers(APPROVER_SECRET, int(invoke.wall()), raw)
    event["body"], event["isBase64Encoded"] = raw.decode(), False
    answer = body_of(invoke(event))
    assert invoke.reinit_count(disk_id(2)) == 0, f"POST /?DryRun=true approved and wiped: {answer}"
    assert answer["Code"] == "InvalidParameter.Unknown"


# -- F7: a batch that wrote a disk is summarized Failed ("no disk was written") -----------
def test_f7_a_batch_that_wrote_a_disk_is_never_failed(invoke, cloud, env):
    """Wait=true, a ReInitDisk that ECS accepted but whose completion outlasts the deadline:
    that disk WAS written (reinit_count 1); the other disk untagged is refused. INTERFACE 13.4:
    `Failed` means no disk was written; this batch must be Partial (send/invoke exit 6)."""
    cloud.ecs.timings["reinit"] = 100000.0
    env["FC_FUNCTION_TIMEOUT"] = "120"
    cloud.ecs.disks[disk_id(3)].tags.pop("reinit-allowed", None)
    answer = invoke({"DiskIds": [disk_id(2), disk_id(3)], "WaitForCompletion": True})
    assert invoke.reinit_count(disk_id(2)) == 1, answer
    assert answer["Outcome"] == "Partial", (answer["Outcome"], [(r["DiskId"], r["Outcome"], r["Code"])
                                                                for r in answer["Results"]])


# -- F8: the CLI's loopback rule is bypassed by an http_proxy in the environment ------------
@pytest.mark.parametrize("argv, secret_var", [
    (["approve", "rat1.x.y", "--url", "http://127.0.0.1:9/"], "REINIT_APPROVER_SECRET"),
    (["send", "--url", "http://127.0.0.1:9/"], "REINIT_WEBHOOK_SECRET"),
])
def test_f8_cli_never_sends_plain_http_off_loopback_even_through_a_proxy(monkeypatch, tmp_path, argv, secret_var):
    """INTERFACE 13.2: "The operator CLI never sends a request over plain http:// to a host
    that is not loopback." urllib.request.urlopen honours http_proxy: the signed body goes in
    clear text to the proxy (here 10.20.30.40), not to 127.0.0.1."""
    import socket

    from reinit import __main__ as cli

    monkeypatch.setenv("http_proxy", "http://10.20.30.40:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://10.20.30.40:3128")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.setenv(secret_var, "operator-secret-value-123")
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"DiskId": disk_id(1)}))
    if argv[0] == "send":
        argv = [*argv, str(body)]
    contacted = []

    def fake_connect(address, *a, **kw):
        contacted.append(address[0])
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "create_connection", fake_connect)
    try:
        cli.main(argv)
    except SystemExit:
        pass
    off_loopback = [h for h in contacted if h not in ("127.0.0.1", "localhost", "::1")]
    assert off_loopback == [], f"plain http:// sent to a non-loopback host: {off_loopback}"


# -- F10: KMS throttling the approvers' secret drops an incident as a permanent Config.Invalid --
def test_f10_a_passing_kms_fault_on_the_approver_secret_is_retryable_not_config_invalid(invoke, cloud, env, redis_store):
    """REINIT_APPROVER_SECRET_NAME in KMS; KMS throttles for a while. The incident must fail
    Retryable (so EventBridge retries it and the instance is contained later), as a throttled
    webhook-secret read does (503) - not Config.Invalid, Retryable false, which ends the
    invocation successfully: the platform never retries, the incident is never contained."""
    from reinit.app import InvocationFailed

    cloud.kms.put("reinit/approver", APPROVER_SECRET)
    env.update(REINIT_APPROVAL="incident", REINIT_APPROVER_SECRET_NAME="reinit/approver",
               REINIT_KMS_ENDPOINT=cloud.endpoint)
    cloud.faults.inject(action="GetSecretValue", code="Rejected.Throttling", status=400, times=50)
    try:
        answer = invoke(home_incident(instance_id(1), "incident-kms"))
    except InvocationFailed as err:  # what a retryable failure does: the platform retries
        answer = json.loads(str(err))
    assert answer["Retryable"] is True and answer["Code"] != "Config.Invalid", answer


def test_f10_control_without_the_fault_the_same_setup_holds_the_incident(invoke, cloud, env, redis_store):
    cloud.kms.put("reinit/approver", APPROVER_SECRET)
    env.update(REINIT_APPROVAL="incident", REINIT_APPROVER_SECRET_NAME="reinit/approver",
               REINIT_KMS_ENDPOINT=cloud.endpoint)
    assert invoke(home_incident(instance_id(1), "incident-kms"))["Outcome"] == "AwaitingApproval"
