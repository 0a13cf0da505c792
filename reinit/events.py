"""Trigger event -> one Invocation: which kind, its id, and where the request is.

The kind is recognised from the event's own shape (INTERFACE.md section 2). Nothing here
validates the request itself; that is request.py's job.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from reinit.errors import rejected

HTTP, EVENTBRIDGE, TIMER, INVOKE = "http", "eventbridge", "timer", "invoke"
CLOUDEVENT_KEYS = ("specversion", "id", "source", "type")
TIMER_KEYS = ("triggerTime", "triggerName", "payload")


@dataclass
class HttpRequest:
    method: str
    headers: dict[str, str]  # lower-case names
    body: bytes | None  # decoded bytes; None when base64 decoding failed


@dataclass
class Invocation:
    trigger: str
    event_id: str | None = None
    fields: dict | None = None  # the request object; None until parsed (http) or if malformed
    http: HttpRequest | None = None
    malformed: str | None = None  # why the event (or its request) is not a JSON object
    extra: dict = field(default_factory=dict)


def _load_json_object(raw: Any) -> tuple[dict | None, str | None]:
    if isinstance(raw, (bytes, bytearray)):
        if not raw:
            return None, "the event is empty"
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None, "the event is not UTF-8 JSON"
    if isinstance(raw, str):
        if not raw.strip():
            return None, "the event is empty"
        try:
            raw = json.loads(raw)
        except ValueError:
            return None, "the event is not JSON"
    if not isinstance(raw, dict):
        return None, "the event is not a JSON object"
    return raw, None


def parse_event(event: Any) -> Invocation:
    """Recognise the trigger kind and find the request inside the event."""
    obj, problem = _load_json_object(event)
    if obj is None:
        return Invocation(INVOKE, malformed=problem)
    http = obj.get("requestContext", {}).get("http") if isinstance(obj.get("requestContext"), dict) else None
    if isinstance(http, dict) and "method" in http:
        return _http(obj, http)
    if all(k in obj for k in CLOUDEVENT_KEYS):
        return _eventbridge(obj)
    if all(k in obj for k in TIMER_KEYS):
        return _timer(obj)
    return Invocation(INVOKE, fields=obj)


def _http(obj: dict, http: dict) -> Invocation:
    headers = obj.get("headers") if isinstance(obj.get("headers"), dict) else {}
    headers = {str(k).lower(): str(v) for k, v in headers.items()}
    raw = obj.get("body")
    body: bytes | None
    if raw is None:
        body = b""
    elif obj.get("isBase64Encoded") is True:
        try:
            body = base64.b64decode(str(raw), validate=True)
        except (binascii.Error, ValueError):
            body = None
    else:
        body = str(raw).encode("utf-8")
    request_id = obj["requestContext"].get("requestId")
    return Invocation(
        HTTP,
        event_id=str(request_id) if request_id is not None else None,
        http=HttpRequest(method=str(http.get("method", "")).upper(), headers=headers, body=body),
    )


def http_fields(inv: Invocation) -> None:
    """Parse the HTTP body into the request object (after authentication)."""
    if inv.http.body is None:
        inv.malformed = "the body is not valid base64"
        return
    inv.fields, inv.malformed = _load_json_object(inv.http.body)
    if inv.malformed:
        inv.malformed = inv.malformed.replace("event", "body")


def _eventbridge(obj: dict) -> Invocation:
    data = obj.get("data")
    if isinstance(data, str):
        data, problem = _load_json_object(data)
        if problem:
            return Invocation(EVENTBRIDGE, event_id=str(obj["id"]), malformed="the CloudEvent data is not a JSON object")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return Invocation(EVENTBRIDGE, event_id=str(obj["id"]), malformed="the CloudEvent data is not a JSON object")
    return Invocation(EVENTBRIDGE, event_id=str(obj["id"]), fields=data,
                      extra={"source": obj.get("source"), "type": obj.get("type")})


def _timer(obj: dict) -> Invocation:
    event_id = f"{obj['triggerName']}@{obj['triggerTime']}"
    payload = obj.get("payload")
    if not isinstance(payload, str):
        return Invocation(TIMER, event_id=event_id, malformed="the timer payload is not a string")
    fields, problem = _load_json_object(payload)
    if problem:
        return Invocation(TIMER, event_id=event_id, malformed="the timer payload is not a JSON object")
    return Invocation(TIMER, event_id=event_id, fields=fields)


def malformed_error(inv: Invocation):
    return rejected("InvalidEvent.Malformed", f"The request was not understood: {inv.malformed}.")
