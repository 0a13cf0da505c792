"""Function Compute: registered functions and the queue of asynchronous invocations.

InvokeFunction with `x-fc-invocation-type: Async` is answered 202 at once and queued, as
FC does; `run_pending()` runs what is queued (tests call it, so the order is theirs), or
a worker thread started with `start_worker()` drains the queue (the demo).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from types import SimpleNamespace


class FunctionNotFound(Exception):
    code, status, message = "FunctionNotFound", 404, "function not found"


class FcBackend:
    def __init__(self):
        self.functions: dict[str, object] = {}  # name -> handler(event_bytes, context)
        self.queue: deque = deque()
        self.invocations: list[dict] = []  # every async invocation, with what it returned or raised
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()

    def register(self, name: str, handler, timeout: float = 600) -> None:
        self.functions[name] = (handler, timeout)

    def invoke_async(self, name: str, payload: bytes) -> str:
        if name not in self.functions:
            raise FunctionNotFound()
        request_id = "1-" + uuid.uuid4().hex[:8] + "-" + uuid.uuid4().hex[:12]
        with self._lock:
            self.queue.append((name, payload, request_id))
        return request_id

    def run_pending(self) -> int:
        """Run every queued invocation (and those they queue); return how many ran."""
        ran = 0
        while True:
            with self._lock:
                if not self.queue:
                    return ran
                name, payload, request_id = self.queue.popleft()
            handler, timeout = self.functions[name]
            context = SimpleNamespace(request_id=request_id, credentials=None,
                                      function=SimpleNamespace(name=name, timeout=timeout))
            record = {"Function": name, "RequestId": request_id, "Payload": json.loads(payload)}
            try:
                record["Result"] = handler(payload, context)
            except Exception as err:  # FC would retry it and then send it to the failure destination
                record["Error"] = f"{type(err).__name__}: {err}"
            self.invocations.append(record)
            ran += 1

    def start_worker(self, interval: float = 0.05) -> None:
        def drain():
            while not self._stop.wait(interval):
                self.run_pending()

        self._worker = threading.Thread(target=drain, name="fc-async", daemon=True)
        self._worker.start()

    def stop_worker(self) -> None:
        self._stop.set()
