"""Logs: one JSON object per line (what SLS indexes), through the standard logging module.

This is the one place that writes logs, and so the one place that redacts: every line is
scrubbed of the secrets the invocation knows (password, webhook secret, credentials)
before it is written, whatever put them there.
"""

from __future__ import annotations

import json
import logging
import sys

from reinit.scrub import REDACTED, Scrubber

__all__ = ["Log", "REDACTED"]
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
    """A logger bound to an invocation's fields and its Scrubber (shared with the answer
    and the notifications, so all three redact the same secrets)."""

    def __init__(self, fields: dict | None = None, secrets=(), scrubber: Scrubber | None = None):
        _setup()
        self.fields = dict(fields or {})
        self.scrubber = scrubber or Scrubber()
        for secret in secrets:
            self.add_secret(secret)

    def add_secret(self, value: str | None) -> None:
        self.scrubber.add(value)

    def redact(self, text: str) -> str:
        return self.scrubber.text(text)

    def write(self, level: int, event: str, **fields) -> None:
        record = {"level": logging.getLevelName(level), "event": event, **self.fields, **fields}
        line = json.dumps(record, default=repr, ensure_ascii=False)
        # A lone surrogate (from a bug, or text that was never UTF-8) must not lose the line.
        line = line.encode("utf-8", "backslashreplace").decode("utf-8")
        _logger.log(level, self.redact(line))

    def info(self, event: str, **fields) -> None:
        self.write(logging.INFO, event, **fields)

    def warning(self, event: str, **fields) -> None:
        self.write(logging.WARNING, event, **fields)

    def error(self, event: str, **fields) -> None:
        self.write(logging.ERROR, event, **fields)
