"""A request's identity, pure: its idempotency key, its fingerprint, and the key that names
its evidence snapshots and tasks (section 11, "Idempotency"; docs/idempotency.md)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from reinit.events import HTTP, INVOKE
from reinit.events import Invocation as Event
from reinit.idempotency import fingerprint
from reinit.request import Request

# Keys a caller chose: without a store, the request's nonce is the FC request id.
CALLER_KEYS = ("client-token:", "http:idempotency-key:")


def idempotency_key(inv: Event, invocation_id: str | None, request: Request) -> str | None:
    """ClientToken, else an HTTP Idempotency-Key, else the trigger's own id; for invoke,
    the Function Compute request id, which FC keeps across its retries of an async
    invocation. A chunk of a split batch is keyed by its BatchId."""
    if request.batch_id is not None:
        # Keyed by the batch, not the chunk: a disk is carried out once per batch even if
        # a retried split put it in another chunk.
        return f"batch:{request.batch_id}"
    if request.continuation is not None:
        # Its own key, one per hop: the parent's record says it was handed on, and a
        # redelivered hop is answered from its own.
        return f"continuation:{request.client_token}#{request.continuation}"
    if request.client_token:
        return f"client-token:{request.client_token}"
    if inv.trigger == HTTP:
        assert inv.http is not None, "events._http gives every HTTP invocation its request"
        if inv.http.headers.get("idempotency-key"):
            # Hashed whole: two long keys that differ late are two requests, not one.
            header = inv.http.headers["idempotency-key"].encode("utf-8", "backslashreplace")
            return "http:idempotency-key:" + hashlib.sha256(header).hexdigest()
    if inv.event_id is not None:
        return f"{inv.trigger}:{inv.event_id}"
    if inv.trigger == INVOKE and invocation_id:
        return f"invoke:{invocation_id}"
    return None


def request_fingerprint(request: Request) -> str:
    """A hash of what the request asks for, from its own fields alone: no secret of the
    function's enters it, so rotating one never turns a retry into "another request".
    Of the Password it keeps only that one was given (docs/idempotency.md): a value
    derived from it could be tried against a dictionary by whoever reads the store."""
    view = {f.name: getattr(request, f.name) for f in dataclasses.fields(request)
            if f.name not in ("password", "client_token", "batch_id", "chunk", "chunks", "continuation", "hop", "pace")}
    if request.batch_id is not None:
        view.pop("disk_ids")  # the chunks of one batch share its key, each with its own disks
    view = json.loads(json.dumps(view, default=list))
    view["password"] = request.password is not None
    return fingerprint(view, None)


def evidence_key(key: str, nonce: str) -> str:
    """What names a request's evidence snapshots, from its idempotency key (or its
    invocation) and its nonce: the same key on another day names other evidence and tasks."""
    if nonce:
        key += "\n" + nonce
    return "reinit-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
