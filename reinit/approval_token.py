"""Approval tokens (INTERFACE.md section 13.3; docs/approval.md): the function signs them
and checks them; no store is needed.

A token names one disk's wipe as the gate left it: the disk, its instance (and that
instance's StartTime), the snapshot, the request, the region, the options of the wipe and
an expiry. Its key is derived from BOTH the approvers' secret and the webhook secret, so
that neither side alone can make one.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reinit.errors import ReinitError, failed, rejected
from reinit.events import strict_loads
from reinit.request import DISK_ID, INSTANCE_ID, KEY_PAIR_NAME, REGION_ID

TOKEN_PREFIX = "rat1"  # reinit approval token, version 1
MAX_TOKEN = 4096
KEY_LABEL = b"reinit approval token v1\x00"
# Anything that reads a secret by name (KMS GetSecretValue): the value, or every value
# that is valid now (ACSCurrent, then ACSPrevious while it is rotated).
SecretReader = Callable[[str], "str | Sequence[str | None]"]


# -- secrets and keys ---------------------------------------------------------------------
def approver_secrets(config, get_secret: SecretReader | None) -> tuple[str, ...]:
    """The approvers' secret(s): REINIT_APPROVER_SECRET, or the KMS secret named by
    REINIT_APPROVER_SECRET_NAME through `get_secret`. Raises Config.Invalid where a name is
    set and nothing can read it."""
    if config.approver_secret:
        return (config.approver_secret,)
    if not config.approver_secret_name:
        return ()
    if get_secret is None:
        raise failed("Config.Invalid", "REINIT_APPROVER_SECRET_NAME is set but this function cannot read secrets.")
    values = get_secret(config.approver_secret_name)
    return tuple(v for v in ([values] if isinstance(values, str) else values) if v)


def token_key(approver_secret: str, webhook_secret: str) -> bytes:
    """The key tokens are signed with: neither secret alone gives it."""
    return hmac.new(approver_secret.encode("utf-8"), KEY_LABEL + webhook_secret.encode("utf-8"), hashlib.sha256).digest()


def token_keys(approvers: Sequence[str], webhooks: Sequence[str]) -> list[bytes]:
    """Every key a valid token may be signed with (current and previous versions of each
    secret while one is rotated); the first is the one new tokens are signed with."""
    return [token_key(a, w) for a in approvers if a for w in webhooks if w]


# -- tokens -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grant:
    """What a token names: one disk's wipe, as the gate left it."""

    disk_id: str
    instance_id: str
    snapshot_id: str | None
    request: str  # the request's evidence key (its ClientToken, else a digest of its idempotency key)
    region: str
    expires: int  # Unix seconds
    start_time: str | None  # the instance's StartTime when it was contained: unchanged, it has not run since
    auto_start: bool | None
    key_pair_name: str | None
    strategy: str | None
    wait: bool
    event_type: str | None
    requested_by: str
    account: str | None = None  # the member account the wipe is acted on in (section 13.1); None: our own

    def payload(self) -> dict:
        return {"Disk": self.disk_id, "Instance": self.instance_id, "Snapshot": self.snapshot_id,
                "Request": self.request, "Region": self.region, "Expires": self.expires,
                "StartTime": self.start_time, "AutoStart": self.auto_start, "KeyPairName": self.key_pair_name,
                "Strategy": self.strategy, "Wait": self.wait, "EventType": self.event_type,
                "RequestedBy": self.requested_by, "Account": self.account}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_token(grant: Grant, key: bytes) -> str:
    body = _b64(json.dumps(grant.payload(), sort_keys=True, separators=(",", ":")).encode("utf-8"))
    mac = hmac.new(key, f"{TOKEN_PREFIX}.{body}".encode("ascii"), hashlib.sha256).digest()
    return f"{TOKEN_PREFIX}.{body}.{_b64(mac)}"


def token_id(token: str) -> str:
    """A short name of a token, for the log and the answer."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:32]


def decision_id(grant: Grant) -> str:
    """What one decision is about: this request's wipe of this disk. Every token made for
    it (a redelivered event held again makes another) shares the id, so the first decision
    on any of them is the decision (the store key and the disk's mark)."""
    return decision_of(grant.request, grant.disk_id)


def decision_of(request: str, disk_id: str) -> str:
    """The decision id of a request's (its evidence key's) wipe of a disk."""
    return hashlib.sha256(f"{request}\n{disk_id}".encode()).hexdigest()[:32]


def _refused(reason: str) -> ReinitError:
    err = rejected("Unauthorized.Approval", "The approval token was not accepted; nothing was done.")
    err.reason = reason
    return err


def check_token(token, keys: Sequence[bytes], now: float) -> Grant:
    """The Grant a token names, or Unauthorized.Approval: forged, altered, malformed or
    expired. The signature is checked (in constant time) before the payload is read."""
    if not isinstance(token, str) or not token.isascii() or len(token) > MAX_TOKEN or token.count(".") != 2:
        raise _refused("the token is not a reinit approval token")
    prefix, body, mac = token.split(".")
    if prefix != TOKEN_PREFIX:
        raise _refused("the token is of an unknown version")
    try:
        given = _unb64(mac)
    except (binascii.Error, ValueError):
        raise _refused("the token's signature is not base64") from None
    signed = f"{prefix}.{body}".encode("ascii")
    if not keys or not any(hmac.compare_digest(hmac.new(k, signed, hashlib.sha256).digest(), given) for k in keys):
        raise _refused("the token's signature does not match (forged, altered, or signed before a key rotation)")
    try:
        fields = strict_loads(_unb64(body).decode("utf-8"))
        grant = _grant(fields)
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise _refused("the token's payload is not readable") from None
    if now >= grant.expires:
        raise _refused("the token has expired")
    return grant


def _grant(fields: dict) -> Grant:
    grant = Grant(fields["Disk"], fields["Instance"], fields["Snapshot"], fields["Request"], fields["Region"],
                  fields["Expires"], fields["StartTime"], fields["AutoStart"], fields["KeyPairName"],
                  fields["Strategy"], fields["Wait"], fields["EventType"], fields["RequestedBy"], fields["Account"])
    # Signed by this function, so these hold; checked all the same, as any input is.
    if not (DISK_ID.fullmatch(grant.disk_id) and INSTANCE_ID.fullmatch(grant.instance_id)
            and REGION_ID.fullmatch(grant.region) and isinstance(grant.expires, int) and isinstance(grant.wait, bool)
            and (grant.key_pair_name is None or KEY_PAIR_NAME.fullmatch(grant.key_pair_name))
            and (grant.account is None or (isinstance(grant.account, str) and grant.account.isdigit()))):
        raise ValueError("a field of the token is not valid")
    return grant


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
