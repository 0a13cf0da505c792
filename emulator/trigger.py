"""`make serve`: the local cloud plus a local Function Compute HTTP trigger.

Each HTTP request to the trigger port becomes an FC3 HTTP-trigger event for
index.handler, and the handler's answer becomes the HTTP response, so `curl` with signed
headers works exactly as against the deployed trigger.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import parse_qsl, urlsplit

TEXT_TYPES = ("application/json", "text/", "application/x-www-form-urlencoded")


def to_event(method: str, target: str, headers: dict, body: bytes, source_ip: str = "127.0.0.1") -> dict:
    """An HTTP request as FC3's HTTP trigger hands it to a function."""
    url = urlsplit(target)
    textual = headers.get("Content-Type", "application/json").startswith(TEXT_TYPES)
    try:
        text = body.decode("utf-8") if textual else None
    except UnicodeDecodeError:
        text = None
    now = time.time()
    return {
        "version": "v1",
        "rawPath": url.path or "/",
        "headers": dict(headers),
        "queryParameters": dict(parse_qsl(url.query)),
        "body": text if text is not None else base64.b64encode(body).decode(),
        "isBase64Encoded": text is None,
        "requestContext": {
            "accountId": "1234567890123456",
            "domainName": "localhost",
            "domainPrefix": "reinit",
            "http": {"method": method, "path": url.path or "/", "protocol": "HTTP/1.1", "sourceIp": source_ip,
                     "userAgent": headers.get("User-Agent", "")},
            "requestId": "1-" + uuid.uuid4().hex[:8] + "-" + uuid.uuid4().hex[:12],
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": str(int(now * 1000)),
        },
    }


class TriggerServer:
    """Serves index.handler (or any handler) as FC's HTTP trigger does."""

    def __init__(self, handler, host: str = "127.0.0.1", port: int = 0, timeout: float = 60):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *_):
                pass

            def _serve(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                event = to_event(self.command, self.path, dict(self.headers.items()), body, self.client_address[0])
                context = SimpleNamespace(request_id=event["requestContext"]["requestId"], credentials=None,
                                          function=SimpleNamespace(name="reinit", timeout=timeout))
                answer = outer.handler(json.dumps(event).encode(), context)
                payload = answer.get("body", "")
                payload = base64.b64decode(payload) if answer.get("isBase64Encoded") else payload.encode()
                self.send_response(answer.get("statusCode", 200))
                for key, value in (answer.get("headers") or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        self.handler = handler
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> TriggerServer:
        import threading
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator.trigger", description=__doc__)
    parser.add_argument("--port", type=int, default=9000, help="the trigger's port (default 9000)")
    parser.add_argument("--cloud-port", type=int, default=8765, help="the emulated ECS/MNS port (default 8765)")
    args = parser.parse_args(argv)

    from emulator.demo import DEMO_SECRET, SEED, configure
    from emulator.server import Emulator, serve_until_stopped

    seed = json.loads(SEED.read_text())
    emu = Emulator(seed, port=args.cloud_port).start()
    configure(emu, seed)
    import index

    trigger = TriggerServer(index.handler, port=args.port).start()
    disks = ", ".join(d["DiskId"] for d in seed["disks"][:3])
    print(f"""local cloud (ECS + MNS): {emu.endpoint}   (state: {emu.endpoint}/_emulator/state,
                                        messages: {emu.endpoint}/_emulator/messages/reinit-results)
local HTTP trigger:      {trigger.url}
webhook secret:          {DEMO_SECRET}   (export REINIT_WEBHOOK_SECRET={DEMO_SECRET})
sample disks:            {disks} ...

try:
  export REINIT_WEBHOOK_SECRET={DEMO_SECRET}
  BODY='{{"DiskId": "d-bp1webhook0000001"}}'
  curl -s {trigger.url} -H 'Content-Type: application/json' -H @<(.venv/bin/python -m reinit sign "$BODY") -d "$BODY"
""", flush=True)
    serve_until_stopped(emu, trigger)
    return 0


if __name__ == "__main__":
    sys.exit(main())
