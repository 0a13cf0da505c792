"""Credentials and the clients built from them, reused while the credentials are current."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from reinit.config import Config, ecs_endpoint_for
from reinit.ecs import Credentials, EcsApi
from reinit.notify import Publisher


def resolve_credentials(context, env: Mapping) -> Credentials | None:
    """`context.credentials` where it is there and not empty (python3.10); otherwise the
    default chain's environment link, which Function Compute fills from the function's
    role (python3.12). The chain's later links (profile file, instance metadata) do not
    exist inside Function Compute and are not tried."""
    creds = getattr(context, "credentials", None)
    ak = getattr(creds, "access_key_id", None) or getattr(creds, "accessKeyId", None)
    secret = getattr(creds, "access_key_secret", None) or getattr(creds, "accessKeySecret", None)
    if ak and secret:
        token = getattr(creds, "security_token", None) or getattr(creds, "securityToken", None)
        return Credentials(ak, secret, token or None)
    ak, secret = env.get("ALIBABA_CLOUD_ACCESS_KEY_ID"), env.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    if ak and secret:
        return Credentials(ak, secret, env.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None)
    return None


class ClientCache:
    """ECS clients (one per region) and the MNS publisher (the function's own region), built
    once and rebuilt only when the credentials or endpoints change (short-lived STS
    credentials rotate under a long-lived instance). `builds` counts the ECS clients built."""

    def __init__(self):
        self._lock = threading.Lock()
        self._key = None
        self._ecs: EcsApi | None = None
        self._publisher: Publisher | None = None
        self._regional: dict[tuple, EcsApi] = {}  # (credentials, region, endpoint) -> client
        self.builds = 0

    def get(self, config: Config, creds: Credentials) -> tuple[EcsApi | None, Publisher | None]:
        """The ECS client of the function's own region, and the publisher. No ECS client where
        the configuration names no region or ECS endpoint (it is refused as Config.Invalid;
        its refusal is still published)."""
        key = (creds, config.region, config.ecs_endpoint, config.mns_endpoint, config.topic)
        with self._lock:
            if key != self._key:
                self._ecs = (self._regional_client(config, creds, config.region)
                             if config.region is not None and ecs_endpoint_for(config, config.region) else None)
                self._publisher = (Publisher(config.mns_endpoint, config.topic, creds)
                                   if config.topic and config.mns_endpoint else None)
                self._key = key
            return self._ecs, self._publisher

    def ecs_for(self, config: Config, creds: Credentials, region: str | None = None) -> EcsApi:
        """The ECS client of `region` (default: the function's own), made once and reused."""
        region = region or config.region
        assert region is not None, "a configuration without a region is refused (admit) before any ECS call"
        with self._lock:
            return self._regional_client(config, creds, region)

    def _regional_client(self, config: Config, creds: Credentials, region: str) -> EcsApi:
        endpoint = ecs_endpoint_for(config, region)
        assert endpoint is not None, "a configuration without an ECS endpoint is refused (admit) before any ECS call"
        key = (creds, region, endpoint)
        client = self._regional.get(key)
        if client is None:
            # Clients of credentials that have rotated away are dropped with their secrets.
            self._regional = {k: v for k, v in self._regional.items() if k[0] == creds}
            client = self._regional[key] = EcsApi(endpoint, region, creds)
            self.builds += 1
        return client
