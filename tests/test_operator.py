"""The operator's path from clone to a signed curl: the local HTTP trigger (make serve),
`python -m reinit sign` and `python -m reinit invoke`, and the sample events."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

import index
from emulator.trigger import TriggerServer
from tests.conftest import WEBHOOK_SECRET, disk_id

ROOT = pathlib.Path(__file__).resolve().parents[1]


def sign_with_the_cli(body: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "reinit", "sign", body], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "REINIT_WEBHOOK_SECRET": WEBHOOK_SECRET}, timeout=60, check=True)
    return dict(line.split(": ", 1) for line in out.stdout.splitlines())


@pytest.fixture
def trigger(invoke):
    server = TriggerServer(index.handler).start()
    yield server.url
    server.stop()


def post(url: str, body: str, headers: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_signed_request_through_the_local_trigger(trigger, invoke, cloud):
    body = json.dumps({"DiskId": disk_id(1)})
    status, answer = post(trigger, body, sign_with_the_cli(body))
    assert (status, answer["Outcome"], answer["Trigger"]) == (200, "Succeeded", "http")
    assert invoke.reinit_count(disk_id(1)) == 1


def test_the_local_trigger_refuses_what_the_real_one_refuses(trigger, cloud):
    body = json.dumps({"DiskId": disk_id(1)})
    assert post(trigger, body, {})[0] == 401
    assert post(trigger, body, {**sign_with_the_cli(body), "X-Reinit-Signature": "sha256=" + "0" * 64})[0] == 401
    request = urllib.request.Request(trigger, method="GET")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    assert info.value.code == 405
    assert cloud.calls() == []


def test_sign_needs_the_secret_in_the_environment():
    env = {k: v for k, v in os.environ.items() if k != "REINIT_WEBHOOK_SECRET"}
    out = subprocess.run([sys.executable, "-m", "reinit", "sign", "{}"], cwd=ROOT, capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 2 and "REINIT_WEBHOOK_SECRET" in out.stderr


@pytest.mark.parametrize("name", ["eventbridge", "timer", "http", "invoke"])
def test_invoke_runs_each_sample_event_against_the_emulator(name):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REINIT_", "ALIBABA_CLOUD_"))}
    out = subprocess.run([sys.executable, "-m", "reinit", "invoke", f"events/{name}.json", "--emulator"], cwd=ROOT,
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    answer = json.loads(out.stdout)
    if name == "http":
        answer = json.loads(answer["body"])
    expected = {"eventbridge": "Succeeded", "timer": "Rejected", "http": "Succeeded", "invoke": "Rejected"}[name]
    assert answer["Outcome"] == expected
    assert "[" in out.stderr  # the published messages are shown


def test_python_m_emulator_serves_the_seed_until_stopped():
    import socket
    import time
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "emulator", "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert f"127.0.0.1:{port}" in proc.stdout.readline()
        for _ in range(50):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/state", timeout=5) as response:
                    state = json.loads(response.read())
                break
            except OSError:
                time.sleep(0.1)
        assert state["Disks"]["d-bp1incident000001"]["Status"] == "In_use"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_the_sample_timer_event_carries_the_payload_s_yaml_deploys():
    import yaml
    doc = yaml.safe_load((ROOT / "s.yaml").read_text())
    [resource] = doc["resources"].values()
    [timer] = [t for t in resource["props"]["triggers"] if t["triggerType"] == "timer"]
    sample = json.loads((ROOT / "events" / "timer.json").read_text())
    assert json.loads(sample["payload"]) == json.loads(timer["triggerConfig"]["payload"])
    assert json.loads(sample["payload"])["StopInstance"] is True
