"""Operator commands.

  python -m reinit sign [BODY | --file F]          print the headers that sign BODY for the webhook
  python -m reinit send FILE|- [--url U | --cloud F]  sign the exact bytes of FILE (or stdin), POST
                                                   them to the HTTP trigger, print the answer
  python -m reinit invoke EVENT.json [--emulator | --cloud F]
                                                   run the handler on an event here
  python -m reinit approve|deny TOKEN... [--url U | --cloud F]
                                                   decide wipes held for approval (docs/approval.md),
                                                   signed with REINIT_APPROVER_SECRET

`sign` and `send` read the secret from REINIT_WEBHOOK_SECRET, never from the command line
(so it stays out of shell history and process lists); with --cloud FILE, from FILE (the
random secret of the local trigger that `make serve` runs). Plain http:// is used only to a
loopback host: a body and its signature never cross a network in clear text. `send` posts to --url, else the
trigger named in --cloud's file, else $REINIT_TRIGGER_URL, else http://127.0.0.1:9000/.
`invoke` uses the REINIT_* environment as the function would; --cloud FILE points it at
the local cloud that `make serve` runs (it writes FILE, build/local-cloud.env by default);
--emulator starts a private local cloud with the sample fleet instead. On a terminal, a
batch shows a progress bar (done/total, rate, throttles) on stderr; the JSON log lines
stay, also on stderr; the answer goes to stdout.

Exit status of `send` and `invoke`, from the answer's Outcome (a batch: its summary's):
  0  Succeeded or DryRun
  1  the command itself broke: this Python lacks a module the function needs (the message
     names it and the fix), or a Python traceback
  2  usage: bad arguments, an unreadable file, REINIT_WEBHOOK_SECRET unset, no cloud file
  3  Rejected: a rule refused it before any write (validation, a guard, 401/405/413);
     a batch: no disk was written
  4  Failed: something did not succeed (the Message and Code say what; Retryable says
     whether the same request may succeed later), or the invocation itself failed, so
     that the platform would retry it
  5  no answer: the trigger or the local cloud could not be reached, or the answer was
     not the function's (for example a proxy's error page)
  6  Partial: a batch wrote some disks and not others (the summary's Results say which)
  7  AwaitingApproval: held for a person's decision; nothing was written yet
`approve` and `deny` exit by the same table (`deny` exits 0 where the denial was carried
out); 2 also where REINIT_APPROVER_SECRET is unset.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import pathlib
import shlex
import sys
import threading
import time
import uuid
from types import SimpleNamespace

EXIT_OK, EXIT_USAGE, EXIT_REJECTED, EXIT_FAILED, EXIT_NO_ANSWER = 0, 2, 3, 4, 5
EXIT_MISSING_MODULE, EXIT_PARTIAL, EXIT_AWAITING_APPROVAL = 1, 6, 7
EXIT_BY_OUTCOME: dict[str | None, int] = {"Succeeded": EXIT_OK, "DryRun": EXIT_OK, "Rejected": EXIT_REJECTED, "Failed": EXIT_FAILED,
                   "Partial": EXIT_PARTIAL, "AwaitingApproval": EXIT_AWAITING_APPROVAL}
# What `invoke` imports to reach the cloud (requirements.txt); checked before the handler runs,
# which would otherwise answer InternalError for a Python that lacks them.
NEEDED_MODULES = ("alibabacloud_tea_openapi.client", "alibabacloud_credentials.client", "darabonba.runtime")
DEFAULT_TRIGGER_URL = "http://127.0.0.1:9000/"


class UsageError(Exception):
    """What the operator must change; printed as one line, exit status 2."""


class NoAnswer(Exception):
    """Nothing answered, or not the function; printed as one line, exit status 5."""


class MissingModule(Exception):
    """This Python lacks a module the function needs; printed with the fix, exit status 1."""

    def __init__(self, name: str):
        super().__init__(
            f"reinit: this Python ({sys.executable}, {sys.version.split()[0]}) lacks the module {name!r} that the "
            "function needs. Install the dependencies with `make install`, then run `.venv/bin/python -m reinit ...` "
            "(or `pip install -r requirements.txt` into this Python).")


def require_modules(names=NEEDED_MODULES) -> None:
    """Raise MissingModule naming the first module of `names` (or one it imports) that is missing."""
    import importlib
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            raise MissingModule(err.name or name) from None


def exit_status(answer: dict) -> int:
    """The exit status for an answer: a notification, a batch summary or an HTTP answer."""
    if isinstance(answer, dict) and "statusCode" in answer and isinstance(answer.get("body"), str):
        try:
            answer = json.loads(answer["body"])
        except ValueError:
            return EXIT_NO_ANSWER
    outcome = answer.get("Outcome") if isinstance(answer, dict) else None
    return EXIT_BY_OUTCOME.get(outcome, EXIT_NO_ANSWER)


def webhook_secret(command: str, cloud: str | None = None) -> str:
    """The local trigger's secret from the cloud file (with --cloud), else the environment's."""
    secret = read_cloud_file(cloud).get("REINIT_WEBHOOK_SECRET") if cloud else None
    secret = secret or os.environ.get("REINIT_WEBHOOK_SECRET")
    if not secret:
        raise UsageError(f"reinit {command}: set REINIT_WEBHOOK_SECRET to the webhook secret first")
    return secret


def read_body(source: str | None) -> bytes:
    """The exact bytes of a file, or of stdin for `-` (or no file)."""
    if source in (None, "-"):
        return sys.stdin.buffer.read()
    try:
        return pathlib.Path(source).read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read {source}: {err.strerror}") from err


def read_cloud_file(path: str) -> dict:
    """KEY=value lines, as `make serve` writes them (comments and blank lines skipped)."""
    try:
        text = pathlib.Path(path).read_text()
    except FileNotFoundError as err:
        raise UsageError(f"no local cloud file at {path}: start `make serve` (it writes the file while it runs)") from err
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from err
    variables = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            variables[key.strip()] = value.strip()
    if not variables.get("REINIT_ECS_ENDPOINT"):
        raise UsageError(f"{path} names no REINIT_ECS_ENDPOINT: is it a file `make serve` wrote?")
    return variables


# -- sign ---------------------------------------------------------------------------------
def _sign(args) -> int:
    from reinit import webhook

    secret = webhook_secret("sign", args.cloud)
    body = read_body(args.file) if args.file or args.body is None else args.body.encode("utf-8")
    headers = webhook.signed_headers(secret, int(args.timestamp or time.time()), body)
    url = checked_url("sign", trigger_url(args)) if args.format == "curl" else None
    if args.format == "headers":  # one per line: python -m reinit sign "$BODY" | curl -H @- ...
        print("\n".join(f"{k}: {v}" for k, v in headers.items()))
    elif args.format == "curl" and url is not None:  # the whole command, to the checked URL, with the exact bytes
        data = "@" + shlex.quote(args.file) if args.file else shlex.quote(body.decode("utf-8", "replace"))
        print(f"curl -sS -X POST {shlex.quote(url)} -H 'Content-Type: application/json' "
              + " ".join(f"-H '{k}: {v}'" for k, v in headers.items()) + f" --data-binary {data}")
    else:
        print(json.dumps(headers))
    return EXIT_OK


# -- send ---------------------------------------------------------------------------------
def checked_url(command: str, url: str) -> str:
    """`url`, if it may carry a signed body: https://, or http:// to a loopback host only
    (127.0.0.0/8, localhost, ::1, as urllib itself reads the host). Else a UsageError."""
    from urllib.parse import urlsplit

    from reinit.config import is_loopback

    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host or "\\" in url or "@" in parts.netloc:
        raise UsageError(f"reinit {command}: {url!r} is not an http(s) URL of the trigger")
    if parts.scheme == "http" and not is_loopback(host):
        raise UsageError(f"reinit {command}: refusing plain http:// to {host}, which is not this machine: the body "
                         "(a Password, perhaps) and its signature would cross the network in clear text; use the "
                         "trigger's https:// URL")
    return url


def trigger_url(args) -> str:
    if getattr(args, "url", None):
        return args.url
    if getattr(args, "cloud", None):
        url = read_cloud_file(args.cloud).get("REINIT_TRIGGER_URL")
        if not url:
            raise UsageError(f"{args.cloud} names no REINIT_TRIGGER_URL")
        return url
    return os.environ.get("REINIT_TRIGGER_URL") or DEFAULT_TRIGGER_URL


def _send(args) -> int:
    import urllib.error
    import urllib.request

    from reinit import webhook

    secret = webhook_secret("send", args.cloud)
    url = checked_url("send", trigger_url(args))
    body = read_body(args.file)
    headers = {"Content-Type": "application/json", **webhook.signed_headers(secret, int(time.time()), body)}
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        from reinit.approval_cli import open_direct

        with open_direct(request, args.timeout) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, payload = err.code, err.read()
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise NoAnswer(f"reinit send: no answer from {url}: {reason} (is `make serve` running, or is --url right?)") from err
    print(f"HTTP {status} from {url}", file=sys.stderr)
    try:
        answer = json.loads(payload)
    except ValueError:
        sys.stdout.write(payload.decode("utf-8", "replace") + "\n")
        return EXIT_NO_ANSWER
    print(json.dumps(answer, indent=2))
    return exit_status(answer)


# -- invoke -------------------------------------------------------------------------------
class ProgressBar:
    """A one-line progress display on a terminal, fed by the function's `batch.progress`
    log lines (a filter on the `reinit` logger sees every line; it changes none). Other
    output written through `stream()` clears the bar first and redraws it after."""

    WIDTH = 30

    def __init__(self, out, enabled: bool):
        self.out = out
        self.enabled = enabled
        self.state: dict | None = None
        self._shown = False
        self._lock = threading.RLock()

    # the logging side
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.enabled and message.startswith("{") and '"batch.' in message:
            try:
                line = json.loads(message)
            except ValueError:
                return True
            if line.get("event") == "batch.progress":
                self.update(line.get("done", 0), line.get("total", 0), line.get("rate"), line.get("throttles", 0))
            elif line.get("event") == "batch.result" and self.state is not None:
                self.update(line.get("total", 0), line.get("total", 0), self.state["rate"], self.state["throttles"])
        return True

    def update(self, done: int, total: int, rate, throttles) -> None:
        with self._lock:
            self.state = {"done": done, "total": total, "rate": rate, "throttles": throttles}
            self._draw()

    def render(self) -> str:
        s = self.state
        assert s is not None, "drawn only once a progress line set the state (_draw)"
        filled = int(self.WIDTH * s["done"] / s["total"]) if s["total"] else self.WIDTH
        rate = f"{s['rate']:.1f} disks/s" if isinstance(s["rate"], (int, float)) else "-"
        return (f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {s['done']}/{s['total']} disks  {rate}  "
                f"throttled {s['throttles']}")

    def _draw(self) -> None:
        if self.enabled and self.state is not None:
            self.out.write("\r\x1b[K" + self.render())
            self.out.flush()
            self._shown = True

    def _clear(self) -> None:
        if self._shown:
            self.out.write("\r\x1b[K")
            self._shown = False

    # the output side
    def write(self, text: str) -> int:
        with self._lock:
            self._clear()
            self.out.write(text)
            if text.endswith("\n"):
                self._draw()
        return len(text)

    def flush(self) -> None:
        self.out.flush()

    def finish(self) -> None:
        """Leave the last state of the bar on its own line."""
        with self._lock:
            if self._shown:
                self.out.write("\n")
                self.out.flush()
                self._shown = False

    @contextlib.contextmanager
    def attached(self):
        """The function's output (its log lines) through the bar, to stderr."""
        logger = logging.getLogger("reinit")
        logger.addFilter(self)
        try:
            with contextlib.redirect_stdout(self):
                yield self
        finally:
            logger.removeFilter(self)
            self.finish()


def _start_emulator():
    from emulator.demo import POLICY, SEED, configure
    from emulator.server import Emulator

    seed = json.loads(SEED.read_text())
    emu = Emulator(seed, ram_policy=POLICY).start()
    configure(emu, seed)
    print(f"reinit invoke: local cloud at {emu.endpoint} (sample fleet; RAM policy enforced)", file=sys.stderr)
    return emu


def _use_cloud(path: str) -> None:
    """Point this process at the running local cloud that `make serve` described in path."""
    import urllib.request

    variables = read_cloud_file(path)
    endpoint = variables["REINIT_ECS_ENDPOINT"].rstrip("/")
    try:
        probe = urllib.request.Request(f"{endpoint}/_emulator/state",
                                       headers={"X-Emulator-Token": variables.get("REINIT_EMULATOR_TOKEN", "")})
        from reinit.approval_cli import open_direct

        with open_direct(probe, 5):
            pass
    except OSError as err:
        raise NoAnswer(f"reinit invoke: the local cloud in {path} ({endpoint}) does not answer: is `make serve` still running?") from err
    os.environ.update(variables)
    print(f"reinit invoke: the local cloud at {endpoint} (from {path})", file=sys.stderr)


def _invoke(args) -> int:
    try:
        event = json.loads(pathlib.Path(args.event).read_text())
    except OSError as err:
        raise UsageError(f"cannot read {args.event}: {err.strerror}") from err
    except ValueError as err:
        raise UsageError(f"{args.event} is not JSON: {err}") from err
    require_modules()
    if args.cloud:
        _use_cloud(args.cloud)
    emu = _start_emulator() if args.emulator else None
    try:
        from reinit import webhook
        from reinit.app import App, InvocationFailed

        secret = os.environ.get("REINIT_WEBHOOK_SECRET")
        if isinstance(event, dict) and "requestContext" in event and secret and isinstance(event.get("body"), str) \
                and not event.get("isBase64Encoded"):
            event.setdefault("headers", {}).update(webhook.signed_headers(secret, int(time.time()), event["body"].encode()))
        context = SimpleNamespace(request_id=f"cli-{uuid.uuid4().hex[:16]}", credentials=None,
                                  function=SimpleNamespace(name="reinit", timeout=float(os.environ.get("FC_FUNCTION_TIMEOUT", 60))))
        show = {"always": True, "never": False}.get(args.progress, sys.stderr.isatty())
        invocation_failed = False
        with ProgressBar(sys.stderr, show).attached() as bar:  # the function's log lines; the answer goes to stdout
            try:
                answer = App().handle(json.dumps(event).encode(), context)
            except InvocationFailed as failed:  # the platform would retry it; the answer is the same notification
                answer, invocation_failed = json.loads(str(failed)), True
                print("reinit invoke: the invocation failed (the platform would retry it)", file=bar)
        print(json.dumps(answer, indent=2))
        if emu is not None:
            print("messages published:", file=sys.stderr)
            for message in emu.messages("reinit-results"):
                print(f"  [{message['MessageTag']}] {message['MessageBody']}", file=sys.stderr)
        return max(exit_status(answer), EXIT_FAILED if invocation_failed else EXIT_OK)
    finally:
        if emu is not None:
            emu.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reinit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sign = sub.add_parser("sign", help="print the signature headers for a webhook body")
    sign.add_argument("body", nargs="?", help="the exact body to send (default: read stdin)")
    sign.add_argument("--file", help="read the body from this file (its exact bytes)")
    sign.add_argument("--timestamp", type=int, help="Unix seconds (default: now)")
    sign.add_argument("--format", choices=("headers", "curl", "json"), default="headers",
                      help="curl: the whole curl command, to --url, --cloud's trigger, $REINIT_TRIGGER_URL or "
                           f"{DEFAULT_TRIGGER_URL}")
    sign_where = sign.add_mutually_exclusive_group()
    sign_where.add_argument("--url", help="the trigger's URL, for --format curl")
    sign_where.add_argument("--cloud", metavar="FILE", help="sign with the secret of the local trigger in FILE")
    send = sub.add_parser("send", help="sign a body and POST it to the HTTP trigger; print the answer")
    send.add_argument("file", nargs="?", default="-", help="the body, sent byte for byte (default or `-`: stdin)")
    where = send.add_mutually_exclusive_group()
    where.add_argument("--url", help=f"the trigger's URL (default: $REINIT_TRIGGER_URL, else {DEFAULT_TRIGGER_URL})")
    where.add_argument("--cloud", metavar="FILE", help="the local trigger named in this file (make serve writes it)")
    send.add_argument("--timeout", type=float, default=660, help="seconds to wait for the answer (default 660)")
    invoke = sub.add_parser("invoke", help="run the handler on an event file")
    invoke.add_argument("event", help="an event JSON file, e.g. events/eventbridge.json")
    cloud = invoke.add_mutually_exclusive_group()
    cloud.add_argument("--cloud", metavar="FILE",
                       help="use the running local cloud described in FILE (make serve writes build/local-cloud.env)")
    cloud.add_argument("--emulator", action="store_true", help="start a private local cloud with the sample fleet first")
    invoke.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                        help="a batch's progress bar on stderr (default: on a terminal)")
    from reinit import approval_cli
    approval_cli.add_parsers(sub, DEFAULT_TRIGGER_URL)
    args = parser.parse_args(argv)
    try:
        if args.command in ("approve", "deny"):
            return approval_cli.decide_command(args, sys.modules[__name__])
        return {"sign": _sign, "send": _send, "invoke": _invoke}[args.command](args)
    except UsageError as err:
        print(err, file=sys.stderr)
        return EXIT_USAGE
    except NoAnswer as err:
        print(err, file=sys.stderr)
        return EXIT_NO_ANSWER
    except MissingModule as err:
        print(err, file=sys.stderr)
        return EXIT_MISSING_MODULE
    except ModuleNotFoundError as err:  # one the list above did not foresee: the same answer
        print(MissingModule(err.name or str(err)), file=sys.stderr)
        return EXIT_MISSING_MODULE


if __name__ == "__main__":
    sys.exit(main())
