"""Environment -> one typed, frozen Config. Every variable name lives here.

Loading never raises: a wrong setting is kept in `problems`, so the function can still
answer (and, where MNS is configured, notify) `Config.Invalid` instead of crashing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar
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
REGIONS = "REINIT_REGIONS"
EVENT_KEY_PAIR_NAME = "REINIT_EVENT_KEY_PAIR_NAME"
SNAPSHOT = "REINIT_SNAPSHOT"
SNAPSHOT_RETENTION_DAYS = "REINIT_SNAPSHOT_RETENTION_DAYS"
EVENT_TYPES = "REINIT_EVENT_TYPES"
EVENT_ACCOUNTS = "REINIT_EVENT_ACCOUNTS"
ACCOUNT_ROLE = "REINIT_ACCOUNT_ROLE"
STS_ENDPOINT = "REINIT_STS_ENDPOINT"
# The ECS "TPM security warning" (EventBridge, "Elastic Computing Service events").
DEFAULT_EVENT_TYPES = ("ecs:Instance:Security.TpmAlert",)
ACCOUNT_ID = re.compile(r"[0-9]{1,32}", re.ASCII)
# A RAM role name: letters, digits, '.', '-' (RAM CreateRole: RoleName, 1-64 characters).
ROLE_NAME = re.compile(r"[A-Za-z0-9.\-]{1,64}", re.ASCII)
APPROVAL = "REINIT_APPROVAL"
APPROVAL_MIN_DISKS = "REINIT_APPROVAL_MIN_DISKS"
APPROVAL_TTL = "REINIT_APPROVAL_TTL_SECONDS"
APPROVER_SECRET = "REINIT_APPROVER_SECRET"
APPROVER_SECRET_NAME = "REINIT_APPROVER_SECRET_NAME"
WEBHOOK_SECRET_NAME = "REINIT_WEBHOOK_SECRET_NAME"
APPROVAL_MODES = ("never", "incident", "batch", "always")
SECRET_CACHE_SECONDS = "REINIT_SECRET_CACHE_SECONDS"
KMS_ENDPOINT = "REINIT_KMS_ENDPOINT"
PASSWORD_SECRETS = "REINIT_PASSWORD_SECRETS"
REGION_ID = re.compile(r"[a-z]{2}(-[a-z0-9]+){1,4}", re.ASCII)
# A KMS secret name (CreateSecret: 1-192 letters, digits and _/+=.@-), or its ARN
# (GetSecretValue: acs:kms:${region}:${account}:secret/${secret-name}, for another account).
SECRET_NAME = re.compile(r"(acs:kms:[a-z0-9-]+:[0-9]+:secret/)?[A-Za-z0-9_/+=.@-]{1,192}", re.ASCII)
KEY_PAIR_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._:\-]{1,127}", re.ASCII)


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
    regions: tuple[str, ...] = ()  # the regions a request may name; the function's own first
    event_key_pair_name: str | None = None
    snapshot: str = "request"  # request | always | never
    snapshot_retention_days: int = 30
    ecs_endpoint_configured: bool = False  # REINIT_ECS_ENDPOINT set: every region goes there
    problems: tuple[str, ...] = ()
    event_types: tuple[str, ...] = DEFAULT_EVENT_TYPES  # CloudEvent types that may start anything
    event_accounts: tuple[str, ...] = ()  # member accounts whose events are acted on, besides our own
    account_id: str | None = None  # FC_ACCOUNT_ID: the function's own account; None: unknown (locally)
    account_role: str = "reinit-member"  # the role assumed in a member account
    sts_endpoint: str | None = None
    approval: str = "never"  # never | incident | batch | always (INTERFACE.md 13.3)
    approval_min_disks: int = 10
    approval_ttl: int = 86400
    approver_secret: str | None = field(default=None, repr=False)
    approver_secret_name: str | None = None  # a KMS secret, read through App.get_secret
    webhook_secret_name: str | None = None  # a KMS secret holding the webhook secret (section 13.2)
    secret_cache_seconds: float = 300.0
    kms_endpoint: str | None = None
    password_secrets: tuple[str, ...] = ()  # the KMS secrets a request may name as PasswordSecretName


def approval_settings(env: Mapping, problems: list) -> dict:
    """The approval gate's variables (INTERFACE.md section 13.3), as Config fields."""
    mode = (env.get(APPROVAL) or "never").strip().lower()
    if mode not in APPROVAL_MODES:
        problems.append(f"{APPROVAL} must be never, incident, batch or always")
        mode = "always"  # the safe side, though Config.Invalid stops every request anyway
    secret, name = env.get(APPROVER_SECRET) or None, env.get(APPROVER_SECRET_NAME) or None
    if secret and name:
        problems.append(f"set {APPROVER_SECRET} or {APPROVER_SECRET_NAME}, not both")
    if secret and secret == env.get(WEBHOOK_SECRET):
        problems.append(f"{APPROVER_SECRET} must differ from {WEBHOOK_SECRET}: an approval must not be "
                        "signable with the webhook secret")
    if mode != "never" and not (secret or name):
        problems.append(f"{APPROVAL}={mode} needs the approvers' secret: set {APPROVER_SECRET} or {APPROVER_SECRET_NAME}")
    if mode != "never" and not (env.get(WEBHOOK_SECRET) or env.get(WEBHOOK_SECRET_NAME)):
        # Approval tokens are keyed with both secrets, so that neither side alone can forge one.
        problems.append(f"{APPROVAL}={mode} needs a webhook secret as well ({WEBHOOK_SECRET} or "
                        f"{WEBHOOK_SECRET_NAME}): approval tokens are keyed with both")
    if mode != "never" and not env.get(IDEMPOTENCY_URL):
        # Once-only approval rests on the store: a disk's tag holds one decision, and a later
        # decision on that disk for another request overwrites it (docs/approval.md).
        problems.append(f"{APPROVAL}={mode} needs the idempotency store ({IDEMPOTENCY_URL}): without it a "
                        "later decision on the same disk overwrites the record that a token was denied or "
                        "already carried out, and an approval could wipe twice or after a denial")
    return {
        "approval": mode,
        "approval_min_disks": _int(APPROVAL_MIN_DISKS, env.get(APPROVAL_MIN_DISKS), 10, 1, problems),
        "approval_ttl": _int(APPROVAL_TTL, env.get(APPROVAL_TTL), 86400, 60, problems),
        "approver_secret": secret,
        "approver_secret_name": name,
    }


def ecs_endpoint_for(config: Config, region: str) -> str | None:
    """ECS in `region`: the configured endpoint (one for all regions), else the region's own."""
    if config.ecs_endpoint_configured or region == config.region:
        return config.ecs_endpoint
    return f"https://ecs.{region}.aliyuncs.com"


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", re.ASCII)


def canonical_endpoint(name: str, url: str) -> tuple[str | None, str | None]:
    """(the endpoint as the SDKs are given it, None) or (None, the problem).

    The URL is read by the parser of the HTTP client that sends the ECS and FC requests
    (yarl, under aiohttp), and must read the same with the standard library's (which the
    MNS SDK's http.client path follows). Only a plain `scheme://host[:port][/]` passes: no
    user information, no path, query or fragment, no backslash or space, so that no two
    parsers can disagree on the host. What passes is rebuilt from the parsed parts, and
    that rebuilt URL is what the clients get, so the host that was checked is the host
    that is called. `http://` only on loopback: the ECS SDK sends Password in the query."""
    import yarl

    bad = f"{name} must be a URL of the form https://host[:port]"
    if not url.isascii() or any(c.isspace() or c in "\\@%" or not c.isprintable() for c in url):
        return None, bad + " (no user information, spaces, backslashes or escapes)"
    try:
        parsed = yarl.URL(url)
        std = urlsplit(url)
        std_port = std.port
    except ValueError:
        return None, bad
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return None, bad
    if parsed.user is not None or parsed.password is not None or std.username is not None:
        return None, f"{name} must not carry user information (user@)"
    if parsed.path not in ("", "/") or parsed.query_string or parsed.fragment or std.query or std.fragment:
        return None, bad + " (no path, query or fragment)"
    host = parsed.host
    if (std.hostname or "").lower() != host.lower() or std_port != parsed.explicit_port:
        return None, bad + " (the URL reads differently to different parsers)"
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is None and not HOST_NAME.fullmatch(host):
        return None, bad
    if parsed.scheme == "http" and not is_loopback(host):
        return None, f"{name} uses http:// off loopback; secrets would travel in clear text"
    netloc = f"[{host}]" if literal is not None and literal.version == 6 else host
    port = f":{parsed.explicit_port}" if parsed.explicit_port is not None else ""
    return f"{parsed.scheme}://{netloc}{port}", None


def check_endpoint(name: str, url: str) -> str | None:
    """The problem with an endpoint URL, or None (see canonical_endpoint)."""
    return canonical_endpoint(name, url)[1]


def _ascii_number(raw: str, fraction: bool) -> str | None:
    """The number in `raw` if it is plain ASCII digits (and, where allowed, one point)."""
    pattern = r"\s*[0-9]+(\.[0-9]+)?\s*" if fraction else r"\s*[0-9]+\s*"
    return raw.strip() if raw.isascii() and re.fullmatch(pattern, raw) else None


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
    text = _ascii_number(raw, fraction=False)
    if text is not None and len(text) <= 12 and int(text) >= low:
        return int(text)
    problems.append(f"{name} must be a whole number of at least {low}")
    return default


# A number with a default answers a number; with None, maybe None.
_Default = TypeVar("_Default", float, None)


def _float(name: str, raw: str | None, default: _Default, low: float, high: float, problems: list) -> float | _Default:
    if raw is None or raw == "":
        return default
    text = _ascii_number(raw, fraction=True)
    value = float(text) if text is not None and len(text) <= 16 else None
    if value is None or not low <= value <= high:
        problems.append(f"{name} must be a number from {low:g} to {high:g}")
        return default
    return value


def _endpoint(name: str, configured: str | None, default: str | None, problems: list) -> str | None:
    """An endpoint from the environment or its default, or None (with the problem noted)."""
    url = configured or default
    if not url:
        return None
    canonical, problem = canonical_endpoint(name, url)
    if problem:
        problems.append(problem)
    return canonical


def load_config(env: Mapping, function_timeout: float | None = None) -> Config:
    """The environment as one Config. Each step reads its own variables and notes what is
    wrong in `problems`, in this order (the order Config.Invalid lists them)."""
    problems: list[str] = []
    region = env.get(REGION) or env.get("FC_REGION") or env.get("ALIBABA_CLOUD_REGION_ID") or None
    if not region:
        problems.append(f"no region: set {REGION}")
    endpoints = _endpoints(env, region, problems)
    webhook = _webhook_settings(env, problems)
    timing = _timing(env, function_timeout, endpoints["ecs_endpoint"], problems)
    idem_url = env.get(IDEMPOTENCY_URL) or None
    if idem_url and urlsplit(idem_url).scheme not in ("redis", "rediss"):
        problems.append(f"{IDEMPOTENCY_URL} must be a redis:// or rediss:// URL")
        idem_url = None
    where = _regions(env, region, problems)
    snapshots = _snapshot_settings(env, problems)
    events = _event_settings(env, region, problems)
    approval = approval_settings(env, problems)
    if approval["approval"] != "never" and idem_url and approval["approval_ttl"] > _int(
            IDEMPOTENCY_TTL, env.get(IDEMPOTENCY_TTL), 86400, 1, []):
        # The store's record of a decision must outlive the token, or a token could be used twice.
        problems.append(f"{APPROVAL_TTL} must not be longer than {IDEMPOTENCY_TTL}")
    secret_settings = _secret_settings(env, region, problems)
    return Config(
        **events,
        **approval,
        **secret_settings,
        **where,
        **snapshots,
        **endpoints,
        **webhook,
        region=region,
        max_disks=_int(MAX_DISKS, env.get(MAX_DISKS), 50, 1, problems),
        dry_run=parse_bool(DRY_RUN, env.get(DRY_RUN), False, problems),
        idempotency_url=idem_url,
        idempotency_ttl=_int(IDEMPOTENCY_TTL, env.get(IDEMPOTENCY_TTL), 86400, 1, problems),
        **timing,
        function_name=env.get(FUNCTION_NAME) or env.get("FC_FUNCTION_NAME") or None,
        problems=tuple(problems),
    )


def _endpoints(env: Mapping, region: str | None, problems: list) -> dict:
    """ECS, MNS and FC endpoints (configured, or the region's public ones) and the topic."""
    account = env.get("FC_ACCOUNT_ID")
    ecs = _endpoint(ECS_ENDPOINT, env.get(ECS_ENDPOINT), region and f"https://ecs.{region}.aliyuncs.com", problems)
    mns = _endpoint(MNS_ENDPOINT, env.get(MNS_ENDPOINT),
                    region and account and f"https://{account}.mns.{region}.aliyuncs.com", problems)
    fc = _endpoint(FC_ENDPOINT, env.get(FC_ENDPOINT),
                   region and account and f"https://{account}.{region}.fc.aliyuncs.com", problems)
    topic = env.get(TOPIC) or None
    if topic and not mns and not env.get(MNS_ENDPOINT):
        problems.append(f"{TOPIC} is set but there is no MNS endpoint: set {MNS_ENDPOINT} or FC_ACCOUNT_ID")
    return {"ecs_endpoint": ecs, "mns_endpoint": mns, "fc_endpoint": fc, "topic": topic,
            "ecs_endpoint_configured": bool(env.get(ECS_ENDPOINT))}


def _webhook_settings(env: Mapping, problems: list) -> dict:
    """How a webhook is authenticated, and the tag a disk must carry (section 8)."""
    auth = (env.get(WEBHOOK_AUTH) or "hmac").lower()
    if auth not in ("hmac", "fc"):
        problems.append(f"{WEBHOOK_AUTH} must be hmac or fc")
        auth = "hmac"
    raw_tag = env.get(REQUIRED_TAG)
    required_tag: tuple[str, str | None] | None
    if raw_tag is None or raw_tag == "":
        required_tag = ("reinit-allowed", "true")
    elif raw_tag.strip().lower() == "none":
        required_tag = None
    else:
        key, sep, value = raw_tag.partition("=")
        required_tag = (key.strip(), value if sep else None)
        if not required_tag[0]:
            problems.append(f"{REQUIRED_TAG} must be key=value, a bare key, or none")
    return {"webhook_auth": auth, "required_tag": required_tag, "webhook_secret": env.get(WEBHOOK_SECRET) or None}


def _timing(env: Mapping, function_timeout: float | None, ecs: str | None, problems: list) -> dict:
    """The function's timeout, the poll interval and the fleet's pace and chunk size."""
    timeout = function_timeout
    if timeout is None:
        timeout = _float("FC_FUNCTION_TIMEOUT", env.get("FC_FUNCTION_TIMEOUT"), None, 1, 86400, problems)
    poll = _float(POLL_SECONDS, env.get(POLL_SECONDS), 2.0, 0.001, 60, problems)
    # ECS asks callers not to poll faster than once a second; only the emulator may.
    if poll < 1.0 and not is_loopback(urlsplit(ecs or "").hostname):
        problems.append(f"{POLL_SECONDS} below 1 second is for the local emulator only")
    fleet_rate = _float(FLEET_RATE, env.get(FLEET_RATE), 10.0, 0.1, 1000, problems)
    chunk = _int(FLEET_CHUNK, env.get(FLEET_CHUNK), 0, 1, problems) or None
    return {"function_timeout": timeout, "poll_seconds": poll, "fleet_rate": fleet_rate, "fleet_chunk": chunk}


def _regions(env: Mapping, region: str | None, problems: list) -> dict:
    """The regions a request may name (the function's own first), and the event key pair."""
    regions = tuple(dict.fromkeys(r.strip() for r in (env.get(REGIONS) or "").split(",") if r.strip()))
    if any(not REGION_ID.fullmatch(r) for r in regions):
        problems.append(f"{REGIONS} must be comma-separated region IDs such as cn-hangzhou")
        regions = ()
    if region and region not in regions:
        regions = (region, *regions) if not env.get(REGIONS) else regions
    event_key_pair = env.get(EVENT_KEY_PAIR_NAME) or None
    if event_key_pair and not KEY_PAIR_NAME.fullmatch(event_key_pair):
        problems.append(f"{EVENT_KEY_PAIR_NAME} is not a key pair name")
    return {"regions": regions, "event_key_pair_name": event_key_pair}


def _snapshot_settings(env: Mapping, problems: list) -> dict:
    """When an evidence snapshot is taken, and how long it is kept."""
    snapshot = (env.get(SNAPSHOT) or "request").lower()
    if snapshot not in ("request", "always", "never"):
        problems.append(f"{SNAPSHOT} must be request, always or never")
        snapshot = "always"  # the safe side, though Config.Invalid stops every request anyway
    retention = _int(SNAPSHOT_RETENTION_DAYS, env.get(SNAPSHOT_RETENTION_DAYS), 30, 1, problems)
    if retention > 65536:
        problems.append(f"{SNAPSHOT_RETENTION_DAYS} must be from 1 to 65536")
    return {"snapshot": snapshot, "snapshot_retention_days": retention}


def _event_settings(env: Mapping, region: str | None, problems: list) -> dict:
    """Which events may start anything, from which accounts, and how a member account is
    reached (INTERFACE.md section 13.1)."""
    types = tuple(dict.fromkeys(t.strip() for t in (env.get(EVENT_TYPES) or "").split(",") if t.strip()))
    accounts = tuple(dict.fromkeys(a.strip() for a in (env.get(EVENT_ACCOUNTS) or "").split(",") if a.strip()))
    if any(not ACCOUNT_ID.fullmatch(a) for a in accounts):
        problems.append(f"{EVENT_ACCOUNTS} must be comma-separated account IDs (digits)")
        accounts = ()
    own = env.get("FC_ACCOUNT_ID") or None
    role = env.get(ACCOUNT_ROLE) or "reinit-member"
    if not ROLE_NAME.fullmatch(role):
        problems.append(f"{ACCOUNT_ROLE} must be a RAM role name (letters, digits, '.', '-')")
    sts = _endpoint(STS_ENDPOINT, env.get(STS_ENDPOINT), region and f"https://sts.{region}.aliyuncs.com", problems)
    return {"event_types": types or DEFAULT_EVENT_TYPES, "event_accounts": accounts, "account_id": own,
            "account_role": role, "sts_endpoint": sts}
def _secret_settings(env: Mapping, region: str | None, problems: list) -> dict:
    """The KMS settings of section 13.2, checked."""
    name = env.get(WEBHOOK_SECRET_NAME) or None
    if name and env.get(WEBHOOK_SECRET):
        problems.append(f"set {WEBHOOK_SECRET} or {WEBHOOK_SECRET_NAME}, not both")
    if name and not SECRET_NAME.fullmatch(name):
        problems.append(f"{WEBHOOK_SECRET_NAME} is not a KMS secret name")
    listed = tuple(dict.fromkeys(n.strip() for n in (env.get(PASSWORD_SECRETS) or "").split(",") if n.strip()))
    if any(not SECRET_NAME.fullmatch(n) for n in listed):
        problems.append(f"{PASSWORD_SECRETS} must be comma-separated KMS secret names")
        listed = ()
    cache = _float(SECRET_CACHE_SECONDS, env.get(SECRET_CACHE_SECONDS), 300.0, 0, 86400, problems)
    kms = _endpoint(KMS_ENDPOINT, env.get(KMS_ENDPOINT), region and f"https://kms.{region}.aliyuncs.com", problems)
    return {"webhook_secret_name": name, "secret_cache_seconds": cache, "kms_endpoint": kms,
            "password_secrets": listed}
