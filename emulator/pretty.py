"""How the control API (`/_emulator/...`) writes its JSON: one line for programs, indented
for a person at a terminal.

The rule: an answer is indented (two spaces, a newline at the end) when the query string
holds `pretty` (`?pretty`, `?pretty=1`) or the User-Agent starts with `curl/`, what curl
sends unless told otherwise. Everything else gets compact JSON, as before. Only the
control API follows it: ECS, MNS and FC answer as the cloud does.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl


def wants_pretty(query: str, user_agent: str | None) -> bool:
    """Whether a control request is answered with indented JSON (see the module's rule)."""
    asked = any(key == "pretty" for key, _ in parse_qsl(query, keep_blank_values=True))
    return asked or (user_agent or "").startswith("curl/")


def control_body(answer: dict, query: str, user_agent: str | None) -> bytes:
    """The control API's answer as bytes, indented where `wants_pretty` says so."""
    if wants_pretty(query, user_agent):
        return (json.dumps(answer, indent=2) + "\n").encode()
    return json.dumps(answer).encode()
