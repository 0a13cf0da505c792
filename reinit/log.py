"""Logs: one JSON object per line (what SLS indexes), through the standard logging module.

This is the one place that writes logs, and so the one place that redacts: every line is
scrubbed of the secrets the invocation knows (password, webhook secret, credentials)
before it is written, whatever put them there.
"""

from __future__ import annotations

import json
import logging
import sys
from urllib.parse import quote, quote_plus

REDACTED = "<redacted>"
_logger = logging.getLogger("reinit")


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is now (FC's runtime and test capture both swap it)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value):
        pass


def _setup() -> None:
    if not _logger.handlers:
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        _logger.addHandler(handler)
        if _logger.level == logging.NOTSET:
            _logger.setLevel(logging.INFO)
        _logger.propagate = False


class Log:
    """A logger bound to an invocation's fields and secrets."""

    def __init__(self, fields: dict | None = None, secrets=()):
        _setup()
        self.fields = dict(fields or {})
        self._forms: list[str] = []  # every way each secret may be written, longest first
        for secret in secrets:
            self.add_secret(secret)

    def add_secret(self, value: str | None) -> None:
        """Remember a secret as is, JSON-escaped, and URL-encoded (the ECS SDK sends
        Password in the query string, and HTTP errors may quote the URL)."""
        if not value or len(value) < 4:
            return
        forms = {value, quote(value, safe=""), quote_plus(value, safe=""), quote(value, safe="~")}
        forms |= {json.dumps(form)[1:-1] for form in forms}
        self._forms = sorted(set(self._forms) | forms, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, REDACTED)
        return text

    def write(self, level: int, event: str, **fields) -> None:
        record = {"level": logging.getLevelName(level), "event": event, **self.fields, **fields}
        line = json.dumps(record, default=repr, ensure_ascii=False)
        _logger.log(level, self.redact(line))

    def info(self, event: str, **fields) -> None:
        self.write(logging.INFO, event, **fields)

    def warning(self, event: str, **fields) -> None:
        self.write(logging.WARNING, event, **fields)

    def error(self, event: str, **fields) -> None:
        self.write(logging.ERROR, event, **fields)
