"""One scrubber for all foreign text: every secret the invocation holds, in every encoding.

Answers, notifications and log lines all pass through the same Scrubber (INTERFACE.md
section 11, "Secrets in foreign text"): an ECS, MNS or Function Compute error message may
echo the request (the API gateway's SignatureDoesNotMatch quotes its string to sign, which
holds the query twice URL-encoded), and a bug's exception text may hold anything.
"""

from __future__ import annotations

import base64
import functools
import json
import threading
from urllib.parse import quote, quote_plus

REDACTED = "<redacted>"
MIN_SECRET = 4  # shorter values are not secrets worth the false positives


def _base64_forms(value: bytes) -> set[str]:
    """The base64 text of `value` wherever it sits in a longer encoded blob: at each of the
    three byte offsets, only the characters that depend on `value` alone."""
    forms = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + value).decode("ascii").rstrip("=")
        start = (offset * 4 + 2) // 3  # skip characters that mix in the padding bytes
        end = len(encoded) - (1 if (offset + len(value)) % 3 else 0)
        core = encoded[start:end]
        if len(core) >= MIN_SECRET:
            forms |= {core, core.replace("+", "-").replace("/", "_")}
    return forms


@functools.lru_cache(maxsize=64)
def encodings(secret: str) -> frozenset[str]:
    """Every way `secret` may be written by something that echoes it (worked out once per
    secret: a warm instance sees the same webhook secret and credentials every invocation)."""
    once = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret, safe="~"),
            quote(secret, safe="/"), quote(secret)}
    twice = ({quote(form, safe="") for form in once} | {quote_plus(form, safe="") for form in once}
             | {quote(form) for form in once})  # quote()'s default keeps "/", twice as well
    thrice = {quote(form, safe="") for form in twice} | {quote(form) for form in twice}  # quoted once more
    forms = once | twice | thrice
    forms |= {json.dumps(form)[1:-1] for form in forms}
    forms |= {json.dumps(secret, ensure_ascii=False)[1:-1]}
    forms |= _base64_forms(secret.encode("utf-8"))
    return frozenset(f for f in forms if len(f) >= MIN_SECRET)


class Scrubber:
    """The secrets of one invocation, and the text of every form they may take."""

    def __init__(self, secrets=()):
        self._lock = threading.Lock()
        self._forms: list[str] = []  # longest first, so no form leaves part of a longer one
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if not secret or not isinstance(secret, str) or len(secret) < MIN_SECRET:
            return
        with self._lock:
            self._forms = sorted(set(self._forms) | encodings(secret), key=len, reverse=True)

    def text(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def value(self, value):
        """A JSON-like value with every string in it scrubbed (keys too)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value
