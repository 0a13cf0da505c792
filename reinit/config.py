"""Environment -> one typed, frozen Config. Every variable name lives here.

Loading never raises: a wrong setting is kept in `problems`, so the function can still
answer (and, where MNS is configured, notify) `Config.Invalid` instead of crashing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

REGION = "REINIT_REGION"
ECS_ENDPOINT = "REINIT_ECS_ENDPOINT"
MNS_ENDPOINT = "REINIT_MNS_ENDPOINT"
TOPIC = "REINIT_TOPIC"
WEBHOOK_SECRET = "REINIT_WEBHOOK_SECRET"
WEBHOOK_AUTH = "REINIT_WEBHOOK_AUTH"
REQUIRED_TAG = "REINIT_REQUIRED_TAG"
MAX_DISKS = "REINIT_MAX_DISKS"
DRY_RUN = "REINIT_DRY_RUN"
IDEMPOTENCY_URL = "REINIT_IDEMPOTENCY_URL"
IDEMPOTENCY_TTL = "REINIT_IDEMPOTENCY_TTL"
POLL_SECONDS = "REINIT_POLL_SECONDS"
FLEET_RATE = "REINIT_FLEET_RATE"
FLEET_CHUNK = "REINIT_FLEET_CHUNK"
FC_ENDPOINT = "REINIT_FC_ENDPOINT"
FUNCTION_NAME = "REINIT_FUNCTION_NAME"


@dataclass(frozen=True)
class Config:
    region: str | None = None
    ecs_endpoint: str | None = None
    mns_endpoint: str | None = None
    topic: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_auth: str = "hmac"
    required_tag: tuple[str, str | None] | None = ("reinit-allowed", "true")
    max_disks: int = 50
    dry_run: bool = False
    idempotency_url: str | None = field(default=None, repr=False)
    idempotency_ttl: int = 86400
    function_timeout: float | None = None
    poll_seconds: float = 2.0
    fleet_rate: float = 10.0
    fleet_chunk: int | None = None  # most disks one invocation takes on; None: from rate and timeout
    fc_endpoint: str | None = None
    function_name: str | None = None
    problems: tuple[str, ...] = ()


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(name: str, url: str) -> str | None:
    """The problem with an endpoint URL, or None. `http://` only on loopback: the ECS SDK
    sends Password in the query string."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{name} must be an https:// URL"
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return f"{name} uses http:// off loopback; secrets would travel in clear text"
    return None


def parse_bool(name: str, raw: str | None, default: bool, problems: list) -> bool:
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    problems.append(f"{name} must be true or false")
    return default


def _int(name: str, raw: str | None, default: int, low: int, problems: list) -> int:
    if raw is None or raw == "":
        return default
    if raw.strip().isdigit() and int(raw) >= low:
        return int(raw)
    problems.append(f"{name} must be a whole number of at least {low}")
    return default


def _float(name: str, raw: str | None, default: float | None, low: float, high: float, problems: list) -> float | None:
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        problems.append(f"{name} must be a number from {low:g} to {high:g}")
        return default
    return value


def _endpoint(name: str, configured: str | None, default: str | None, problems: list) -> str | None:
    """An endpoint from the environment or its default, or None (with the problem noted)."""
    url = configured or default
    if url and (problem := check_endpoint(name, url)):
        problems.append(problem)
        return None
    return url


def load_config(env: dict, function_timeout: float | None = None) -> Config:
    problems: list[str] = []
    region = env.get(REGION) or env.get("FC_REGION") or env.get("ALIBABA_CLOUD_REGION_ID") or None
    if not region:
        problems.append(f"no region: set {REGION}")

    account = env.get("FC_ACCOUNT_ID")
    ecs = _endpoint(ECS_ENDPOINT, env.get(ECS_ENDPOINT), region and f"https://ecs.{region}.aliyuncs.com", problems)
    mns = _endpoint(MNS_ENDPOINT, env.get(MNS_ENDPOINT),
                    region and account and f"https://{account}.mns.{region}.aliyuncs.com", problems)
    fc = _endpoint(FC_ENDPOINT, env.get(FC_ENDPOINT),
                   region and account and f"https://{account}.{region}.fc.aliyuncs.com", problems)
    topic = env.get(TOPIC) or None
    if topic and not mns and not env.get(MNS_ENDPOINT):
        problems.append(f"{TOPIC} is set but there is no MNS endpoint: set {MNS_ENDPOINT} or FC_ACCOUNT_ID")

    auth = (env.get(WEBHOOK_AUTH) or "hmac").lower()
    if auth not in ("hmac", "fc"):
        problems.append(f"{WEBHOOK_AUTH} must be hmac or fc")
        auth = "hmac"

    raw_tag = env.get(REQUIRED_TAG)
    if raw_tag is None or raw_tag == "":
        required_tag = ("reinit-allowed", "true")
    elif raw_tag.strip().lower() == "none":
        required_tag = None
    else:
        key, sep, value = raw_tag.partition("=")
        required_tag = (key.strip(), value if sep else None)
        if not required_tag[0]:
            problems.append(f"{REQUIRED_TAG} must be key=value, a bare key, or none")

    timeout = function_timeout
    if timeout is None:
        timeout = _float("FC_FUNCTION_TIMEOUT", env.get("FC_FUNCTION_TIMEOUT"), None, 1, 86400, problems)
    poll = _float(POLL_SECONDS, env.get(POLL_SECONDS), 2.0, 0.001, 60, problems)
    # ECS asks callers not to poll faster than once a second; only the emulator may.
    if poll < 1.0 and not is_loopback(urlsplit(ecs or "").hostname):
        problems.append(f"{POLL_SECONDS} below 1 second is for the local emulator only")
    fleet_rate = _float(FLEET_RATE, env.get(FLEET_RATE), 10.0, 0.1, 1000, problems)
    chunk = _int(FLEET_CHUNK, env.get(FLEET_CHUNK), 0, 1, problems) or None

    idem_url = env.get(IDEMPOTENCY_URL) or None
    if idem_url and urlsplit(idem_url).scheme not in ("redis", "rediss"):
        problems.append(f"{IDEMPOTENCY_URL} must be a redis:// or rediss:// URL")
        idem_url = None

    return Config(
        region=region,
        ecs_endpoint=ecs,
        mns_endpoint=mns,
        topic=topic,
        webhook_secret=env.get(WEBHOOK_SECRET) or None,
        webhook_auth=auth,
        required_tag=required_tag,
        max_disks=_int(MAX_DISKS, env.get(MAX_DISKS), 50, 1, problems),
        dry_run=parse_bool(DRY_RUN, env.get(DRY_RUN), False, problems),
        idempotency_url=idem_url,
        idempotency_ttl=_int(IDEMPOTENCY_TTL, env.get(IDEMPOTENCY_TTL), 86400, 1, problems),
        function_timeout=timeout,
        poll_seconds=poll,
        fleet_rate=fleet_rate,
        fleet_chunk=chunk,
        fc_endpoint=fc,
        function_name=env.get(FUNCTION_NAME) or env.get("FC_FUNCTION_NAME") or None,
        problems=tuple(problems),
    )
