"""One loopback HTTP server that speaks ECS RPC and MNS, plus a small control API.

Routes: `/topics/...` is MNS; `/2023-03-30/functions/...` is Function Compute's
InvokeFunction; `/_emulator/...` is the control API (state, messages, faults, secret
rotation; JSON; only with the run's `X-Emulator-Token`); an RPC request of version
2016-01-20 is KMS; anything else is the ECS RPC endpoint. The official SDKs reach it through
an endpoint override, exactly as they reach Alibaba Cloud.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from emulator.accounts import Accounts
from emulator.auth import Credential, Gateway, Keyring, MnsAuthError, verify_mns
from emulator.clock import RealClock
from emulator.ecs import exceptions as ecs_exc
from emulator.ecs.models import EcsBackend
from emulator.ecs.responses import EcsResponses
from emulator.faults import Faults
from emulator.fc.models import FcBackend, FcError
from emulator.kms import exceptions as kms_exc
from emulator.kms import responses as kms_wire
from emulator.kms.exceptions import KmsError
from emulator.kms.models import KmsBackend
from emulator.mns import exceptions as mns_exc
from emulator.mns.models import MnsBackend
from emulator.mns.responses import MnsResponses, xml
from emulator.pretty import control_body
from emulator.ram.guard import Guard
from emulator.sts import exceptions as sts_exc
from emulator.sts.models import StsBackend
from emulator.sts.responses import VERSION as STS_VERSION
from emulator.sts.responses import StsResponses

HOST_ID = "ecs.emulator.local"
TOKEN_HEADER = "x-emulator-token"
SECRET_PARAMS = {"Password", "Signature", "SecurityToken"}


class _Dropped(Exception):
    """Close the connection without an answer."""


class Emulator:
    """The local cloud: state, keys, faults and the server that exposes them."""

    def __init__(self, seed: dict | None = None, clock=None, host: str = "127.0.0.1", port: int = 0,
                 ram_policy=None, control_token: str | None = None):
        """`ram_policy` (a path, a dict or an emulator.ram.Policy) turns RAM enforcement on:
        every ECS, MNS, FC, KMS and STS call, and FC's failure destination, is checked
        against it. `control_token`: what the control API asks for (else a random one)."""
        seed = seed or {}
        # The control API reads every call and injects faults: only for who holds the run's token.
        self.control_token = control_token or secrets.token_urlsafe(24)
        self.clock = clock or RealClock()
        self.ecs = EcsBackend(self.clock)
        self.ecs.seed(seed)
        self.mns = MnsBackend(seed.get("topics", []))
        self.keyring = Keyring(
            Credential(c["AccessKeyId"], c["AccessKeySecret"], c.get("SecurityToken"))
            for c in seed.get("credentials", [])
        )
        self.gateway = Gateway(self.keyring)
        self.sts = StsBackend(self.keyring, lambda: self.gateway.wall())
        self.accounts = Accounts(self.ecs, seed, self.clock, self.sts)
        self._sts = StsResponses(self.sts)
        self.faults = Faults(self.clock)
        self.fc = FcBackend()
        self.ram = Guard(self.ecs, seed.get("region", self.ecs.region), ram_policy, self.accounts.home)
        self.fc.on_failure = self.publish_failure
        self.kms = KmsBackend(seed.get("secrets"))
        self._kms = kms_wire.KmsResponses(self.kms)
        self.requests: list[dict] = []  # every ECS and MNS request, secrets redacted
        self._lock = threading.Lock()
        self._ecs = EcsResponses(self.ecs)
        self._mns = MnsResponses(self.mns)
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Emulator:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.fc.stop_worker()
        self._server.shutdown()
        self._server.server_close()

    # -- what tests read ---------------------------------------------------------
    def calls(self, action: str | None = None, service: str = "ecs") -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r["Service"] == service and (action is None or r["Action"] == action)]

    def messages(self, topic: str) -> list[dict]:
        return self.mns.messages(topic)

    def _record(self, entry: dict) -> None:
        with self._lock:
            self.requests.append(entry)

    # -- the wire ----------------------------------------------------------------
    def handle_ecs(self, method, path, query, headers, body) -> tuple[int, dict]:
        form = {}
        if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        params = {**form, **query}
        action = params.get("Action") or headers.get("x-acs-action", "")
        # One RPC endpoint for ECS, STS and KMS: the API version says which service it is.
        version = params.get("Version") or headers.get("x-acs-version")
        service = {STS_VERSION: "sts", kms_wire.VERSION: "kms"}.get(version, "ecs")
        request_id = str(uuid.uuid4()).upper()
        entry = {
            "Service": service, "Action": action, "RequestId": request_id,
            "Params": {k: ("<redacted>" if k in SECRET_PARAMS else v) for k, v in params.items()
                       if k not in ("AccessKeyId", "SignatureNonce", "Timestamp", "Format", "Version", "Action", "SignatureMethod", "SignatureVersion")},
        }
        fault = None
        try:
            cred = self.gateway.verify(method, path, query, headers, body, form)
            account = self.accounts.account_of(cred)
            entry.update(AccessKeyId=cred.access_key_id, Account=account)
            # RAM: the policy of the role that signed, on that account's resources (a member
            # account's role carries the same ECS statements: docs/events.md).
            if denial := self.ram.check(service, action, params, ecs=self.accounts.backend(account), account=account):
                raise self._ram_refusal(service, denial)
            self.clock.sleep(self.faults.latency(action))
            if not self.faults.admit(action):
                raise ecs_exc.Throttling()
            fault = self.faults.take(action)
            if fault and fault.when in ("before", "drop"):
                if fault.when == "drop":
                    raise _Dropped()
                raise _injected(fault)
            if service == "sts":
                result = self._sts.dispatch(action, params, account)
            elif service == "kms":
                result = self._kms.dispatch(action, params)
            else:
                result = self.accounts.responses(cred).dispatch(action, params)
            if fault:  # after / drop_after: it ran, and the caller cannot tell
                if fault.when == "drop_after":
                    raise _Dropped()
                raise _injected(fault)
            status, answer = 200, {"RequestId": request_id, **result}
        except (ecs_exc.EcsError, KmsError) as err:
            status, answer = err.status, {
                "RequestId": request_id, "HostId": HOST_ID, "Code": err.code, "Message": err.message,
                "Recommend": f"https://api.aliyun.com/troubleshoot?q={err.code}",
            }
        except _Dropped:
            entry.update(Status=None, Code="ConnectionDropped")
            self._record(entry)
            raise
        entry.update(Status=status, Code=answer.get("Code"))
        self._record(entry)
        return status, answer

    def handle_mns(self, method, path, headers, body) -> tuple[int, bytes]:
        request_id = uuid.uuid4().hex.upper()
        topic = path.split("/")[2] if path.count("/") >= 2 else ""
        entry = {"Service": "mns", "Action": "PublishMessage", "Topic": topic, "RequestId": request_id}
        try:
            verify_mns(self.keyring, method, path, headers, body, self.gateway.wall)
            if denial := self.ram.check("mns", "PublishMessage", {"Topic": topic}):
                raise mns_exc.AccessDenied(f"{mns_exc.AccessDenied.message} ({denial})")
            self.clock.sleep(self.faults.latency("PublishMessage"))
            fault = self.faults.take("PublishMessage")
            if fault:
                if fault.when.startswith("drop"):
                    raise _Dropped()
                raise MnsAuthError(fault.code, fault.message, fault.status)
            status, payload = self._mns.dispatch(method, path, body)
            code = None
        except (mns_exc.MnsError, MnsAuthError) as err:
            status, code = err.status, err.code
            payload = xml("Error", {"Code": err.code, "Message": err.message, "RequestId": request_id, "HostId": HOST_ID})
        except _Dropped:
            entry.update(Status=None, Code="ConnectionDropped")
            self._record(entry)
            raise
        entry.update(Status=status, Code=code)
        self._record(entry)
        return status, payload

    def handle_fc(self, method, path, query, headers, body) -> tuple[int, bytes, dict]:
        """InvokeFunction (FC 2023-03-30, ROA): POST /2023-03-30/functions/{name}/invocations."""
        name = path.split("/")[3] if path.count("/") >= 4 else ""
        request_id = uuid.uuid4().hex.upper()
        entry = {"Service": "fc", "Action": "InvokeFunction", "Function": name, "RequestId": request_id,
                 "InvocationType": headers.get("x-fc-invocation-type", "Sync"),
                 "TaskId": headers.get("x-fc-async-task-id")}
        try:
            try:
                self.gateway.verify(method, path, query, headers, body)
            except ecs_exc.EcsError as err:
                raise FcError.from_gateway(err) from None
            if denial := self.ram.check("fc", "InvokeFunction", {"Function": name}):
                raise FcError("AccessDenied", 403, f"the caller is not authorized to perform {denial}")
            if method != "POST" or not path.endswith("/invocations"):
                raise FcError("PathNotSupported", 400, f"'{method}' against '{path}' is not supported")
            if entry["InvocationType"] != "Async":
                raise FcError("InvalidArgument", 400, "Only asynchronous invocations are emulated.")
            fault = self.faults.take("InvokeFunction")  # the same fault points as ECS's
            if fault and fault.when in ("before", "drop"):
                if fault.when == "drop":
                    raise _Dropped()
                raise FcError(fault.code, fault.status, fault.message)
            fc_request_id = self.fc.invoke_async(name, body, entry["TaskId"])
            if fault:  # after / drop_after: queued, and the caller cannot tell
                if fault.when == "drop_after":
                    raise _Dropped()
                raise FcError(fault.code, fault.status, fault.message)
            status, payload, extra = 202, b"", {"x-fc-request-id": fc_request_id}
        except _Dropped:
            entry.update(Status=None, Code="ConnectionDropped")
            self._record(entry)
            raise
        except FcError as err:
            status, extra = err.status, {"x-fc-request-id": request_id}
            payload = json.dumps({"Code": err.code, "Message": err.message, "RequestId": request_id}).encode()
            entry["Code"] = err.code
        entry.update(Status=status)
        self._record(entry)
        return status, payload, extra

    def publish_failure(self, function: str, topic: str, body: str) -> None:
        """FC's failure destination: FC publishes with the function's role, so RAM checks it
        as the function's own PublishMessage (FC "Result callback": mns:PublishMessage)."""
        entry = {"Service": "mns", "Action": "PublishMessage", "Topic": topic, "Via": f"fc:{function}:onFailure",
                 "RequestId": uuid.uuid4().hex.upper()}
        try:
            if denial := self.ram.check("mns", "PublishMessage", {"Topic": topic}):
                raise mns_exc.AccessDenied(f"{mns_exc.AccessDenied.message} ({denial})")
            self.mns.publish(topic, body, None)
            entry.update(Status=201, Code=None)
        except mns_exc.MnsError as err:
            entry.update(Status=err.status, Code=err.code)
        self._record(entry)

    @staticmethod
    def _ram_refusal(service: str, denial) -> Exception:
        """A RAM denial as each RPC service answers it (emulator/README.md, RAM)."""
        if service == "sts":
            return sts_exc.NoPermission()
        if service == "kms":
            return kms_exc.NoPermission()
        return ecs_exc.ForbiddenRam(f"{ecs_exc.ForbiddenRam.message} ({denial})")

    def handle_control(self, method, path, body, token: str | None = None) -> tuple[int, dict]:
        if not hmac.compare_digest((token or "").encode(), self.control_token.encode()):
            return 401, {"Code": "Unauthorized", "Message": f"The control API needs this run's {TOKEN_HEADER} header."}
        parts = path.strip("/").split("/")[1:]
        if method == "GET" and parts == ["state"]:
            with self.ecs.lock:
                disks = self.ecs.describe_disks()
                instances = self.ecs.describe_instances()
                return 200, {
                    "Disks": {d.disk_id: {"Status": d.status, "InstanceId": d.instance_id, "ReInitCount": d.reinit_count} for d in disks},
                    "Instances": {i.instance_id: {"Status": i.status} for i in instances},
                }
        if method == "GET" and parts == ["calls"]:
            with self._lock:
                return 200, {"Requests": list(self.requests)}
        if method == "GET" and len(parts) == 2 and parts[0] == "messages":
            try:
                return 200, {"Messages": self.messages(parts[1])}
            except mns_exc.TopicNotExist:
                return 404, {"Code": "TopicNotExist"}
        if method == "POST" and parts == ["faults"]:
            spec = json.loads(body or b"{}")
            self.faults.inject(**spec)
            return 200, {"ok": True}
        if method == "POST" and parts == ["quotas"]:
            # {"action": "ReInitDisk", "kind": "bucket"|"window", "limit": 20, "window": 1, "after": 25}
            self.faults.set_quota(**json.loads(body or b"{}"))
            return 200, {"ok": True}
        if method == "POST" and len(parts) >= 3 and parts[0] == "secrets" and parts[-1] == "rotate":
            # {"Value": "..."}: a new ACSCurrent version; the one it replaces becomes ACSPrevious.
            name = "/".join(parts[1:-1])  # a secret name may hold slashes
            version = self.kms.put(name, json.loads(body or b"{}")["Value"])
            return 200, {"SecretName": name, "VersionId": version.version_id}
        if method == "DELETE" and parts == ["faults"]:
            self.faults.clear()
            return 200, {"ok": True}
        return 404, {"Code": "NotFound"}


def serve_until_stopped(*servers) -> None:
    """Block until Ctrl-C or SIGTERM, then stop the servers (last started, first stopped)."""
    import signal
    import sys

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        signal.pause()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        for server in reversed(servers):
            server.stop()


def _injected(fault) -> ecs_exc.EcsError:
    err = ecs_exc.EcsError(fault.message)
    err.code, err.status = fault.code, fault.status
    return err


def _handler_for(emulator: Emulator):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; without TCP_NODELAY, Nagle's algorithm and
        # the client's delayed ACK add 40 ms to every keep-alive request.
        disable_nagle_algorithm = True

        def log_message(self, *args):  # quiet: the request log is emulator.requests
            pass

        def _serve(self):
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                if url.path.startswith("/_emulator/"):
                    status, answer = emulator.handle_control(self.command, url.path, body, headers.get(TOKEN_HEADER))
                    payload = control_body(answer, url.query, headers.get("user-agent"))
                    self._send(status, payload, "application/json;charset=utf-8")
                elif url.path.startswith("/2023-03-30/functions/"):
                    query = dict(parse_qsl(url.query, keep_blank_values=True))
                    status, payload, extra = emulator.handle_fc(self.command, url.path, query, headers, body)
                    self._send(status, payload, "application/json", extra)
                elif url.path.startswith("/topics/"):
                    status, payload = emulator.handle_mns(self.command, url.path, headers, body)
                    self._send(status, payload, "text/xml;charset=utf-8", {"x-mns-version": "2015-06-06"})
                else:
                    query = dict(parse_qsl(url.query, keep_blank_values=True))
                    status, answer = emulator.handle_ecs(self.command, url.path or "/", query, headers, body)
                    self._send(status, json.dumps(answer).encode(), "application/json;charset=utf-8")
            except _Dropped:
                self.close_connection = True

        def _send(self, status, payload, ctype, extra=None):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _serve

    return Handler
