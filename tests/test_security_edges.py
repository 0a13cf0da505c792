"""What a red-team pass found (issue 10), each driven at its edge through the real handler,
the real SDKs and the emulator: the parser that checks must be the one that acts."""

from __future__ import annotations

import json
import socket
import threading
from urllib.parse import quote

import pytest

from reinit.config import canonical_endpoint, load_config
from tests.conftest import AK, SECRET, TOKEN, WEBHOOK_SECRET, disk_id, instance_id, load_event

D1 = disk_id(1)
PASSWORD = "Zx9!kLm#Qr2$"


def eventbridge(data, **envelope) -> dict:
    event = load_event("eventbridge")
    event["data"] = data
    event.update(envelope)
    return event


# -- 1. strict JSON ------------------------------------------------------------------------
def test_a_duplicate_key_never_wipes_what_a_reviewer_would_not_see(invoke, cloud):
    raw = f'{{"DiskId": "{D1}", "DryRun": true, "DryRun": false}}'.encode()
    answer = invoke(raw)
    assert (answer["Outcome"], answer["Code"]) == ("Rejected", "InvalidEvent.Malformed")
    assert "twice" in answer["Message"]
    assert invoke.writes() == [] and invoke.reinit_count(D1) == 0
    assert invoke.messages()[-1]["Code"] == "InvalidEvent.Malformed"  # published like any refusal


def test_a_duplicate_key_in_a_signed_body_is_refused_after_the_signature(invoke, cloud):
    raw = f'{{"DiskId": "{disk_id(2)}", "DiskId": "{D1}"}}'.encode()
    answer = invoke.http(raw)
    assert (answer["statusCode"], json.loads(answer["body"])["Code"]) == (400, "InvalidEvent.Malformed")
    assert invoke.writes() == [] and invoke.messages()[-1]["Code"] == "InvalidEvent.Malformed"


@pytest.mark.parametrize("raw,why", [
    (b'{"DiskId": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested deeper"),  # RecursionError before
    (b'{"a": ' + b'{"a": ' * 32 + b"1" + b"}" * 33, "nested deeper"),
    (b'{"DiskId": "x", "MaxErrors": NaN}', "NaN"),
    (b'{"DiskId": "x", "MaxErrors": 1e999}', "finite"),
    (b'{"DiskId": "x", "MaxErrors": ' + b"9" * 5000 + b"}", "digits"),
    (b'{"DiskId": "d-\\ud800abcdefgh"}', "surrogate"),
    (b'{"DiskId": "d-bp1test00000000001"', "not JSON"),
])
def test_what_strict_json_refuses_is_answered_and_published(invoke, cloud, raw, why):
    answer = invoke(raw)
    assert (answer["Outcome"], answer["Code"]) == ("Rejected", "InvalidEvent.Malformed")
    assert why in answer["Message"]
    assert invoke.messages()[-1]["Code"] == "InvalidEvent.Malformed"
    assert invoke.writes() == []


def test_deep_nesting_inside_eventbridge_data_and_timer_payloads_is_malformed_too(invoke):
    deep = "[" * 40 + "]" * 40
    for event in (eventbridge(f'{{"instanceId": {deep}}}'),
                  {**load_event("timer"), "payload": f'{{"DiskIds": {deep}}}'}):
        answer = invoke(event)
        assert (answer["Code"], "nested deeper" in answer["Message"]) == ("InvalidEvent.Malformed", True)


# -- 2. endpoints, as the HTTP client reads them -----------------------------------------------
# Forms on which URL parsers have disagreed (userinfo, backslashes, fragments, encodings):
# each either is refused, or reaches exactly the host the check accepted.
TWO_PARSER_FORMS = [
    "http://attacker.example\\@127.0.0.1:{port}",
    "http://attacker.example@127.0.0.1:{port}",
    "http://127.0.0.1:{port}@attacker.example",
    "http://127.0.0.1:{port}#@attacker.example",
    "http://127.0.0.1:{port}?@attacker.example",
    "http://127.0.0.1%2f@attacker.example:{port}",
    "http://attacker.example%5c@127.0.0.1:{port}",
    "http://127.0.0.1:{port}\\@attacker.example",
    "http://127.0.0.1 .attacker.example:{port}",
    "http://127.0.0.1\t:{port}",
    "http://user:pass@127.0.0.1:{port}",
    "http://127.0.0.1:{port}/path@attacker.example",
]


@pytest.mark.parametrize("form", TWO_PARSER_FORMS)
def test_endpoint_forms_that_two_parsers_read_differently_are_refused(form):
    canonical, problem = canonical_endpoint("REINIT_ECS_ENDPOINT", form.format(port=8080))
    assert canonical is None and problem


@pytest.mark.parametrize("url,expected", [
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://LOCALHOST:8080/", "http://localhost:8080"),
    ("http://[::1]:8080", "http://[::1]:8080"),
    ("https://ecs.cn-hangzhou.aliyuncs.com", "https://ecs.cn-hangzhou.aliyuncs.com"),
])
def test_a_plain_endpoint_is_rebuilt_from_what_was_checked(url, expected):
    assert canonical_endpoint("X", url) == (expected, None)


def test_requests_go_only_where_the_check_said(invoke, cloud, env):
    """A listener on a second loopback address stands for the attacker's host: whatever
    form the endpoint takes, nothing reaches it, and the Password reaches nobody in clear."""
    port = int(cloud.endpoint.rsplit(":", 1)[1])
    seen: list[bytes] = []
    trap = socket.socket()
    trap.bind(("127.0.0.2", port))
    trap.listen(8)
    trap.settimeout(0.2)

    def catch():
        while True:
            try:
                conn, _ = trap.accept()
            except OSError:
                return
            seen.append(conn.recv(65536))
            conn.close()

    catcher = threading.Thread(target=catch, daemon=True)
    catcher.start()
    try:
        for form in ("http://127.0.0.2:{port}\\@127.0.0.1:{port}", "http://127.0.0.1:{port}\\@127.0.0.2:{port}",
                     "http://127.0.0.2:{port}@127.0.0.1:{port}", "http://127.0.0.1:{port}#@127.0.0.2:{port}"):
            env["REINIT_ECS_ENDPOINT"] = form.format(port=port)
            answer = invoke({"DiskId": D1, "Password": PASSWORD})
            assert answer["Code"] == "Config.Invalid", form
        env["REINIT_ECS_ENDPOINT"] = cloud.endpoint
        assert invoke({"DiskId": D1, "Password": PASSWORD})["Outcome"] == "Succeeded"
    finally:
        trap.close()
        catcher.join(timeout=2)
    assert seen == []
    assert invoke.reinit_count(D1) == 1  # only the checked endpoint got the call


# -- 3. no Password in an invocation payload ---------------------------------------------------
def test_a_batch_that_must_be_split_with_a_password_is_refused_whole(invoke, cloud, env):
    env.update(REINIT_FC_ENDPOINT=cloud.endpoint, REINIT_FUNCTION_NAME="reinit", REINIT_FLEET_CHUNK="2",
               REINIT_MAX_DISKS="10")
    cloud.fc.register("reinit", lambda event, ctx: None)
    payload = json.dumps({"DiskIds": [disk_id(n) for n in range(1, 5)], "Password": PASSWORD})
    summary = invoke({**load_event("timer"), "payload": payload})
    assert (summary["Outcome"], summary["Code"]) == ("Rejected", "Forbidden.SplitWithPassword")
    assert cloud.calls(service="fc") == [] and invoke.writes() == []
    assert all(json.dumps(i["Payload"]).find(PASSWORD) < 0 for i in cloud.fc.invocations)


def test_a_split_batch_without_a_password_carries_none(invoke, cloud, env):
    env.update(REINIT_FC_ENDPOINT=cloud.endpoint, REINIT_FUNCTION_NAME="reinit", REINIT_FLEET_CHUNK="2")
    cloud.fc.register("reinit", lambda event, ctx: None)
    summary = invoke({**load_event("timer"), "payload": json.dumps({"DiskIds": [disk_id(n) for n in range(1, 5)]})})
    assert summary["Chunks"] == 2
    cloud.fc.run_pending()
    assert all("Password" not in i["Payload"] for i in cloud.fc.invocations)


# -- 4. foreign text is scrubbed ---------------------------------------------------------------
def test_an_ecs_error_that_echoes_the_request_is_scrubbed_everywhere(invoke, cloud, capsys):
    twice = quote(quote(PASSWORD, safe=""), safe="")
    echo = (f"The request signature does not conform to Aliyun standards. server string to sign is:"
            f"POST&%2F&AccessKeyId%3D{AK}%26Action%3DReInitDisk%26Password%3D{twice}%26SecurityToken%3D"
            f"{quote(quote(TOKEN, safe=''), safe='')}")
    cloud.faults.inject("ReInitDisk", code="SignatureDoesNotMatch", status=400, message=echo)
    answer = invoke({"DiskId": D1, "Password": PASSWORD})
    assert answer["Code"] == "SignatureDoesNotMatch" and "<redacted>" in answer["Message"]
    text = json.dumps(answer) + json.dumps(invoke.messages()) + capsys.readouterr().out
    for secret in (PASSWORD, TOKEN, SECRET):
        for form in (secret, quote(secret, safe=""), quote(quote(secret, safe=""), safe="")):
            assert form not in text


# -- 5. no credentials from events -------------------------------------------------------------
@pytest.mark.parametrize("field", ["Password", "password", "KeyPairName", "keyPairName", "KEYPAIRNAME"])
def test_the_event_bus_cannot_choose_the_login(invoke, cloud, field):
    answer = invoke(eventbridge({"instanceId": instance_id(1), field: "Zz9!zzzzzz"}))
    assert (answer["Outcome"], answer["Code"]) == ("Rejected", "Forbidden.EventCredential")
    assert invoke.writes() == [] and invoke.messages()[-1]["Code"] == "Forbidden.EventCredential"


def test_an_event_reinit_binds_the_functions_own_key_pair(invoke, cloud, env):
    env["REINIT_EVENT_KEY_PAIR_NAME"] = "ops-key"
    assert invoke(eventbridge({"instanceId": instance_id(1)}))["Outcome"] == "Succeeded"
    assert cloud.ecs.disks[D1].last_reinit["KeyPairName"] == "ops-key"


# -- 6. every door refuses bad input cleanly ---------------------------------------------------
def test_a_5000_digit_timestamp_is_401_not_500(invoke, cloud):
    event = load_event("http")
    event["body"] = json.dumps({"DiskId": D1})
    event["headers"] = {"X-Reinit-Timestamp": "9" * 5000, "X-Reinit-Signature": "sha256=" + "0" * 64}
    answer = invoke(event)
    assert (answer["statusCode"], json.loads(answer["body"])["Code"]) == (401, "Unauthorized.Signature")


@pytest.mark.parametrize("value", ["²", "١٠", "５０", "1_0", " 5e1", "0x10", "1" * 40])
def test_configuration_numbers_are_ascii_digits_only(invoke, env, value):
    env["REINIT_MAX_DISKS"] = value
    assert any("REINIT_MAX_DISKS" in p for p in load_config(env).problems)
    import index
    index.initialize(invoke.context())  # does not crash
    assert invoke({"DiskId": D1})["Code"] == "Config.Invalid"


@pytest.mark.parametrize("value", ["１.５", "nan", "inf", "1e3", "²"])
def test_configuration_fractions_are_ascii_too(env, value):
    env["REINIT_POLL_SECONDS"] = value
    assert any("REINIT_POLL_SECONDS" in p for p in load_config(env).problems)


@pytest.mark.parametrize("event_id", [None, 7, 7.0, True, "", ["x"]])
def test_cloudevent_ids_are_strings_only(invoke, cloud, event_id):
    answer = invoke(eventbridge({"instanceId": instance_id(1)}, id=event_id))
    assert (answer["Code"], answer["EventId"]) == ("InvalidEvent.Malformed", None)
    assert invoke.writes() == []


def test_ids_that_would_collide_as_text_name_different_events(invoke, cloud, redis_store):
    # Before: null and "None", 7 and "7" were one key in the store.
    assert invoke(eventbridge({"instanceId": instance_id(1)}, id="7"))["Outcome"] == "Succeeded"
    assert invoke(eventbridge({"instanceId": instance_id(1)}, id=7))["Code"] == "InvalidEvent.Malformed"
    assert invoke.reinit_count(D1) == 1


def test_a_lone_surrogate_never_loses_a_log_line(capsys):
    from reinit.log import Log
    Log({"invocation": "x"}).info("result", disk="d-\ud800bad")
    line = capsys.readouterr().out
    assert '"event": "result"' in line and "ud800" in line


def test_a_lone_surrogate_in_a_local_dict_event_is_answered(invoke, cloud):
    import index
    answer = index.handler({"DiskId": "d-\udc00abcdefgh"}, invoke.context())
    assert answer["Code"] == "InvalidEvent.Malformed"
    json.dumps(answer).encode("utf-8")  # the answer itself is always valid text


def test_the_webhook_secret_is_not_in_a_refusal(invoke):
    answer = invoke.http({"DiskId": D1}, secret=WEBHOOK_SECRET + "x")
    assert WEBHOOK_SECRET not in json.dumps(answer)
