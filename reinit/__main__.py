"""Operator commands.

  python -m reinit sign [BODY | --file F]     print the headers that sign BODY for the webhook
  python -m reinit invoke EVENT.json          run the handler on a sample event

`sign` reads the secret from REINIT_WEBHOOK_SECRET (never from the command line, so it
stays out of shell history). `invoke` uses the REINIT_* environment as the function would;
with --emulator it first starts the local cloud with the sample fleet and points at it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import sys
import time
from types import SimpleNamespace


def _sign(args) -> int:
    from reinit import webhook

    secret = os.environ.get("REINIT_WEBHOOK_SECRET")
    if not secret:
        print("reinit sign: set REINIT_WEBHOOK_SECRET to the webhook secret first", file=sys.stderr)
        return 2
    if args.file:
        body = pathlib.Path(args.file).read_bytes()
    elif args.body is not None:
        body = args.body.encode("utf-8")
    else:
        body = sys.stdin.buffer.read()
    headers = webhook.signed_headers(secret, int(args.timestamp or time.time()), body)
    if args.format == "headers":  # one per line: curl -H @<(python -m reinit sign "$BODY")
        print("\n".join(f"{k}: {v}" for k, v in headers.items()))
    elif args.format == "curl":
        print(" ".join(f"-H '{k}: {v}'" for k, v in headers.items()))
    else:
        print(json.dumps(headers))
    return 0


def _start_emulator():
    from emulator.demo import SEED, configure
    from emulator.server import Emulator

    seed = json.loads(SEED.read_text())
    emu = Emulator(seed).start()
    configure(emu, seed)
    print(f"reinit invoke: local cloud at {emu.endpoint} (sample fleet)", file=sys.stderr)
    return emu


def _invoke(args) -> int:
    event = json.loads(pathlib.Path(args.event).read_text())
    emu = _start_emulator() if args.emulator else None
    try:
        from reinit import webhook
        from reinit.app import App, InvocationFailed

        secret = os.environ.get("REINIT_WEBHOOK_SECRET")
        if "requestContext" in event and secret and isinstance(event.get("body"), str) and not event.get("isBase64Encoded"):
            event.setdefault("headers", {}).update(webhook.signed_headers(secret, int(time.time()), event["body"].encode()))
        context = SimpleNamespace(request_id=f"cli-{int(time.time())}", credentials=None,
                                  function=SimpleNamespace(name="reinit", timeout=float(os.environ.get("FC_FUNCTION_TIMEOUT", 60))))
        try:
            with contextlib.redirect_stdout(sys.stderr):  # the function's log lines; the answer goes to stdout
                answer = App().handle(json.dumps(event).encode(), context)
            status = 0
        except InvocationFailed as failed:
            answer, status = json.loads(str(failed)), 1
        print(json.dumps(answer, indent=2))
        if emu is not None:
            print("messages published:", file=sys.stderr)
            for message in emu.messages("reinit-results"):
                print(f"  [{message['MessageTag']}] {message['MessageBody']}", file=sys.stderr)
        return status
    finally:
        if emu is not None:
            emu.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reinit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sign = sub.add_parser("sign", help="print the signature headers for a webhook body")
    sign.add_argument("body", nargs="?", help="the exact body to send (default: read stdin)")
    sign.add_argument("--file", help="read the body from this file")
    sign.add_argument("--timestamp", type=int, help="Unix seconds (default: now)")
    sign.add_argument("--format", choices=("headers", "curl", "json"), default="headers")
    invoke = sub.add_parser("invoke", help="run the handler on an event file")
    invoke.add_argument("event", help="an event JSON file, e.g. events/eventbridge.json")
    invoke.add_argument("--emulator", action="store_true", help="start the local cloud with the sample fleet first")
    args = parser.parse_args(argv)
    return _sign(args) if args.command == "sign" else _invoke(args)


if __name__ == "__main__":
    sys.exit(main())
