"""The handler against a second, independent implementation of the ECS and MNS APIs.

This stub shares no code with emulator/: it is written straight from the API reference
(RPC parameters in the query, JSON bodies and errors; MNS XML), answers from a small
table, and checks no signatures. If the function only worked because of an emulator
quirk, the two runs would disagree.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import parse_qsl, urlsplit

import pytest

from reinit.app import App

REGION = "cn-shanghai"
DISKS = {
    "d-uf6aaaaaaaaaaaaaaa01": {"instance": "i-uf6aaaaaaaaaaaaaaa01", "status": "In_use", "tags": {"reinit-allowed": "true"}},
    "d-uf6aaaaaaaaaaaaaaa02": {"instance": "i-uf6aaaaaaaaaaaaaaa02", "status": "In_use", "tags": {"reinit-allowed": "true"}},
    "d-uf6aaaaaaaaaaaaaaa03": {"instance": "i-uf6aaaaaaaaaaaaaaa03", "status": "In_use", "tags": {}},
    "d-uf6aaaaaaaaaaaaaaa04": {"instance": "i-uf6aaaaaaaaaaaaaaa04", "status": "In_use", "tags": {"reinit-allowed": "true"}},
}
INSTANCES = {"i-uf6aaaaaaaaaaaaaaa01": "Stopped", "i-uf6aaaaaaaaaaaaaaa02": "Running",
             "i-uf6aaaaaaaaaaaaaaa03": "Stopped", "i-uf6aaaaaaaaaaaaaaa04": "Stopped"}
LOCKED = {"i-uf6aaaaaaaaaaaaaaa04"}  # ReInitDisk answers InstanceLockedForSecurity


class StubCloud(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    published: list = []
    reinits: list = []

    def log_message(self, *_):
        pass

    def do_POST(self):
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if url.path.startswith("/topics/"):
            text = body.decode()
            fields = dict(re.findall(r"<(MessageBody|MessageTag)>(.*?)</\1>", text, re.S))
            unescape = {"&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'", "&amp;": "&"}
            fields = {k: re.sub("|".join(unescape), lambda m: unescape[m.group(0)], v) for k, v in fields.items()}
            self.published.append(fields)
            xml = (f'<?xml version="1.0" encoding="utf-8"?><Message xmlns="http://mns.aliyuncs.com/doc/v1/">'
                   f"<MessageId>{uuid.uuid4().hex}</MessageId><MessageBodyMD5>00</MessageBodyMD5></Message>")
            return self.reply(201, xml.encode(), "text/xml;charset=utf-8")
        params = dict(parse_qsl(url.query))
        status, answer = self.ecs(params.get("Action") or self.headers.get("x-acs-action"), params)
        answer["RequestId"] = "STUB-" + uuid.uuid4().hex[:8]
        return self.reply(status, json.dumps(answer).encode(), "application/json")

    def ecs(self, action, p):
        if action == "DescribeDisks":
            ids = json.loads(p["DiskIds"]) if "DiskIds" in p else list(DISKS)
            found = [{"DiskId": d, "InstanceId": DISKS[d]["instance"], "Status": DISKS[d]["status"], "Type": "system",
                      "Tags": {"Tag": [{"TagKey": k, "TagValue": v} for k, v in DISKS[d]["tags"].items()]}}
                     for d in ids if d in DISKS and (not p.get("InstanceId") or DISKS[d]["instance"] == p["InstanceId"])]
            return 200, {"TotalCount": len(found), "NextToken": "", "Disks": {"Disk": found}}
        if action == "DescribeInstances":
            ids = json.loads(p["InstanceIds"])
            return 200, {"Instances": {"Instance": [{"InstanceId": i, "Status": INSTANCES[i], "OSType": "linux"}
                                                    for i in ids if i in INSTANCES]}}
        if action == "ReInitDisk":
            disk = DISKS.get(p["DiskId"])
            if disk is None:
                return 404, {"Code": "InvalidDiskId.NotFound", "Message": "The specified disk does not exist."}
            if disk["instance"] in LOCKED:
                return 403, {"Code": "InstanceLockedForSecurity", "Message": "The instance is locked due to security."}
            self.reinits.append(p["DiskId"])
            return 200, {}
        return 404, {"Code": "InvalidAction.NotFound", "Message": action}

    def reply(self, status, payload, ctype):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def stub():
    StubCloud.published, StubCloud.reinits = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubCloud)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# (request, Outcome, Code) — the same answers the emulator-based tests expect
CASES = [
    ({"DiskId": "d-uf6aaaaaaaaaaaaaaa01"}, "Succeeded", None),
    ({"DiskId": "d-uf6aaaaaaaaaaaaaaa09"}, "Rejected", "InvalidDiskId.NotFound"),
    ({"DiskId": "d-uf6aaaaaaaaaaaaaaa02"}, "Rejected", "IncorrectInstanceStatus"),
    ({"DiskId": "d-uf6aaaaaaaaaaaaaaa03"}, "Rejected", "Forbidden.TagRequired"),
    ({"DiskId": "d-uf6aaaaaaaaaaaaaaa04"}, "Failed", "InstanceLockedForSecurity"),
    ({"DiskId": "d-uf6aaaaaaaaaaaaaaa01", "DryRun": True}, "DryRun", None),
    ({"DiskID": "d-uf6aaaaaaaaaaaaaaa01"}, "Rejected", "InvalidParameter.Unknown"),
]


@pytest.mark.parametrize("request_fields,outcome,code", CASES, ids=[f"{o}-{c}" for _, o, c in CASES])
def test_same_answers_from_an_independent_cloud(stub, request_fields, outcome, code):
    env = {"REINIT_REGION": REGION, "REINIT_ECS_ENDPOINT": stub, "REINIT_MNS_ENDPOINT": stub, "REINIT_TOPIC": "results",
           "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIstub", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "stub-secret"}
    app = App(env=env, sleep=lambda s: None)
    answer = app.handle(json.dumps(request_fields).encode(), SimpleNamespace(request_id="stub-1", credentials=None))
    assert (answer["Outcome"], answer["Code"], answer["Region"]) == (outcome, code, REGION)
    [message] = StubCloud.published
    assert message["MessageTag"] == outcome
    assert json.loads(message["MessageBody"])["Code"] == code
    assert StubCloud.reinits == (["d-uf6aaaaaaaaaaaaaaa01"] if outcome == "Succeeded" else [])
    if code == "InstanceLockedForSecurity":
        assert answer["EcsRequestId"].startswith("STUB-")
