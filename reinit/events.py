"""Trigger event -> one Invocation: which kind, its id, and where the request is.

The kind is recognised from the event's own shape (INTERFACE.md section 2). Nothing here
validates the request itself; that is request.py's job.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, field
from typing import Any

from reinit.errors import rejected

HTTP, EVENTBRIDGE, TIMER, INVOKE = "http", "eventbridge", "timer", "invoke"
CLOUDEVENT_KEYS = ("specversion", "id", "source", "type")
TIMER_KEYS = ("triggerTime", "triggerName", "payload")
MAX_DEPTH = 32  # INTERFACE.md section 2
MAX_DIGITS = 32  # no field needs more; Python 3.10 would spend quadratic time on 10**6 digits


@dataclass
class HttpRequest:
    method: str
    headers: dict[str, str]  # lower-case names
    body: bytes | None  # decoded bytes; None when base64 decoding failed
    query: tuple[str, ...] = ()  # the names in the URL's query string, refused after authentication


@dataclass
class Invocation:
    trigger: str
    event_id: str | None = None
    fields: dict | None = None  # the request object; None until parsed (http) or if malformed
    http: HttpRequest | None = None
    malformed: str | None = None  # why the event (or its request) is not a JSON object
    extra: dict = field(default_factory=dict)


class _Malformed(ValueError):
    """Why a document is not strict JSON (a duplicate key, a non-finite number...)."""


def _no_duplicates(pairs: list) -> dict:
    obj = {}
    for key, value in pairs:
        if key in obj:
            # What an approval step, a WAF or an audit view reads must be what is acted on:
            # parsers disagree on which of two values wins, so neither does here.
            raise _Malformed(f"the key {json.dumps(key[:64])} appears twice in one object")
        obj[key] = value
    return obj


def _no_constant(name: str):
    raise _Malformed(f"{name} is not a JSON number")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise _Malformed(f"a number has more than {MAX_DIGITS} digits")
    return int(text)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Malformed("a number is too large to be finite")
    return value


def _check_tree(value: Any) -> None:
    """Depth and text of an already decoded document, without recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                raise _Malformed(f"it is nested deeper than {MAX_DEPTH} levels")
            children = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in children:
                if isinstance(key, str):
                    _check_text(key)
                stack.append((child, depth + 1))
        elif isinstance(item, str):
            _check_text(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise _Malformed("a number is not finite")


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _Malformed("a string holds a lone surrogate, which is not Unicode text") from None


def strict_loads(text: str) -> Any:
    """JSON as INTERFACE.md section 2 reads it: no duplicate keys, no nesting deeper than
    MAX_DEPTH, only finite numbers, only Unicode text. Raises _Malformed (a ValueError)."""
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant,
                           parse_float=_finite, parse_int=_bounded_int)
    except RecursionError:  # the C scanner recurses: thousands deep never reaches _check_tree
        raise _Malformed(f"it is nested deeper than {MAX_DEPTH} levels") from None
    except _Malformed:
        raise
    except ValueError as err:  # includes an integer longer than Python converts
        raise _Malformed("it is not JSON") from err
    _check_tree(value)
    return value


def _load_json_object(raw: Any, what: str = "event") -> tuple[dict | None, str | None]:
    """A JSON object, strictly parsed, or None and why not. Never raises."""
    try:
        if isinstance(raw, (bytes, bytearray)):
            if not raw:
                return None, f"the {what} is empty"
            try:
                raw = bytes(raw).decode("utf-8")
            except UnicodeDecodeError:
                return None, f"the {what} is not UTF-8 JSON"
        if isinstance(raw, str):
            if not raw.strip():
                return None, f"the {what} is empty"
            raw = strict_loads(raw)
        elif isinstance(raw, (dict, list)):  # already decoded (a local call): same rules
            _check_tree(raw)
    except _Malformed as err:
        return None, f"the {what} is not strict JSON: {err}" if str(err) != "it is not JSON" else f"the {what} is not JSON"
    if not isinstance(raw, dict):
        return None, f"the {what} is not a JSON object"
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
    headers = obj["headers"] if isinstance(obj.get("headers"), dict) else {}
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
        event_id=request_id if isinstance(request_id, str) and request_id else None,
        http=HttpRequest(method=str(http.get("method", "")).upper(), headers=headers, body=body,
                         query=_query_names(obj)),
    )


def _query_names(obj: dict) -> tuple[str, ...]:
    """The query parameter names of an HTTP trigger event (FC3: `queryParameters`; a raw
    query string or a `?` in `rawPath` counts too), so that none is ever silently ignored."""
    params = obj.get("queryParameters")
    names = [str(k) for k in params] if isinstance(params, dict) else ([repr(params)] if params else [])
    raw = obj.get("rawQueryString")
    if raw and not names:
        names = [str(raw).split("=", 1)[0] or "?"]
    if "?" in str(obj.get("rawPath") or "") and not names:
        names = [str(obj["rawPath"]).split("?", 1)[1].split("=", 1)[0] or "?"]
    return tuple(names)


def http_fields(inv: Invocation) -> None:
    """Parse the HTTP body into the request object (after authentication)."""
    assert inv.http is not None, "only an HTTP invocation has a body to parse"
    if inv.http.body is None:
        inv.malformed = "the body is not valid base64"
        return
    inv.fields, inv.malformed = _load_json_object(inv.http.body, "body")


def _eventbridge(obj: dict) -> Invocation:
    event_id = obj["id"]
    if not isinstance(event_id, str) or not event_id:
        # A CloudEvent id is a string (CloudEvents 1.0); 7 and "7", or null and "None",
        # must never name the same event in the idempotency store.
        return Invocation(EVENTBRIDGE, malformed="the CloudEvent id is not a non-empty string")
    region, account = obj.get("aliyunregionid"), obj.get("aliyunaccountid")
    if region is not None and not isinstance(region, str):
        return Invocation(EVENTBRIDGE, event_id=event_id, malformed="the CloudEvent aliyunregionid is not a string")
    if account is not None and not isinstance(account, str):
        return Invocation(EVENTBRIDGE, event_id=event_id, malformed="the CloudEvent aliyunaccountid is not a string")
    data = obj.get("data")
    if isinstance(data, str):
        data, problem = _load_json_object(data, "CloudEvent data")
        if problem:
            return Invocation(EVENTBRIDGE, event_id=event_id, malformed=problem)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return Invocation(EVENTBRIDGE, event_id=event_id, malformed="the CloudEvent data is not a JSON object")
    return Invocation(EVENTBRIDGE, event_id=event_id, fields=data,
                      extra={"source": obj.get("source"), "type": obj.get("type"), "region": region,
                             "account": account})


def _timer(obj: dict) -> Invocation:
    name, when = obj["triggerName"], obj["triggerTime"]
    if not isinstance(name, str) or not isinstance(when, str):
        return Invocation(TIMER, malformed="the timer's triggerName and triggerTime are not strings")
    event_id = f"{name}@{when}"
    payload = obj.get("payload")
    if not isinstance(payload, str):
        return Invocation(TIMER, event_id=event_id, malformed="the timer payload is not a string")
    fields, problem = _load_json_object(payload, "timer payload")
    if problem:
        return Invocation(TIMER, event_id=event_id, malformed=problem)
    return Invocation(TIMER, event_id=event_id, fields=fields)


def malformed_error(inv: Invocation):
    return rejected("InvalidEvent.Malformed", f"The request was not understood: {inv.malformed}.")
