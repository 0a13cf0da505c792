"""Beyond one invocation: split a selection into chunks and hand each to this same function
as an asynchronous invocation (FC API 2023-03-30 InvokeFunction, `x-fc-invocation-type:
Async`, through the official alibabacloud-fc20230330 SDK), so that Function Compute is the
distributed engine. Each chunk is idempotent by (BatchId, Chunk) in the idempotency store.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlsplit

from reinit.ecs import Credentials, EcsCallError, classify_sdk_error
from reinit.errors import failed
from reinit.request import Request
from reinit.retry import retryable_write


def batch_id(event_key: str) -> str:
    """The same event always gives the same BatchId, so a retried parent re-sends the same chunks."""
    return "b-" + hashlib.sha256(event_key.encode("utf-8")).hexdigest()[:16]


def chunk_payload(req: Request, ids: list[str], batch: str, chunk: int, chunks: int) -> dict:
    """The request a chunk invocation receives: the same options, its own DiskIds."""
    payload = {"DiskIds": ids, "BatchId": batch, "Chunk": chunk, "Chunks": chunks}
    options = {
        "Password": req.password.reveal() if req.password is not None else None,
        "KeyPairName": req.key_pair_name,
        "AutoStartInstance": req.auto_start,
        "SecurityEnhancementStrategy": req.security_enhancement_strategy,
        "DryRun": req.dry_run or None,
        "StopInstance": req.stop_instance or None,
        "WaitForCompletion": req.wait or None,
        "MaxErrors": req.max_errors,
    }
    payload.update({k: v for k, v in options.items() if v is not None})
    return payload


class Dispatcher:
    """InvokeFunction, asynchronously, on one function."""

    def __init__(self, endpoint: str, region: str, credentials: Credentials, function_name: str):
        from alibabacloud_fc20230330.client import Client
        from alibabacloud_tea_openapi.utils_models import Config

        url = urlsplit(endpoint)
        self.function_name = function_name
        self._client = Client(Config(
            access_key_id=credentials.access_key_id, access_key_secret=credentials.access_key_secret,
            security_token=credentials.security_token, endpoint=url.netloc, protocol=url.scheme, region_id=region,
            connect_timeout=5000, read_timeout=10000))

    def invoke_async(self, payload: dict) -> str:
        """Queue one invocation; return FC's request id. SDK errors become EcsCallError."""
        from alibabacloud_fc20230330 import models
        from darabonba.runtime import RuntimeOptions

        request = models.InvokeFunctionRequest(body=json.dumps(payload).encode("utf-8"))
        headers = models.InvokeFunctionHeaders(x_fc_invocation_type="Async")
        try:
            response = self._client.invoke_function_with_options(self.function_name, request, headers, RuntimeOptions())
        except Exception as err:
            raise classify_sdk_error("InvokeFunction", err) from None
        return (response.headers or {}).get("x-fc-request-id", "")


def splitter(ctx, req: Request, event_key: str, credentials: Credentials, function_name: str, limit: int):
    """The `split` that fleet.run_batch calls: None for a selection one invocation can
    finish; otherwise it hands the chunks off and returns the figures for the summary."""

    def split(ids: list[str]) -> dict | None:
        if len(ids) <= limit:
            return None
        batch = batch_id(event_key)
        parts = [ids[i:i + limit] for i in range(0, len(ids), limit)]
        dispatcher = Dispatcher(ctx.config.fc_endpoint, ctx.config.region, credentials, function_name)
        dispatched = []
        for number, part in enumerate(parts):
            payload = chunk_payload(req, part, batch, number, len(parts))
            try:
                dispatched.append(ctx.retrier().call(lambda p=payload: dispatcher.invoke_async(p), retryable_write))
            except EcsCallError as err:
                raise failed("ServiceUnavailable", f"Handed {number} of {len(parts)} chunks of batch {batch} to "
                             f"Function Compute, then InvokeFunction failed ({err.code}); retrying the event "
                             "re-sends the same chunks.", retryable=True) from None
        ctx.log.info("batch.split", batch=batch, disks=len(ids), chunks=len(parts), chunk_size=limit)
        return {"Total": len(ids), "BatchId": batch, "Chunks": len(parts), "Dispatched": dispatched,
                "Message": f"{len(ids)} disks are more than one invocation can finish: handed to {len(parts)} "
                           f"asynchronous invocations (batch {batch}); each publishes its disks and its summary."}

    return split
