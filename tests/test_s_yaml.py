"""s.yaml: its fc3 props validate against the component's own schema, it names what the
function needs, and Serverless Devs resolves it (`s preview`, offline)."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCHEMA = ROOT.parent / "shared" / "schemas" / "fc3-schema.json"


def resolved_props() -> dict:
    """s.yaml's props with ${vars.x} and ${env('K', 'default')} resolved as `s` does."""
    doc = yaml.safe_load((ROOT / "s.yaml").read_text())
    variables = doc.get("vars", {})

    def resolve(value):
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if not isinstance(value, str):
            return value
        value = re.sub(r"\$\{env\('([^']+)',\s*'([^']*)'\)\}", lambda m: os.environ.get(m.group(1), m.group(2)), value)
        whole = re.fullmatch(r"\$\{vars\.(\w+)\}", value)
        if whole:
            return resolve(variables[whole.group(1)])
        return re.sub(r"\$\{vars\.(\w+)\}", lambda m: str(resolve(variables[m.group(1)])), value)

    assert doc["edition"] == "3.0.0"
    [resource] = doc["resources"].values()
    assert resource["component"] == "fc3"
    return resolve(resource["props"])


def test_props_validate_against_the_fc3_schema():
    if not SCHEMA.exists():
        pytest.skip(f"{SCHEMA} is absent; the fc3 schema is not copied into this repo")
    import jsonschema
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(resolved_props(), schema)


def test_props_name_what_the_function_needs():
    props = resolved_props()
    assert props["runtime"] == "python3.12"
    assert props["handler"] == "index.handler"
    assert props["instanceLifecycleConfig"]["initializer"]["handler"] == "index.initialize"
    assert props["role"].startswith("acs:ram::") and props["role"].endswith(":role/reinit-function")
    assert {"project", "logstore"} <= set(props["logConfig"])
    env = props["environmentVariables"]
    assert {"REINIT_REGION", "REINIT_TOPIC", "REINIT_WEBHOOK_SECRET", "REINIT_REQUIRED_TAG", "REINIT_MAX_DISKS",
            "REINIT_DRY_RUN", "REINIT_WEBHOOK_AUTH"} <= set(env)
    assert all(isinstance(v, str) for v in env.values()), "FC environment values are strings"
    kinds = [t["triggerType"] for t in props["triggers"]]
    assert kinds[-1] == "eventbridge", "fc3 stops deploying triggers after an unchanged EventBridge one"
    assert {"http", "timer", "eventbridge"} == set(kinds)
    http = next(t for t in props["triggers"] if t["triggerType"] == "http")
    assert http["triggerConfig"]["methods"] == ["POST"]
    timer = next(t for t in props["triggers"] if t["triggerType"] == "timer")
    assert isinstance(json.loads(timer["triggerConfig"]["payload"]), dict)
    assert props["asyncInvokeConfig"]["destinationConfig"]["onFailure"]["destination"]


def test_fcignore_keeps_the_local_cloud_and_tests_out():
    ignored = (ROOT / ".fcignore").read_text().split()
    assert {"emulator/", "tests/", "bench/"} <= set(ignored)


def s_cli() -> str | None:
    local = ROOT / ".tools" / "node_modules" / ".bin" / "s"
    return str(local) if local.exists() else shutil.which("s")


def test_serverless_devs_resolves_it_offline():
    cli = s_cli()
    if cli is None:
        if os.environ.get("CI"):
            pytest.fail("the Serverless Devs CLI is missing; `make test` installs it into .tools/")
        pytest.skip("the Serverless Devs CLI is not installed (make test installs it)")
    out = subprocess.run([cli, "preview"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"})
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)
    assert out.returncode == 0, text[-2000:]
    assert "component: fc3" in text
    assert "index.initialize" in text and "role/reinit-function" in text
    assert "${" not in text.split("resources:", 1)[1], "every variable is resolved"
