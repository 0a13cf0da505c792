"""The control API answers indented JSON to a person's curl (or `?pretty`), one line to
programs (emulator/pretty.py states the rule; emulator/README.md documents it)."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request

import pytest

from emulator.server import TOKEN_HEADER


def get(cloud, path: str, user_agent: str | None = None) -> bytes:
    headers = {TOKEN_HEADER: cloud.control_token}
    if user_agent is not None:
        headers["User-Agent"] = user_agent
    with urllib.request.urlopen(urllib.request.Request(cloud.endpoint + path, headers=headers), timeout=30) as answer:
        return answer.read()


def test_a_program_gets_one_line(cloud):
    body = get(cloud, "/_emulator/state")  # urllib's own User-Agent, Python-urllib/3.x
    assert b"\n" not in body and json.loads(body)["Disks"]


@pytest.mark.parametrize("path, agent", [("/_emulator/state", "curl/8.5.0"), ("/_emulator/state?pretty", None),
                                         ("/_emulator/calls?pretty=1", "Python-urllib/3.10")])
def test_curl_or_pretty_gets_indented_json(cloud, path, agent):
    body = get(cloud, path, agent)
    assert body.endswith(b"}\n") and b'\n  "' in body
    assert json.loads(body) == json.loads(get(cloud, path.split("?")[0]))


def test_a_refusal_is_indented_for_curl_too(cloud):
    request = urllib.request.Request(cloud.endpoint + "/_emulator/state", headers={"User-Agent": "curl/8.5.0"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    with info.value as answer:
        assert answer.code == 401 and answer.read().startswith(b'{\n  "Code": "Unauthorized"')


def test_the_cloud_apis_answer_as_the_cloud_does_whoever_asks(cloud):
    """ECS's answer (here an error, no signature) is never reformatted: only the control API is."""
    request = urllib.request.Request(cloud.endpoint + "/?Action=DescribeDisks&pretty", headers={"User-Agent": "curl/8.5.0"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    with info.value as answer:
        assert b"\n" not in answer.read()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_curl_line_prints_indented_json(cloud):
    out = subprocess.run(["curl", "-s", "-H", f"X-Emulator-Token: {cloud.control_token}", cloud.endpoint + "/_emulator/state"],
                         capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.startswith('{\n  "Disks": {\n') and json.loads(out.stdout)["Instances"]
