"""Approval before the wipe (issue 22, INTERFACE.md section 13.3), through the real handler
and the emulator: the gate for every REINIT_APPROVAL value, the tokens and every tamper,
the door's two keys, Approve (once, guards checked again) and Deny."""

from __future__ import annotations

import base64
import json

import pytest

from reinit import approval, approval_token
from tests.conftest import WEBHOOK_SECRET, base_seed, disk_id, instance_id, load_event

APPROVER_SECRET = "apsec-test-fedcba9876543210"
D1, I1 = disk_id(1), instance_id(1)


@pytest.fixture
def seed():
    seed = base_seed(12)
    seed["timings"]["snapshot"] = 40.0
    seed["instances"][0]["Status"] = "Running"  # the incident's instance runs until it is contained
    return seed


@pytest.fixture
def gated(env, redis_store):
    """Approval needs the idempotency store (a real redis-server): without one it is
    Config.Invalid (test_approval_without_a_store_is_config_invalid_and_calls_nothing)."""
    env.update(REINIT_APPROVAL="incident", REINIT_APPROVER_SECRET=APPROVER_SECRET)
    return env


def incident(instance: str = I1, event_id: str | None = None, **data) -> dict:
    event = load_event("eventbridge")
    event["data"] = {"instanceId": instance, **data}
    if event_id is not None:
        event["id"] = event_id
    return event


def answer_of(http_answer: dict) -> dict:
    return json.loads(http_answer["body"])


def decide(invoke, clock, token: str, decision: str = "Approve", secret: str = APPROVER_SECRET) -> dict:
    clock.advance(1)  # a fresh signature: the same one twice is a replay
    answer = invoke.http({decision: token}, secret=secret)
    return {"statusCode": answer["statusCode"], **answer_of(answer)}


def held(invoke, **data) -> dict:
    answer = invoke(incident(**data))
    assert answer["Outcome"] == "AwaitingApproval", answer
    return answer


def wipes(cloud) -> int:
    return len(cloud.calls("ReInitDisk"))


# -- the gate, for every configuration value --------------------------------------------
def test_never_is_the_default_and_an_incident_wipes_at_once(invoke, cloud, env):
    env["REINIT_APPROVER_SECRET"] = APPROVER_SECRET
    answer = invoke(incident(instance=instance_id(2)))
    assert answer["Outcome"] == "Succeeded" and "Approval" not in answer and invoke.reinit_count(disk_id(2)) == 1


def test_incident_holds_an_event_contains_and_preserves_it_and_wipes_nothing(invoke, cloud, gated, clock):
    answer = held(invoke, Snapshot=True)
    assert (answer["Code"], answer["Retryable"], answer["DiskId"], answer["InstanceId"]) == (None, False, D1, I1)
    assert cloud.ecs.status_of(I1) == "Stopped"  # contained
    assert answer["SnapshotId"] and cloud.ecs.snapshots[answer["SnapshotId"]].status(clock.now()) == "accomplished"
    assert wipes(cloud) == 0 and cloud.calls("StartInstance") == []
    ask = answer["Approval"]
    assert ask["Token"].startswith("rat1.") and ask["ExpiresAt"].endswith("Z")
    assert ask["EventType"] == "ecs:Instance:Security.TpmAlert" and "acs.ecs" in ask["RequestedBy"]
    assert ask["ApproveCommand"] == f"python -m reinit approve {ask['Token']}"
    assert ask["DenyCommand"] == f"python -m reinit deny {ask['Token']}"
    [message] = invoke.messages()
    assert message["Tag"] == "AwaitingApproval" and message["Approval"]["Token"] == ask["Token"]


def test_a_gate_that_gives_no_result_never_reads_as_a_wipe(invoke, cloud, gated, monkeypatch):
    """carry_out reads "no result" from its wipe steps as "go on to the wipe's end": a gate
    must never answer None, or a held disk would be reported Succeeded with no ReInitDisk.
    Found by the review of the pipeline refactor; it fails loudly instead."""
    monkeypatch.setattr(approval.Gate, "__call__", lambda *args, **kwargs: None)
    answer = invoke(incident())
    assert answer["Outcome"] != "Succeeded" and answer["Code"] == "InternalError", answer
    assert wipes(cloud) == 0


def test_incident_does_not_hold_an_http_request(invoke, cloud, gated):
    answer = answer_of(invoke.http({"DiskId": disk_id(2)}))
    assert answer["Outcome"] == "Succeeded" and invoke.reinit_count(disk_id(2)) == 1


def test_always_holds_an_http_request_with_202(invoke, cloud, gated):
    gated["REINIT_APPROVAL"] = "always"
    answer = invoke.http({"DiskId": disk_id(2)})
    assert answer["statusCode"] == 202 and answer_of(answer)["Outcome"] == "AwaitingApproval"
    assert wipes(cloud) == 0


@pytest.mark.parametrize("count, held_", [(3, True), (2, False)])
def test_batch_holds_batches_of_at_least_the_minimum(invoke, cloud, gated, count, held_):
    gated.update(REINIT_APPROVAL="batch", REINIT_APPROVAL_MIN_DISKS="3")
    answer = invoke.http({"DiskIds": [disk_id(n) for n in range(2, 2 + count)]})
    body = answer_of(answer)
    if held_:
        assert (answer["statusCode"], body["Outcome"], body["Counts"]["AwaitingApproval"]) == (202, "AwaitingApproval", count)
        tokens = {r["Approval"]["Token"] for r in body["Results"]}
        assert len(tokens) == count and wipes(cloud) == 0  # one token per disk
    else:
        assert body["Outcome"] == "Succeeded" and wipes(cloud) == count


def test_batch_does_not_hold_a_single_disk(invoke, cloud, gated):
    gated.update(REINIT_APPROVAL="batch", REINIT_APPROVAL_MIN_DISKS="1")
    assert answer_of(invoke.http({"DiskId": disk_id(2)}))["Outcome"] == "Succeeded"


def test_a_dry_run_is_never_held(invoke, cloud, gated):
    gated["REINIT_APPROVAL"] = "always"
    assert answer_of(invoke.http({"DiskId": disk_id(2), "DryRun": True}))["Outcome"] == "DryRun"


def test_a_password_cannot_wait_for_approval(invoke, cloud, gated):
    gated["REINIT_APPROVAL"] = "always"
    body = answer_of(invoke.http({"DiskId": disk_id(2), "Password": "Reset-Me-2026!"}))
    assert body["Code"] == "InvalidParameter.Conflict" and cloud.calls() == []
    assert "Reset-Me-2026!" not in json.dumps(invoke.messages())


@pytest.mark.parametrize("settings", [
    {"REINIT_APPROVAL": "sometimes"},
    {"REINIT_APPROVAL": "incident", "REINIT_APPROVER_SECRET": ""},
    {"REINIT_APPROVER_SECRET": WEBHOOK_SECRET},
    {"REINIT_APPROVER_SECRET_NAME": "reinit/approver"},  # both the value and a name
    {"REINIT_APPROVAL_MIN_DISKS": "0"},
    {"REINIT_APPROVAL_TTL_SECONDS": "ten"},
])
def test_a_wrong_approval_setting_is_config_invalid_and_calls_nothing(invoke, cloud, gated, settings):
    gated.update(settings)
    answer = invoke(incident())
    assert (answer["Outcome"], answer["Code"]) == ("Failed", "Config.Invalid") and cloud.calls() == []


# -- approve ------------------------------------------------------------------------------
def test_approve_wipes_once_starts_what_was_contained_and_a_second_approval_answers_from_the_first(
        invoke, cloud, gated, clock):
    token = held(invoke, Snapshot=True)["Approval"]["Token"]
    first = decide(invoke, clock, token)
    assert (first["statusCode"], first["Outcome"], first["DiskId"]) == (200, "Succeeded", D1)
    assert first["SnapshotId"] and invoke.reinit_count(D1) == 1
    [call] = cloud.calls("ReInitDisk")
    assert call["Params"]["AutoStartInstance"] == "true"  # the function stopped it: the wipe restores it
    assert cloud.ecs.snapshots[first["SnapshotId"]].tags.get("reinit:wiped-after") == "true"
    second = decide(invoke, clock, token)
    assert (second["Outcome"], second["Duplicate"]) == ("Succeeded", True) and invoke.reinit_count(D1) == 1
    assert invoke.messages()[-1]["Duplicate"] is True


def test_approve_twice_with_a_store_answers_from_the_stored_first(invoke, cloud, gated, clock, redis_store):
    token = held(invoke)["Approval"]["Token"]
    first = decide(invoke, clock, token)
    clock.advance(30)
    second = decide(invoke, clock, token)
    assert first["Outcome"] == "Succeeded" and (second["Outcome"], second["Duplicate"]) == ("Succeeded", True)
    assert second["EcsRequestId"] == first["EcsRequestId"] and invoke.reinit_count(D1) == 1


def test_approve_after_the_disk_moved_wipes_nothing(invoke, cloud, gated, clock):
    token = held(invoke)["Approval"]["Token"]
    cloud.ecs.disks[D1].instance_id = instance_id(2)
    answer = decide(invoke, clock, token)
    assert (answer["Outcome"], answer["Code"], answer["Retryable"]) == ("Rejected", "IncorrectDiskStatus", False)
    assert wipes(cloud) == 0


def test_approve_after_the_instance_was_started_wipes_nothing(invoke, cloud, gated, clock):
    token = held(invoke)["Approval"]["Token"]
    cloud.ecs.start_instance(I1)
    clock.advance(10)
    answer = decide(invoke, clock, token)
    assert (answer["Outcome"], answer["Code"]) == ("Rejected", "IncorrectInstanceStatus") and wipes(cloud) == 0


def test_approve_after_the_instance_was_started_and_stopped_again_wipes_nothing(invoke, cloud, gated, clock):
    token = held(invoke)["Approval"]["Token"]
    clock.advance(120)
    cloud.ecs.start_instance(I1)
    clock.advance(60)
    cloud.ecs.stop_instance(I1)
    clock.advance(60)
    assert cloud.ecs.status_of(I1) == "Stopped"
    answer = decide(invoke, clock, token)
    assert answer["Code"] == "IncorrectInstanceStatus" and "started since" in answer["Message"] and wipes(cloud) == 0


def test_approve_after_the_tag_was_removed_wipes_nothing(invoke, cloud, gated, clock):
    token = held(invoke)["Approval"]["Token"]
    del cloud.ecs.disks[D1].tags["reinit-allowed"]
    assert decide(invoke, clock, token)["Code"] == "Forbidden.TagRequired" and wipes(cloud) == 0


def test_an_approval_while_the_snapshot_is_progressing_waits_for_it(invoke, cloud, gated, clock):
    cloud.ecs.timings["snapshot"] = 900.0  # longer than the invocation: the gate does not wait for it
    answer = invoke(incident(Snapshot=True), timeout=60)
    assert answer["Outcome"] == "AwaitingApproval" and answer["Approval"]["SnapshotStatus"].startswith("progressing")
    token = answer["Approval"]["Token"]
    early = decide(invoke, clock, token)
    assert (early["Outcome"], early["Code"], early["Retryable"]) == ("Rejected", "DiskCreatingSnapshot", True)
    assert wipes(cloud) == 0
    clock.advance(900)
    late = decide(invoke, clock, token)
    assert late["Outcome"] == "Succeeded" and invoke.reinit_count(D1) == 1


def test_approve_after_the_snapshot_failed_wipes_nothing(invoke, cloud, gated, clock):
    cloud.ecs.timings["snapshot"] = 900.0
    answer = invoke(incident(Snapshot=True), timeout=60)
    cloud.ecs.fail_snapshot(answer["SnapshotId"])
    assert decide(invoke, clock, answer["Approval"]["Token"])["Code"] == "SnapshotFailed" and wipes(cloud) == 0


# -- deny ---------------------------------------------------------------------------------
def test_deny_keeps_the_instance_contained_and_names_it(invoke, cloud, gated, clock):
    token = held(invoke)["Approval"]["Token"]
    answer = decide(invoke, clock, token, "Deny")
    assert (answer["statusCode"], answer["Outcome"], answer["Code"]) == (403, "Rejected", "ApprovalDenied")
    assert answer["InstanceLeftStopped"] == I1 and I1 in answer["Message"]
    assert cloud.ecs.status_of(I1) == "Stopped" and wipes(cloud) == 0
    assert invoke.messages()[-1]["Code"] == "ApprovalDenied"


def test_an_approval_after_a_denial_wipes_nothing(invoke, cloud, gated, clock):
    token = held(invoke)["Approval"]["Token"]
    decide(invoke, clock, token, "Deny")
    answer = decide(invoke, clock, token)
    assert (answer["Code"], answer["Duplicate"]) == ("ApprovalDenied", True) and wipes(cloud) == 0


# -- the door's two keys ------------------------------------------------------------------
def test_an_approval_signed_with_the_webhook_secret_is_refused(invoke, cloud, gated, clock):
    token = held(invoke)["Approval"]["Token"]
    before = len(invoke.messages())
    answer = decide(invoke, clock, token, secret=WEBHOOK_SECRET)
    assert (answer["statusCode"], answer["Code"]) == (401, "Unauthorized.Approval")
    assert wipes(cloud) == 0 and len(invoke.messages()) == before  # refused at the door: logged only


def test_the_approvers_secret_can_do_nothing_but_decide(invoke, cloud, gated, clock):
    answer = invoke.http({"DiskId": disk_id(2)}, secret=APPROVER_SECRET)
    assert (answer["statusCode"], answer_of(answer)["Code"]) == (401, "Unauthorized.Signature")
    token = held(invoke)["Approval"]["Token"]
    mixed = invoke.http({"Approve": token, "DiskId": disk_id(2)}, secret=APPROVER_SECRET)
    assert mixed["statusCode"] == 401 and wipes(cloud) == 0


def test_an_unsigned_or_wrongly_signed_approval_is_refused(invoke, cloud, gated, clock):
    token = held(invoke)["Approval"]["Token"]
    assert decide(invoke, clock, token, secret="someone-else")["Code"] == "Unauthorized.Signature"
    assert invoke.http({"Approve": token}, sign=False)["statusCode"] == 401 and wipes(cloud) == 0


# -- tokens -------------------------------------------------------------------------------
def _parts(token: str) -> tuple[dict, str]:
    _, body, mac = token.split(".")
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))), mac


def _rebuilt(payload: dict, mac: str) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).decode()
    return f"rat1.{body.rstrip('=')}.{mac}"


CHANGES = {
    "Disk": disk_id(2), "Instance": instance_id(2), "Snapshot": "s-bp1other000000001", "Request": "reinit-other",
    "Region": "cn-shanghai", "Expires": 4102444800, "StartTime": "2030-01-01T00:00Z", "AutoStart": False,
    "KeyPairName": "ops-key", "Strategy": "Deactive", "Wait": True, "EventType": "other:type", "RequestedBy": "me",
    "Account": "1987654321098765",  # a member account: the approval would act there
}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_a_token_with_any_field_changed_is_refused_and_does_nothing(invoke, cloud, gated, clock, field):
    payload, mac = _parts(held(invoke, Snapshot=True)["Approval"]["Token"])
    assert field in payload and payload[field] != CHANGES[field]
    answer = decide(invoke, clock, _rebuilt({**payload, field: CHANGES[field]}, mac))
    assert (answer["statusCode"], answer["Outcome"], answer["Code"]) == (401, "Rejected", "Unauthorized.Approval")
    assert wipes(cloud) == 0 and invoke.reinit_count(disk_id(2)) == 0


def test_an_expired_token_is_refused(invoke, cloud, gated, clock):
    gated["REINIT_APPROVAL_TTL_SECONDS"] = "600"
    token = held(invoke)["Approval"]["Token"]
    clock.advance(601)
    answer = decide(invoke, clock, token)
    assert (answer["statusCode"], answer["Code"]) == (401, "Unauthorized.Approval") and wipes(cloud) == 0


def test_another_disks_signature_does_not_make_a_token_for_this_disk(invoke, cloud, gated, clock):
    first = held(invoke)["Approval"]["Token"]
    second = held(invoke, instance=instance_id(2), event_id="incident-2")["Approval"]["Token"]
    payload, _ = _parts(first)
    _, other_mac = _parts(second)
    assert decide(invoke, clock, _rebuilt(payload, other_mac))["Code"] == "Unauthorized.Approval"
    assert wipes(cloud) == 0


@pytest.mark.parametrize("keyed_with", ["approver only", "webhook only", "the old label"])
def test_a_token_forged_with_one_secret_alone_is_refused(invoke, cloud, gated, clock, keyed_with):
    payload, _ = _parts(held(invoke)["Approval"]["Token"])
    key = {"approver only": APPROVER_SECRET.encode(), "webhook only": WEBHOOK_SECRET.encode(),
           "the old label": approval_token.token_key(WEBHOOK_SECRET, APPROVER_SECRET)}[keyed_with]
    grant = approval_token._grant(payload)
    assert decide(invoke, clock, approval_token.sign_token(grant, key))["Code"] == "Unauthorized.Approval"
    assert wipes(cloud) == 0


@pytest.mark.parametrize("token", ["", "rat1..", "rat2.e30.AAAA", "x" * 5000, 7, None, ["rat1"], "rat1.!!.??"])
def test_a_malformed_token_is_refused(invoke, cloud, gated, clock, token):
    answer = decide(invoke, clock, token)
    assert (answer["statusCode"], answer["Code"]) == (401, "Unauthorized.Approval") and cloud.calls() == []


def test_the_approvers_secret_never_appears_in_what_is_published(invoke, cloud, gated, clock):
    token = held(invoke)["Approval"]["Token"]
    decide(invoke, clock, token)
    decide(invoke, clock, "rat1.forged.token")
    assert APPROVER_SECRET not in json.dumps(invoke.messages())


# -- the operator's side: python -m reinit approve / deny ----------------------------------
@pytest.fixture
def trigger(invoke):
    import index
    from emulator.trigger import TriggerServer
    server = TriggerServer(index.handler).start()
    yield server.url
    server.stop()


def cli(*args, secret: str | None = APPROVER_SECRET):
    import os
    import pathlib
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REINIT_", "ALIBABA_CLOUD_"))}
    if secret:
        env["REINIT_APPROVER_SECRET"] = secret
    return subprocess.run([sys.executable, "-m", "reinit", *args], cwd=pathlib.Path(__file__).resolve().parents[1],
                          capture_output=True, env=env, timeout=120)


def test_approve_from_the_cli_wipes_once_and_exits_by_the_table(invoke, cloud, gated, trigger):
    token = held(invoke)["Approval"]["Token"]
    forged = cli("approve", token[:-4] + "AAAA", "--url", trigger)
    assert forged.returncode == 3 and json.loads(forged.stdout)["Code"] == "Unauthorized.Approval"
    approved = cli("approve", token, "--url", trigger)
    assert approved.returncode == 0, approved.stderr.decode()[-2000:]
    assert json.loads(approved.stdout)["Outcome"] == "Succeeded" and invoke.reinit_count(D1) == 1
    as_webhook = cli("approve", token, "--url", trigger, secret=WEBHOOK_SECRET)
    assert as_webhook.returncode == 3 and invoke.reinit_count(D1) == 1


def test_deny_from_the_cli_exits_0_and_wipes_nothing(invoke, cloud, gated, trigger):
    token = held(invoke)["Approval"]["Token"]
    denied = cli("deny", token, "--url", trigger)
    assert denied.returncode == 0 and json.loads(denied.stdout)["Code"] == "ApprovalDenied"
    assert cli("approve", token, "--url", trigger).returncode == 3 and wipes(cloud) == 0


def test_the_cli_says_in_one_line_what_is_missing():
    no_secret = cli("approve", "rat1.x.y", "--url", "http://127.0.0.1:9/", secret=None)
    assert no_secret.returncode == 2 and b"REINIT_APPROVER_SECRET" in no_secret.stderr
    clear_text = cli("deny", "rat1.x.y", "--url", "http://reinit.example.com/")
    assert clear_text.returncode == 2 and b"http://" in clear_text.stderr and b"Traceback" not in clear_text.stderr


def test_a_redelivered_incident_with_a_store_answers_with_the_same_token(invoke, cloud, gated, clock, redis_store):
    first = held(invoke, Snapshot=True)
    again = invoke(incident(Snapshot=True))
    assert (again["Outcome"], again["Duplicate"]) == ("AwaitingApproval", True)
    assert again["Approval"]["Token"] == first["Approval"]["Token"]
    assert len(cloud.calls("StopInstance")) == 1 and len(cloud.calls("CreateSnapshot")) == 1


class Crash(BaseException):
    """The invocation dies (the platform's timeout, a kill): not an error the handler answers."""


def test_an_approval_that_died_after_marking_the_disk_is_carried_out_by_the_next(
        invoke, cloud, gated, clock, redis_store, monkeypatch):
    """With a store, its record says whether ReInitDisk was reached; the mark alone must not
    answer "already done" (found by review: the next approval answered Duplicate and nothing
    was ever wiped)."""
    token = held(invoke)["Approval"]["Token"]

    def die(*args, **kwargs):
        raise Crash()

    with monkeypatch.context() as patch, pytest.raises(Crash):
        patch.setattr(approval, "carry_out", die)
        decide(invoke, clock, token)
    assert cloud.ecs.disks[D1].tags.get(approval.MARK_TAG)  # marked, then died before ReInitDisk
    clock.advance(400)  # the dead holder's time runs out
    answer = decide(invoke, clock, token)
    assert (answer["Outcome"], answer.get("Duplicate")) == ("Succeeded", None) and invoke.reinit_count(D1) == 1


def test_an_approval_in_doubt_whose_disk_is_gone_is_not_found_not_an_internal_error(invoke, cloud, gated, clock):
    """The approved ReInitDisk's answer is lost and the look fails: in doubt. The disk is
    released before the Approve is sent again: the look-again was handed no disk and the
    approver got InternalError (found by mypy with strict_optional on)."""
    token = held(invoke)["Approval"]["Token"]
    cloud.faults.inject("ReInitDisk", when="drop_after")
    cloud.faults.inject("DescribeDisks", code="ServiceUnavailable", status=503, times=1000, skip=1)
    assert decide(invoke, clock, token)["Code"] == "Indeterminate"
    cloud.faults.clear()
    del cloud.ecs.disks[D1]
    answer = decide(invoke, clock, token)
    assert (answer["statusCode"], answer["Outcome"], answer["Code"]) == (404, "Rejected", "InvalidDiskId.NotFound")
    assert (answer["DiskId"], answer["InstanceId"]) == (D1, I1) and wipes(cloud) == 1
    assert invoke.messages()[-1]["Code"] == "InvalidDiskId.NotFound"


def test_a_store_that_forgets_before_the_token_expires_is_config_invalid(invoke, cloud, gated, redis_store):
    gated.update(REINIT_IDEMPOTENCY_TTL="3600", REINIT_APPROVAL_TTL_SECONDS="7200")
    assert invoke(incident())["Code"] == "Config.Invalid" and cloud.calls() == []


# -- once-only rests on the store (red-team F6/F9) ----------------------------------------
@pytest.mark.parametrize("mode", ["incident", "batch", "always"])
def test_approval_without_a_store_is_config_invalid_and_calls_nothing(invoke, cloud, gated, mode):
    """Without a store, once-only rested on one tag value on the disk, which a later
    decision on that disk for another request overwrote: a denied token could wipe, a
    token could wipe twice, a reused ClientToken's approval answered Duplicate unwiped."""
    gated.update(REINIT_APPROVAL=mode)
    gated.pop("REINIT_IDEMPOTENCY_URL")
    answer = invoke(incident())
    assert (answer["Outcome"], answer["Code"]) == ("Failed", "Config.Invalid") and cloud.calls() == []
    assert "REINIT_APPROVAL" in answer["Message"] and "REINIT_IDEMPOTENCY_URL" in answer["Message"]


def test_an_approval_sent_once_the_store_is_gone_is_config_invalid_and_wipes_nothing(invoke, cloud, gated, clock):
    token = held(invoke)["Approval"]["Token"]
    gated.pop("REINIT_IDEMPOTENCY_URL")
    answer = decide(invoke, clock, token)
    assert (answer["Outcome"], answer["Code"]) == ("Failed", "Config.Invalid") and wipes(cloud) == 0


def test_a_denied_token_does_not_wipe_after_another_incidents_approval_on_the_same_disk(invoke, cloud, gated, clock):
    """(a) deny A; a second incident B on the same disk is held and approved (one wipe);
    approving A afterwards must not call ReInitDisk again."""
    a = held(invoke, event_id="incident-a", AutoStartInstance=False)["Approval"]["Token"]
    assert decide(invoke, clock, a, "Deny")["Code"] == "ApprovalDenied"
    clock.advance(5)
    b = held(invoke, event_id="incident-b", AutoStartInstance=False)["Approval"]["Token"]
    assert a != b and decide(invoke, clock, b)["Outcome"] == "Succeeded" and invoke.reinit_count(D1) == 1
    clock.advance(60)
    assert cloud.ecs.status_of(I1) == "Stopped"
    again = decide(invoke, clock, a)
    assert (again["Outcome"], again["Code"], again["Duplicate"]) == ("Rejected", "ApprovalDenied", True)
    assert invoke.reinit_count(D1) == 1


def test_two_denials_on_one_disk_keep_both_denied(invoke, cloud, gated, clock):
    """(b) deny A, deny B (another incident on the same disk), approve A: no wipe."""
    a = held(invoke, event_id="incident-a")["Approval"]["Token"]
    assert decide(invoke, clock, a, "Deny")["Code"] == "ApprovalDenied"
    clock.advance(5)
    b = held(invoke, event_id="incident-b")["Approval"]["Token"]
    assert decide(invoke, clock, b, "Deny")["Code"] == "ApprovalDenied"
    for token in (a, b):
        answer = decide(invoke, clock, token)
        assert (answer["Code"], answer["Duplicate"]) == ("ApprovalDenied", True)
    assert wipes(cloud) == 0


def test_a_reused_client_token_is_never_held_into_a_silent_duplicate(invoke, cloud, gated, clock):
    """(c) a request approved and wiped; a later request reusing its ClientToken is
    answered from the first (the same request: its token, whose approval answers from
    the stored wipe) or refused (another request), never held anew with a token whose
    approval answers Succeeded without ReInitDisk."""
    gated["REINIT_APPROVAL"] = "always"
    d2, d3 = disk_id(2), disk_id(3)
    first = answer_of(invoke.http({"DiskId": d2, "ClientToken": "ticket-7"}))
    token = first["Approval"]["Token"]
    wiped = decide(invoke, clock, token)
    assert wiped["Outcome"] == "Succeeded" and invoke.reinit_count(d2) == 1
    clock.advance(600)
    same = answer_of(invoke.http({"DiskId": d2, "ClientToken": "ticket-7"}))
    assert (same["Outcome"], same["Duplicate"], same["Approval"]["Token"]) == ("AwaitingApproval", True, token)
    again = decide(invoke, clock, token)
    assert (again["Outcome"], again["Duplicate"], again["EcsRequestId"]) == ("Succeeded", True, wiped["EcsRequestId"])
    other = answer_of(invoke.http({"DiskId": d3, "ClientToken": "ticket-7"}))
    assert (other["Outcome"], other["Code"]) == ("Rejected", "InvalidParameter.Conflict")
    assert "Approval" not in other and invoke.reinit_count(d2) == 1 and invoke.reinit_count(d3) == 0


def test_a_client_token_reused_after_its_request_record_expired_is_refused_not_silently_duplicate(
        invoke, cloud, gated, clock, redis_store):
    """(c), with a store, in the window where the hold's records have expired but the
    decision's (written later) is kept: a new request under the same ClientToken would be
    held with a token sharing that decision, and its approval answer Duplicate without
    ReInitDisk (found in this review). It is refused at the gate instead, wiping nothing."""
    import redis

    from reinit.idempotency import _digest
    gated["REINIT_APPROVAL"] = "always"
    d2 = disk_id(2)
    first = answer_of(invoke.http({"DiskId": d2, "ClientToken": "ticket-7"}))
    assert decide(invoke, clock, first["Approval"]["Token"])["Outcome"] == "Succeeded"
    client = redis.Redis.from_url(redis_store)
    # What the TTL does first to the hold's own records (request and event); the decision's stays.
    client.delete(*client.keys("reinit:request:*"), f"reinit:event:{_digest('client-token:ticket-7')}:{d2}")
    clock.advance(600)
    again = answer_of(invoke.http({"DiskId": d2, "ClientToken": "ticket-7"}))
    assert (again["Outcome"], again["Code"]) == ("Rejected", "InvalidParameter.Conflict"), again
    assert "Approval" not in again and invoke.reinit_count(d2) == 1
