"""At most once per (EventId, DiskId): a record in Redis or Tair, claimed with SET NX.

A claim is `InProgress` until the invocation ends, with an expiry at the moment that
invocation would have timed out (so a crashed holder never leaves it stuck). The outcome
then replaces it for the configured TTL. A failure that ECS cannot have carried out
releases the claim, so the platform's retry can do the work.
"""

from __future__ import annotations

import hashlib
import json

IN_PROGRESS, DONE = "InProgress", "Done"


class StoreUnavailable(Exception):
    pass


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


class IdempotencyStore:
    def __init__(self, url: str, ttl: int, client=None):
        if client is None:
            import redis

            client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._redis = client
        self.ttl = ttl

    @staticmethod
    def key(event_key: str, disk_id: str) -> str:
        return f"reinit:event:{_digest(event_key)}:{disk_id}"

    def _do(self, fn):
        try:
            return fn()
        except Exception as err:  # redis-py raises ConnectionError, TimeoutError, ResponseError...
            raise StoreUnavailable(f"{type(err).__name__}: {err}") from None

    def claim(self, event_key: str, disk_id: str, hold_seconds: float) -> dict | None:
        """None if this invocation now holds the pair; else the record that is there."""
        key = self.key(event_key, disk_id)
        record = json.dumps({"State": IN_PROGRESS})
        for _ in range(3):
            if self._do(lambda: self._redis.set(key, record, nx=True, px=max(1000, int(hold_seconds * 1000)))):
                return None
            raw = self._do(lambda: self._redis.get(key))
            if raw is not None:
                return json.loads(raw)
        return None if self._do(lambda: self._redis.set(key, record, nx=True, px=1000)) else {"State": IN_PROGRESS}

    def complete(self, event_key: str, disk_id: str, outcome: dict) -> None:
        record = json.dumps({"State": DONE, "Result": outcome})
        self._do(lambda: self._redis.set(self.key(event_key, disk_id), record, ex=self.ttl))

    def release(self, event_key: str, disk_id: str) -> None:
        self._do(lambda: self._redis.delete(self.key(event_key, disk_id)))

    def first_use(self, token: str, ttl: int) -> bool:
        """True the first time a webhook signature is seen within `ttl` seconds."""
        return bool(self._do(lambda: self._redis.set(f"reinit:signature:{_digest(token)}", 1, nx=True, ex=ttl)))


class LocalReplayGuard:
    """Without a store: refuse a replayed signature within this instance only."""

    def __init__(self):
        self._seen: dict[str, float] = {}

    def first_use(self, token: str, now: float, ttl: int) -> bool:
        for old in [k for k, until in self._seen.items() if until <= now]:
            del self._seen[old]
        if token in self._seen:
            return False
        self._seen[token] = now + ttl
        return True
