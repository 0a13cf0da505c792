"""Secrets: the password, the webhook secret and the STS credentials never appear in a log
line, a response, a published message or an exception, whatever happens."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest

from reinit.ecs import classify_sdk_error
from reinit.log import Log
from tests.conftest import AK, SECRET, TOKEN, WEBHOOK_SECRET, disk_id, instance_id, load_event

# A password with every kind of character that changes under JSON or URL encoding.
PASSWORD = "Pa$$w0rd/+=&?#'<>!"


class Capture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def everything(invoke, cloud, capsys):
    """Collects every log line (stdout and logging), answer, exception and message."""
    handler = Capture()
    root = logging.getLogger()
    root.addHandler(handler)
    seen = []

    def run(event, **kw):
        try:
            seen.append(json.dumps(invoke(event, **kw)))
        except Exception as err:  # InvocationFailed carries the notification
            seen.append(f"{type(err).__name__}: {err}")

    yield run, seen, handler
    root.removeHandler(handler)


def _all_text(seen, handler, capsys, invoke):
    out = capsys.readouterr()
    return "\n".join([*seen, *handler.lines, out.out, out.err, *(json.dumps(m) for m in invoke.messages())])


def _forms(value):
    from urllib.parse import quote, quote_plus
    return {value, json.dumps(value)[1:-1], quote(value, safe=""), quote_plus(value, safe="")}


def test_no_secret_leaks_in_any_flow(everything, invoke, cloud, capsys, monkeypatch):
    run, seen, handler = everything
    cloud.ecs.instances[instance_id(2)].os_type = "windows"
    cloud.ecs.instances[instance_id(3)].status = "Running"
    run({"DiskId": disk_id(1), "Password": PASSWORD})                                   # success
    run({"DiskId": disk_id(2), "Password": "/" + PASSWORD[1:]})                          # Windows rule
    run({"DiskId": disk_id(3), "Password": PASSWORD, "StopInstance": True, "WaitForCompletion": True})
    run({"DiskId": disk_id(4), "Password": PASSWORD + "x" * 30})                         # too long
    run({"DiskId": disk_id(4), "Password": PASSWORD, "KeyPairName": "ops-key"})          # conflict
    run({"DiskId": disk_id(4), "Password": PASSWORD, "Bogus": PASSWORD})                 # unknown field
    event = load_event("eventbridge")
    event["data"] = {"instanceId": instance_id(4), "Password": PASSWORD}
    run(event)
    cloud.faults.inject("ReInitDisk", code="InternalError", status=500, when="after")   # ambiguous
    cloud.ecs.disks[disk_id(1)].status = "In_use"
    cloud.ecs.disks[disk_id(1)].pending = []
    run({"DiskId": disk_id(1), "Password": PASSWORD})
    cloud.faults.inject("ReInitDisk", code="InvalidPassword.Malformed", status=400)      # ECS refuses it
    cloud.ecs.disks[disk_id(1)].status = "In_use"
    run({"DiskId": disk_id(1), "Password": PASSWORD})
    seen.append(json.dumps(invoke.http({"DiskId": disk_id(1), "Password": PASSWORD})))  # webhook
    seen.append(json.dumps(invoke.http({"DiskId": disk_id(1), "Password": PASSWORD}, secret="wrong")))
    creds = SimpleNamespace(access_key_id=AK, access_key_secret=SECRET, security_token=TOKEN)
    run({"DiskId": disk_id(1), "Password": PASSWORD, "DryRun": True}, credentials=creds)

    import reinit.app

    def bug(ctx, req):  # a bug whose exception text carries the password and the secret
        raise RuntimeError(f"boom {req.password.reveal()} {SECRET} {TOKEN}")

    monkeypatch.setattr(reinit.app, "run_single", bug)
    run({"DiskId": disk_id(1), "Password": PASSWORD})
    text = _all_text(seen, handler, capsys, invoke)
    assert "boom" in text and "internal.error" in text  # the bug was logged...
    for secret in (PASSWORD, "/" + PASSWORD[1:], WEBHOOK_SECRET, SECRET, TOKEN):
        for form in _forms(secret):
            assert form not in text, f"a secret leaked in the form {form!r}"
    assert cloud.ecs.disks[disk_id(1)].last_reinit["PasswordSet"] is True  # ...and ECS did get the password


def test_network_errors_lose_the_query_string():
    class Inner(Exception):
        pass

    err = SimpleNamespace(inner_exception=Inner(
        "HTTPConnectionPool(host='ecs', port=80): Max retries exceeded with url: /?Action=ReInitDisk&Password=Pa%24%24w0rd"))
    classified = classify_sdk_error("ReInitDisk", err)
    assert "Pa%24%24w0rd" not in str(classified) and "Password" not in str(classified)
    assert classified.kind == "network"


def test_the_log_redacts_every_encoding(capsys):
    log = Log(secrets=[PASSWORD])
    from urllib.parse import quote
    log.info("x", plain=PASSWORD, url=f"/?Password={quote(PASSWORD, safe='')}", nested={"p": [PASSWORD]})
    line = capsys.readouterr().out
    assert "<redacted>" in line
    for form in _forms(PASSWORD):
        assert form not in line


def test_http_endpoint_off_loopback_is_refused(invoke, env):
    env["REINIT_ECS_ENDPOINT"] = "http://203.0.113.10"
    answer = invoke({"DiskId": disk_id(1), "Password": PASSWORD})
    assert answer["Code"] == "Config.Invalid" and "clear text" in answer["Message"]
    for ok in ("http://127.0.0.2:80", "http://localhost:1", "http://[::1]:8080", "https://ecs.cn-hangzhou.aliyuncs.com"):
        from reinit.config import check_endpoint
        assert check_endpoint("X", ok) is None
    from reinit.config import check_endpoint
    assert check_endpoint("X", "ftp://127.0.0.1") and check_endpoint("X", "http://10.0.0.1")


def test_the_ram_policy_is_least_privilege():
    import pathlib
    policy = json.loads((pathlib.Path(__file__).resolve().parents[1] / "ram" / "reinit-policy.json").read_text())
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions == {"ecs:DescribeDisks", "ecs:DescribeInstances", "ecs:StopInstance", "ecs:StartInstance",
                       "ecs:ReInitDisk", "mns:PublishMessage", "fc:InvokeFunction"}
    [reinit] = [s for s in policy["Statement"] if "ecs:ReInitDisk" in s["Action"]]
    assert reinit["Action"] == ["ecs:ReInitDisk"]
    assert reinit["Condition"] == {"StringEquals": {"ecs:tag/reinit-allowed": "true"}}
    [publish] = [s for s in policy["Statement"] if "mns:PublishMessage" in s["Action"]]
    assert publish["Resource"].endswith("/topics/reinit-results/messages")
    [invoke] = [s for s in policy["Statement"] if "fc:InvokeFunction" in s["Action"]]
    assert invoke["Resource"].endswith(":functions/reinit")  # only itself, for the chunks of a big batch
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
