"""A deploy that refuses to be half-configured: `s deploy` stops in its first pre-deploy
action while a setting is missing; `s preview` holds no secret value; the names in s.yaml's
`vars`, ram/reinit-policy.json and the README's deploy commands agree."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.test_s_yaml import ROOT, STUB_COMPONENT, resolved_props, s_cli

VARS = yaml.safe_load((ROOT / "s.yaml").read_text())["vars"]
POLICY = json.loads((ROOT / "ram" / "reinit-policy.json").read_text())
COMPLETE = {"ALIBABA_CLOUD_ACCOUNT_ID": "1111222233334444", "REINIT_SLS_PROJECT": "reinit-logs-1111222233334444",
            "REINIT_IDEMPOTENCY_URL": "redis://10.0.0.1:6379/0"}
SECRET_VALUE = "whsec-must-never-appear-0123456789"


def preflight_args(env: dict) -> list[str]:
    """The first pre-deploy action's command, with s.yaml's vars (and what they read of `env`) resolved."""
    [resource] = yaml.safe_load((ROOT / "s.yaml").read_text())["resources"].values()
    command = resource["actions"]["pre-deploy"][0]["run"]
    env_of = {"accountId": "ALIBABA_CLOUD_ACCOUNT_ID", "slsProject": "REINIT_SLS_PROJECT"}

    def var(match):
        name = match.group(1)
        return env.get(env_of[name], "") if name in env_of else str(VARS[name])

    return shlex.split(re.sub(r"\$\{vars\.(\w+)\}", var, command))


def run_preflight(env: dict) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in COMPLETE}
    args = preflight_args(env)
    assert args[:2] == ["python3", "deploy/preflight.py"]
    return subprocess.run([sys.executable, *args[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**base, **env})


@pytest.mark.parametrize("missing", sorted(COMPLETE))
def test_the_preflight_action_names_each_missing_setting(missing):
    out = run_preflight({k: v for k, v in COMPLETE.items() if k != missing})
    assert out.returncode == 1
    assert "stopped before creating anything" in out.stderr and missing in out.stderr
    assert len([line for line in out.stderr.splitlines() if line.startswith("  - ")]) == 1


def test_the_preflight_action_passes_a_complete_configuration_and_refuses_a_placeholder():
    assert run_preflight(COMPLETE).returncode == 0
    out = run_preflight({**COMPLETE, "ALIBABA_CLOUD_ACCOUNT_ID": "1234567890123456"})  # the old placeholder
    assert out.returncode == 1 and "not an account id" in out.stderr
    out = run_preflight({**COMPLETE, "REINIT_SLS_PROJECT": "Reinit_Logs"})
    assert out.returncode == 1 and "not a valid SLS project name" in out.stderr


def test_the_preflight_action_refuses_a_name_the_policy_does_not_grant(tmp_path):
    policy = json.loads(json.dumps(POLICY))
    for statement in policy["Statement"]:
        statement["Resource"] = str(statement["Resource"]).replace("reinit-failures", "old-failures")
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    args = preflight_args(COMPLETE)
    out = subprocess.run([sys.executable, *args[1:], "--policy", str(tmp_path / "policy.json")], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, env={**os.environ, **COMPLETE})
    assert out.returncode == 1 and "vars.failureTopic" in out.stderr and "reinit-failures" in out.stderr


def _stub_project(tmp_path):
    text = (ROOT / "s.yaml").read_text().replace("component: fc3", "component: ./stub")
    (tmp_path / "s.yaml").write_text(text)
    (tmp_path / "stub").mkdir()
    (tmp_path / "stub" / "package.json").write_text('{"name": "stub", "version": "0.0.1", "main": "index.js"}')
    (tmp_path / "stub" / "index.js").write_text(STUB_COMPONENT)
    (tmp_path / "Makefile").write_text("package:\n\tmkdir -p build/code && echo $(RUNTIME) > build/code/built-for\n")
    for part in ("deploy/preflight.py", "ram/reinit-policy.json"):
        (tmp_path / part).parent.mkdir(exist_ok=True)
        shutil.copy(ROOT / part, tmp_path / part)
    (tmp_path / "home").mkdir()


@pytest.mark.parametrize("missing", ["ALIBABA_CLOUD_ACCOUNT_ID", None])
def test_s_deploy_with_a_setting_missing_stops_before_anything_is_built_or_deployed(tmp_path, missing):
    """The real `s` CLI runs s.yaml's pre-deploy actions, then the component (a local stand-in
    for fc3, which would call Alibaba Cloud)."""
    cli = s_cli()
    if cli is None:
        pytest.skip("the Serverless Devs CLI is not installed (make test installs it)")
    _stub_project(tmp_path)
    env = {k: v for k, v in {**os.environ, **COMPLETE}.items() if k != missing}
    out = subprocess.run([cli, "deploy", "-y"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**env, "HOME": str(tmp_path / "home"), "NO_COLOR": "1", "FORCE_COLOR": "0"})
    if missing:
        assert out.returncode != 0
        assert missing in out.stdout + out.stderr
        assert not (tmp_path / "build").exists(), "stopped before the build"
        assert not (tmp_path / "deployed.json").exists(), "stopped before the component"
    else:
        assert out.returncode == 0, (out.stdout + out.stderr)[-2000:]
        assert (tmp_path / "deployed.json").exists()


def test_s_preview_holds_no_secret_value():
    cli = s_cli()
    if cli is None:
        pytest.skip("the Serverless Devs CLI is not installed (make test installs it)")
    env = {**os.environ, **COMPLETE, "REINIT_WEBHOOK_SECRET": SECRET_VALUE, "NO_COLOR": "1", "FORCE_COLOR": "0"}
    out = subprocess.run([cli, "preview"], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)
    assert out.returncode == 0, text[-2000:]
    assert SECRET_VALUE not in text
    assert "REINIT_WEBHOOK_SECRET_NAME:" in text and not re.search(r"REINIT_WEBHOOK_SECRET:", text)
    assert "1234567890123456" not in text  # no placeholder account


def test_no_setting_of_the_function_is_a_secret_value():
    env = resolved_props()["environmentVariables"]
    secretive = [k for k in env if re.search(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY", k) and not k.endswith("_NAME")]
    assert secretive == []
    assert env["REINIT_WEBHOOK_SECRET_NAME"] == VARS["webhookSecretName"]


# -- the names agree ------------------------------------------------------------------------
def granted(action: str) -> set[str]:
    return {r for s in POLICY["Statement"] if action in s["Action"]
            for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])}


def test_the_policy_names_what_s_yaml_names():
    assert granted("fc:InvokeFunction") == {f"acs:fc:*:*:functions/{VARS['functionName']}"}
    assert granted("mns:PublishMessage") == {f"acs:mns:*:*:/topics/{t}/messages" for t in (VARS["topic"], VARS["failureTopic"])}
    # The webhook secret by its name; PasswordSecretName and approver secrets under reinit/ (docs/secrets.md).
    assert granted("kms:GetSecretValue") == {f"acs:kms:*:*:secret/{VARS['webhookSecretName']}",
                                             "acs:kms:*:*:secret/reinit/*"}
    props = resolved_props()
    assert props["asyncInvokeConfig"]["destinationConfig"]["onFailure"]["destination"].endswith(
        f":/topics/{VARS['failureTopic']}/messages")
    key, value = props["environmentVariables"]["REINIT_REQUIRED_TAG"].split("=")
    conditions = [s["Condition"] for s in POLICY["Statement"] if "Condition" in s]
    assert conditions and all(c["StringEquals"] == {f"acs:ResourceTag/{key}": value} for c in conditions)


def test_the_triggers_route_documented_event_types_and_the_custom_bus():
    props = resolved_props()
    bridges = {t["triggerName"]: t for t in props["triggers"] if t["triggerType"] == "eventbridge"}
    incident = json.loads(bridges["incident"]["triggerConfig"]["eventRuleFilterPattern"])
    assert incident == {"source": ["acs.ecs"], "type": ["ecs:Instance:Security.TpmAlert"]}
    # FC's EventBridge trigger takes the default bus only: the custom bus reaches the function
    # through a rule of its own (README step 5), not an s.yaml trigger.
    assert set(bridges) == {"incident"}
    [rule] = [shlex.split(c) for c in readme_commands() if " CreateRule " in c]
    assert rule[rule.index("--EventBusName") + 1] == VARS["securityBus"]
    assert json.loads(rule[rule.index("--FilterPattern") + 1]) == {"type": [VARS["securityEventType"]]}
    # CreateRule's targets are `EventTargets` (the CLI's API metadata, aliyun-openapi-meta
    # metadatas/eventbridge/CreateRule.json); a Function Compute target's parameters are
    # named as on EventBridge's "Event target parameters" page, the event itself as `Body`.
    [target] = json.loads(rule[rule.index("--EventTargets") + 1])
    assert target["Type"] == "acs.fc.function" and target["Endpoint"].endswith(f":functions/{VARS['functionName']}")
    params = {p["ResourceKey"]: p for p in target["ParamList"]}
    assert params["Body"] == {"ResourceKey": "Body", "Form": "ORIGINAL"}
    assert params["functionName"]["Value"] == VARS["functionName"] and params["InvocationType"]["Value"] == "Async"
    routed = set(props["environmentVariables"]["REINIT_EVENT_TYPES"].split(","))
    assert routed == {"ecs:Instance:Security.TpmAlert", VARS["securityEventType"]}


def readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Deploy, step by step", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def flag(commands, name: str) -> set[str]:
    return {shlex.split(c)[shlex.split(c).index(name) + 1] for c in commands if name in shlex.split(c)}


def test_the_readme_deploy_commands_agree_with_s_yaml_and_the_policy():
    commands = readme_commands()
    assert all(c.split()[0] in ("export", "aliyun", "s") for c in commands), "copyable commands only"
    assert commands[-1] == "s deploy"
    # What s.yaml reads from the environment is exported first.
    s_yaml = (ROOT / "s.yaml").read_text()
    assert set(re.findall(r"\$\{env\('([A-Z_]+)'", s_yaml)) <= {c.split()[1].split("=")[0] for c in commands
                                                               if c.startswith("export ")}
    assert flag(commands, "--RoleName") == {VARS["roleName"]}
    assert flag(commands, "--PolicyName") == {VARS["roleName"]}
    assert flag(commands, "--AssumeRolePolicyDocument") == {"$(cat ram/trust-policy.json)"}
    assert flag(commands, "--PolicyDocument") == {"$(cat ram/reinit-policy.json)"}
    assert flag(commands, "--TopicName") == {VARS["topic"], VARS["failureTopic"]}
    assert flag(commands, "--SecretName") == {VARS["webhookSecretName"]}
    assert flag(commands, "--EventBusName") == {VARS["securityBus"]}
    [logstore] = [json.loads(b) for b in flag(commands, "--body") if "logstoreName" in b]
    assert logstore["logstoreName"] == VARS["slsLogstore"]
    key, value = resolved_props()["environmentVariables"]["REINIT_REQUIRED_TAG"].split("=")
    assert flag(commands, "--Tag.1.Key") == {key} and flag(commands, "--Tag.1.Value") == {value}
    assert flag(commands, "--ResourceType") == {"disk", "instance"}  # the policy's conditions read both
    assert resolved_props()["role"].endswith(f":role/{VARS['roleName']}")
