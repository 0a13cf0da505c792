"""Validation (INTERFACE.md sections 3 and 11): each bad input gets its code and never
reaches ECS. Unit rows first; then the same table end to end, asserting no ECS call."""

from __future__ import annotations

import pytest

from reinit.events import EVENTBRIDGE, INVOKE
from reinit.request import Password, RequestError, parse_request, password_problem

D, INST = "d-bp1test00000000001", "i-bp1test00000000001"

# (request, expected code)
BAD = [
    ({}, "MissingParameter.DiskId"),
    ({"DiskId": None}, "MissingParameter.DiskId"),
    ({"DiskId": None, "InstanceId": INST}, "MissingParameter.DiskId"),
    ({"InstanceId": None}, "InvalidParameter.Type"),
    ({"DiskId": D, "InstanceId": None}, "InvalidParameter.Type"),
    ({"DiskID": D}, "InvalidParameter.Unknown"),
    ({"DiskId": D, "password": "Abcdefg1!"}, "InvalidParameter.Unknown"),
    ({"DiskId": 12345678}, "InvalidParameter.Type"),
    ({"InstanceId": ["i-x"]}, "InvalidParameter.Type"),
    ({"DiskId": D, "DryRun": "yes"}, "InvalidParameter.Type"),
    ({"DiskId": D, "DryRun": 1}, "InvalidParameter.Type"),
    ({"DiskId": D, "StopInstance": None}, "InvalidParameter.Type"),
    ({"DiskId": D, "Password": 12345678}, "InvalidParameter.Type"),
    ({"DiskId": D, "Password": None}, "InvalidParameter.Type"),
    ({"DiskId": "d-short"}, "InvalidDiskId.Malformed"),
    ({"DiskId": "D-BP1TEST00000000001"}, "InvalidDiskId.Malformed"),
    ({"DiskId": "d-bp1tést0000000001"}, "InvalidDiskId.Malformed"),
    ({"DiskId": "d-" + "a" * 33}, "InvalidDiskId.Malformed"),
    ({"DiskId": D + "\n"}, "InvalidDiskId.Malformed"),
    ({"InstanceId": "i-"}, "InvalidInstanceId.Malformed"),
    ({"InstanceId": "d-bp1test00000000001"}, "InvalidInstanceId.Malformed"),
    ({"DiskId": D, "Password": "Abcdefg1!", "KeyPairName": "ops-key"}, "InvalidParameter.Conflict"),
    ({"DiskId": D, "DiskIds": [D]}, "InvalidParameter.Conflict"),
    ({"DiskId": D, "Tags": [{"Key": "a"}]}, "InvalidParameter.Conflict"),
    ({"InstanceId": INST, "DiskIds": [D]}, "InvalidParameter.Conflict"),
    ({"DiskIds": [D], "Tags": [{"Key": "a"}]}, "InvalidParameter.Conflict"),
    ({"DiskIds": [D], "DiskType": "system"}, "InvalidParameter.Conflict"),
    ({"DiskId": D, "MaxErrors": 2}, "InvalidParameter.Conflict"),
    ({"DiskId": D, "Password": "Ab1!"}, "InvalidPassword.Malformed"),
    ({"DiskId": D, "Password": "Abcdefgh1!" * 4}, "InvalidPassword.Malformed"),
    ({"DiskId": D, "Password": "abcdefgh"}, "InvalidPassword.Malformed"),
    ({"DiskId": D, "Password": "abcdefg1"}, "InvalidPassword.Malformed"),
    ({"DiskId": D, "Password": "Abcdefg1 "}, "InvalidPassword.Malformed"),
    ({"DiskId": D, "Password": "Abcdefg1\""}, "InvalidPassword.Malformed"),
    ({"DiskId": D, "Password": "Ábcdefg1!"}, "InvalidPassword.Malformed"),
    ({"DiskId": D, "KeyPairName": "k"}, "InvalidKeyPairName.Malformed"),
    ({"DiskId": D, "KeyPairName": "1key"}, "InvalidKeyPairName.Malformed"),
    ({"DiskId": D, "KeyPairName": "key pair"}, "InvalidKeyPairName.Malformed"),
    ({"DiskId": D, "KeyPairName": "k" * 129}, "InvalidKeyPairName.Malformed"),
    ({"DiskId": D, "SecurityEnhancementStrategy": "active"}, "InvalidSecurityEnhancementStrategy.ValueNotSupported"),
    ({"DiskIds": []}, "MissingParameter.DiskId"),
    ({"DiskIds": "d-bp1test00000000001"}, "InvalidParameter.Type"),
    ({"DiskIds": [D, "d-bad"]}, "InvalidDiskId.Malformed"),
    ({"Tags": []}, "InvalidParameter.Type"),
    ({"Tags": [{"Key": ""}]}, "InvalidParameter.Type"),
    ({"Tags": [{"Key": "a", "Value": 3}]}, "InvalidParameter.Type"),
    ({"Tags": [{"Key": "a", "value": "b"}]}, "InvalidParameter.Unknown"),
    ({"Tags": [{"Key": str(n)} for n in range(21)]}, "InvalidParameter.Type"),
    ({"Tags": [{"Key": "a"}], "DiskType": "root"}, "InvalidParameter.Type"),
    ({"Tags": [{"Key": "a"}], "MaxErrors": 0}, "InvalidParameter.Type"),
    ({"Tags": [{"Key": "a"}], "MaxErrors": True}, "InvalidParameter.Type"),
    ({"Tags": [{"Key": "a"}], "MaxErrors": "3"}, "InvalidParameter.Type"),
]


@pytest.mark.parametrize("fields,code", BAD, ids=[f"{c}:{sorted(f)}" for f, c in BAD])
def test_bad_requests_are_refused_with_their_code(fields, code):
    with pytest.raises(RequestError) as info:
        parse_request(fields, INVOKE)
    assert info.value.code == code
    assert info.value.status == 400
    assert info.value.outcome == "Rejected"


@pytest.mark.parametrize("fields,code", BAD[:20], ids=[c for _, c in BAD[:20]])
def test_bad_requests_never_reach_ecs(invoke, cloud, fields, code):
    answer = invoke(fields)
    assert (answer["Outcome"], answer["Code"]) == ("Rejected", code)
    assert cloud.calls() == []
    assert invoke.messages()[0]["Code"] == code


def test_good_requests_parse():
    req = parse_request({"DiskId": D, "Password": "Abcdefg1!", "AutoStartInstance": "TRUE", "DryRun": "false",
                         "SecurityEnhancementStrategy": "Deactive", "StopInstance": True, "WaitForCompletion": False}, INVOKE)
    assert (req.disk_id, req.auto_start, req.dry_run, req.stop_instance, req.wait) == (D, True, False, True, False)
    assert req.password.reveal() == "Abcdefg1!"
    batch = parse_request({"Tags": [{"Key": "fleet", "Value": "lab"}, {"Key": "any"}], "DiskType": "data", "MaxErrors": 3}, INVOKE)
    assert batch.is_batch and batch.tags == (("fleet", "lab"), ("any", None)) and batch.disk_type == "data"
    assert parse_request({"DiskIds": [D, D]}, INVOKE).disk_ids == (D,)


def test_eventbridge_reads_lower_case_ids_and_ignores_unknown_fields():
    req = parse_request({"instanceId": INST, "region": "cn-hangzhou", "Whatever": 1}, EVENTBRIDGE)
    assert (req.instance_id, req.disk_id) == (INST, None)
    with pytest.raises(RequestError) as info:
        parse_request({"diskId": "d-nope"}, EVENTBRIDGE)
    assert info.value.code == "InvalidDiskId.Malformed" and info.value.disk_id == "d-nope"


def test_a_malformed_selector_is_cut_to_64_characters(invoke):
    answer = invoke({"DiskId": "d-" + "x" * 200})
    assert answer["Code"] == "InvalidDiskId.Malformed"
    assert answer["DiskId"] == ("d-" + "x" * 200)[:64]


@pytest.mark.parametrize("password", ["Abcdefg1", "abcdefg1!", "ABCDEFG1!", "Abc!@#$%", "/Abcdef12", "aA1" + "()`~!@#$%^&*-_+=|{}[]:;'<>,.?/"[:27], "aA1" + "()`~!@#$%^&*-_+=|{}[]:;'<>,.?/"[3:]])
def test_passwords_the_api_page_allows(password):
    assert password_problem(password) is None


def test_password_never_shows_itself():
    secret = Password("Abcdefg1!")
    assert "Abcdefg1!" not in repr(secret) + str(secret) + f"{secret}" + f"{secret!r}"
    with pytest.raises(TypeError):
        __import__("json").dumps({"p": secret})
    with pytest.raises(TypeError):
        __import__("pickle").dumps(secret)
