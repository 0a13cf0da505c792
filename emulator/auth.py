"""Request signatures, checked the way ECS and MNS check them.

ECS: ACS3-HMAC-SHA256 (the SDK's default, an `Authorization` header) and the older RPC
HMAC-SHA1 (`Signature` in the query), both with an STS security token. MNS: the
`MNS AccessKeyId:Signature` header with a `security-token` header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote

from emulator.ecs import exceptions as ecs_exc


@dataclass(frozen=True)
class Credential:
    access_key_id: str
    access_key_secret: str
    security_token: str | None = None


class Keyring:
    """The access keys the emulated account accepts."""

    def __init__(self, credentials=()):
        self._keys: dict[str, Credential] = {}
        for cred in credentials:
            self.add(cred)

    def add(self, cred: Credential) -> None:
        self._keys[cred.access_key_id] = cred

    def lookup(self, access_key_id: str | None) -> Credential | None:
        return self._keys.get(access_key_id or "")


def _enc(value: str) -> str:
    return quote(value, safe="~", encoding="utf-8")


def _check_token(cred: Credential, token: str | None, error=ecs_exc.InvalidSecurityTokenMismatch):
    if cred.security_token is None:
        return
    if not token:
        raise ecs_exc.InvalidSecurityTokenMalformed("The SecurityToken is required for an STS access key.")
    if not hmac.compare_digest(token, cred.security_token):
        raise error()


def verify_ecs(keyring: Keyring, method: str, path: str, query: dict, headers: dict, body: bytes) -> None:
    """Raise the ECS error for a bad signature. `headers` keys are lower case."""
    auth = headers.get("authorization", "")
    if auth.startswith("ACS3-HMAC-SHA256 "):
        _verify_acs3(keyring, method, path, query, headers, body, auth)
    elif "Signature" in query:
        _verify_rpc_v1(keyring, method, query)
    else:
        raise ecs_exc.IncompleteSignature()


def _verify_acs3(keyring, method, path, query, headers, body, auth):
    try:
        fields = dict(part.strip().split("=", 1) for part in auth[len("ACS3-HMAC-SHA256 "):].split(","))
        access_key_id, signed, signature = fields["Credential"], fields["SignedHeaders"], fields["Signature"]
    except (KeyError, ValueError) as err:
        raise ecs_exc.IncompleteSignature() from err
    cred = keyring.lookup(access_key_id)
    if cred is None:
        raise ecs_exc.InvalidAccessKeyIdNotFound()
    payload_hash = hashlib.sha256(body).hexdigest()
    if headers.get("x-acs-content-sha256", payload_hash) != payload_hash:
        raise ecs_exc.SignatureDoesNotMatch("The payload hash does not match the body.")
    names = signed.split(";")
    if "host" not in names or any(n not in headers for n in names):
        raise ecs_exc.IncompleteSignature()
    canonical_query = "&".join(f"{_enc(k)}={_enc(query[k])}" for k in sorted(query))
    canonical_headers = "".join(f"{n}:{headers[n].strip()}\n" for n in names)
    canonical = "\n".join([method, path or "/", canonical_query, canonical_headers, signed, payload_hash])
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    expected = hmac.new(cred.access_key_secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise ecs_exc.SignatureDoesNotMatch()
    _check_token(cred, headers.get("x-acs-security-token"))


def _verify_rpc_v1(keyring, method, query):
    if query.get("SignatureMethod") != "HMAC-SHA1":
        raise ecs_exc.IncompleteSignature("The SignatureMethod is not supported.")
    cred = keyring.lookup(query.get("AccessKeyId"))
    if cred is None:
        raise ecs_exc.InvalidAccessKeyIdNotFound()
    params = {k: v for k, v in query.items() if k != "Signature"}
    canonical = "&".join(f"{_enc(k)}={_enc(params[k])}" for k in sorted(params))
    to_sign = f"{method}&%2F&{_enc(canonical)}"
    digest = hmac.new((cred.access_key_secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()
    if not hmac.compare_digest(base64.b64encode(digest).decode(), query["Signature"]):
        raise ecs_exc.SignatureDoesNotMatch()
    _check_token(cred, query.get("SecurityToken"))


class MnsAuthError(Exception):
    def __init__(self, code: str, message: str, status: int = 403):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def verify_mns(keyring: Keyring, method: str, resource: str, headers: dict, body: bytes) -> None:
    """MNS's header signature: HMAC-SHA1 over method, MD5, type, date, x-mns-* and path."""
    auth = headers.get("authorization", "")
    if not auth.startswith("MNS ") or ":" not in auth:
        raise MnsAuthError("AccessDenied", "The Authorization header is missing or malformed.")
    access_key_id, signature = auth[4:].rsplit(":", 1)
    cred = keyring.lookup(access_key_id)
    if cred is None:
        raise MnsAuthError("InvalidAccessKeyId", "The AccessKeyId you provided does not exist.")
    if body:
        md5 = base64.b64encode(hashlib.md5(body).hexdigest().encode()).decode()
        if headers.get("content-md5", md5) != md5:
            raise MnsAuthError("InvalidDigest", "The Content-MD5 does not match the body.", 400)
    mns_headers = "".join(f"{k}:{headers[k]}\n" for k in sorted(headers) if k.startswith("x-mns-"))
    to_sign = "\n".join([
        method, headers.get("content-md5", ""), headers.get("content-type", ""), headers.get("date", ""),
    ]) + "\n" + mns_headers + resource
    expected = base64.b64encode(
        hmac.new(cred.access_key_secret.encode(), to_sign.encode(), hashlib.sha1).digest()
    ).decode()
    if not hmac.compare_digest(expected, signature):
        raise MnsAuthError("SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
    if cred.security_token is not None and headers.get("security-token") != cred.security_token:
        raise MnsAuthError("InvalidSecurityToken", "The security token is missing or does not match the AccessKeyId.")
