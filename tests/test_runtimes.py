"""The code package (`make package`) runs on both Function Compute runtimes, python3.10 and
python3.12: each interpreter imports only what the package holds and handles a request
end to end against the emulator, with credentials from the context (3.10) or the
environment (3.12, where the context has none)."""

from __future__ import annotations

import glob
import json
import os
import pathlib
import shutil
import subprocess

import pytest

from tests.conftest import AK, SECRET, TOKEN, disk_id

ROOT = pathlib.Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, sys
from types import SimpleNamespace
import index
creds = SimpleNamespace(access_key_id=sys.argv[2], access_key_secret=sys.argv[3], security_token=sys.argv[4]) \
    if sys.argv[5] == "context" else None
ctx = SimpleNamespace(request_id="runtime", credentials=creds, function=SimpleNamespace(timeout=60))
index.initialize(ctx)
print(json.dumps(index.handler(sys.argv[1].encode(), ctx)))
assert "alibabacloud_ecs20140526" not in sys.modules and "pytest" not in sys.modules
"""


def interpreter(version: str) -> str | None:
    candidates = [shutil.which(f"python{version}"), *sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")))]
    for path in filter(None, candidates):
        if subprocess.run([path, "--version"], capture_output=True).returncode == 0:
            return path
    return None


@pytest.mark.parametrize("version,credentials", [("3.10", "context"), ("3.12", "environment")])
def test_the_package_handles_a_request_on_each_runtime(cloud, tmp_path, version, credentials):
    python = interpreter(version)
    if python is None:
        pytest.skip(f"no python{version} on this machine")
    out = subprocess.run(["make", "-s", "package", f"PACKAGE_PYTHON={version}", f"PACKAGE_DIR={tmp_path}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    code = tmp_path / "code"
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": f"{code}:{code / 'python'}", "PYTHONNOUSERSITE": "1",
           "REINIT_REGION": "cn-hangzhou", "REINIT_ECS_ENDPOINT": cloud.endpoint, "REINIT_MNS_ENDPOINT": cloud.endpoint,
           "REINIT_TOPIC": "reinit-results"}
    if credentials == "environment":
        env.update(ALIBABA_CLOUD_ACCESS_KEY_ID=AK, ALIBABA_CLOUD_ACCESS_KEY_SECRET=SECRET, ALIBABA_CLOUD_SECURITY_TOKEN=TOKEN)
    event = json.dumps({"DiskId": disk_id(1), "Password": "Runtime-Check-1"})
    run = subprocess.run([python, "-s", "-c", SCRIPT, event, AK, SECRET, TOKEN, credentials],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert (answer["Outcome"], answer["DiskId"]) == ("Succeeded", disk_id(1))
    assert cloud.ecs.disks[disk_id(1)].reinit_count == 1
    assert json.loads(cloud.messages("reinit-results")[0]["MessageBody"])["Outcome"] == "Succeeded"
