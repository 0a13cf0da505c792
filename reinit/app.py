"""One invocation, end to end, as a pipeline of named steps:

    door (door.py) -> parse and policy (policy.py) -> claim (claim.py)
      -> carry out or hand off (flow.run_single + continuation.py; batch.py)
      -> publish and answer (delivery.py)

`App` holds what lives across invocations of one instance (the clients, the stores, the
learned pace, the clock); `open_call` opens what one invocation is given (call.Call);
`Invocation` runs the steps. index.py is a thin shell around one App.
"""

from __future__ import annotations

import os
import random as _random
import time
import traceback
from dataclasses import replace

from reinit import approval, events
from reinit.batch import carry_out_batch
from reinit.call import Call, Deadline, Where, warn_once
from reinit.claim import claim, decide
from reinit.clients import ClientCache, resolve_credentials
from reinit.config import Config, load_config
from reinit.context import Context
from reinit.continuation import continue_later, function_name, settle_claim
from reinit.delivery import PASSING, InvocationFailed, deliver, http_answer
from reinit.door import through_door
from reinit.errors import FAILED, ReinitError
from reinit.events import HTTP, INVOKE
from reinit.flow import run_single
from reinit.idempotency import IdempotencyStore, LocalReplayGuard
from reinit.log import Log
from reinit.pace import Paces
from reinit.policy import admit, read_password_secret, refuse_query_string
from reinit.report import Meta, notification
from reinit.request import Request, RequestError
from reinit.result import Result
from reinit.retry import Retrier
from reinit.scrub import Scrubber
from reinit.secrets import SecretCache, SecretReader
from reinit.sts import AssumedRoles

__all__ = ["App", "Invocation", "InvocationFailed", "PASSING", "open_call"]

DEFAULT_TIMEOUT = 60.0


def function_timeout(context) -> float | None:
    fn = getattr(context, "function", None)
    timeout = getattr(fn, "timeout", None)
    try:
        return float(timeout) if timeout else None
    except (TypeError, ValueError):
        return None


class App:
    def __init__(self, env=None, clock=time.monotonic, sleep=time.sleep, random=_random.random, wall=time.time) -> None:
        self.env = env if env is not None else os.environ
        self.clock, self.sleep, self.random, self.wall = clock, sleep, random, wall
        self.clients = ClientCache()
        self.warned: set[str] = set()  # one-per-instance warnings already written
        self._stores: dict[tuple, IdempotencyStore] = {}
        self._paces: dict[tuple, Paces] = {}  # learned per region and endpoint, kept while warm
        self.replays = LocalReplayGuard()
        self.roles = AssumedRoles()  # credentials of roles assumed in member accounts
        self.secret_cache = SecretCache()  # KMS secrets and clients, kept while warm (section 13.2)
        # Reads a secret by name; None: the invocation's KMS reader (tests may put another here).
        self.get_secret: approval.SecretReader | None = None

    def store(self, config: Config) -> IdempotencyStore | None:
        if not config.idempotency_url:
            return None
        key = (config.idempotency_url, config.idempotency_ttl)
        if key not in self._stores:
            self._stores[key] = IdempotencyStore(config.idempotency_url, config.idempotency_ttl, wall=self.wall)
        return self._stores[key]

    def paces(self, config: Config, region: str | None = None, share: float = 1.0) -> Paces:
        key = (region or config.region, config.ecs_endpoint, config.fleet_rate, share)
        if key not in self._paces:
            self._paces[key] = Paces(self.clock, self.sleep, config.fleet_rate, share)
        return self._paces[key]

    def initialize(self, context) -> None:
        """Build the clients once per instance, where configuration and credentials allow."""
        config = load_config(self.env, function_timeout(context))
        creds = resolve_credentials(context, self.env)
        if not config.problems and creds:
            self.clients.get(config, creds)

    def handle(self, event, context):
        """One invocation. Whatever happens, the caller gets an answer, never a traceback;
        only InvocationFailed (documented, after notifying) ends it with an error."""
        try:
            return Invocation(self, event, context).run()
        except InvocationFailed:
            raise
        except Exception as err:  # a bug before anything could be set up: answer it all the same
            Log({"invocation": getattr(context, "request_id", None)}).error("internal.error", error=type(err).__name__)
            result = Result(FAILED, "InternalError", "An internal error occurred; see the function log.", status=500)
            trigger = _trigger_of(event)
            body = notification(result, Meta(trigger, None, getattr(context, "request_id", None), None))
            return http_answer(500, body) if trigger == HTTP else body


def _trigger_of(event) -> str:
    try:
        return events.parse_event(event).trigger
    except Exception:
        return INVOKE


def open_call(app: App, event, context) -> Call:
    """What one invocation is given: its configuration, event, log, scrubber (which knows
    every secret in reach), credentials, store, secret reader and deadline."""
    start = app.clock()
    invocation_id = getattr(context, "request_id", None)
    config = load_config(app.env, function_timeout(context))
    deadline = Deadline(start, config.function_timeout or DEFAULT_TIMEOUT)
    inv = events.parse_event(event)
    scrubber = Scrubber([config.webhook_secret, config.approver_secret])
    log = Log({"invocation": invocation_id, "trigger": inv.trigger}, scrubber=scrubber)
    creds = resolve_credentials(context, app.env)
    if creds:
        scrubber.add(creds.access_key_secret)
        scrubber.add(creds.security_token)
    store, config = open_store(app, config, log)
    secrets = SecretReader(app.secret_cache, config.kms_endpoint, config.region, creds, config.secret_cache_seconds,
                           app.clock, retrier=Retrier(app.clock, app.sleep, app.random, deadline.work_ends,
                                                      max_attempts=3))
    return Call(app, context, invocation_id, start, config, deadline, inv, scrubber, log, creds, store, secrets)


def open_store(app: App, config: Config, log: Log) -> tuple[IdempotencyStore | None, Config]:
    """The idempotency store, checked once per instance; a URL redis-py refuses becomes a
    problem of the configuration (Config.Invalid)."""
    try:
        store = app.store(config)
    except Exception as err:  # redis-py refused the URL itself
        return None, replace(config, problems=(
            *config.problems, f"REINIT_IDEMPOTENCY_URL is not usable ({type(err).__name__})"))
    if store is None and not config.idempotency_url:
        warn_once(app, log, "idempotency.disabled", "REINIT_IDEMPOTENCY_URL is not set: duplicate events are not suppressed")
    if store is not None and "idempotency.store_checked" not in app.warned:
        app.warned.add("idempotency.store_checked")  # once per instance
        problems = store.forgets()
        if problems:  # warned, not refused: the disk's wipe mark still stops a second wipe
            log.warning("idempotency.store_forgets", reason="; ".join(problems))
        elif problems is None:
            log.info("idempotency.store_unchecked", reason="CONFIG GET was refused or failed")
    return store, config


class Invocation:
    """One invocation as a pipeline of steps that return values. Every failure becomes a
    Result that is published (when the request was authenticated) and answered."""

    def __init__(self, app: App, event, context):
        self.call = open_call(app, event, context)
        self.where = Where(self.call.config.region)  # filled in by the steps that learn it

    def run(self):
        call, where = self.call, self.where
        role = approval.WEBHOOK
        if call.inv.trigger == HTTP:
            refused, role = through_door(call, where)
            if refused is not None:
                return refused
        try:
            if role == approval.APPROVER:
                refuse_query_string(call)
                return deliver(call, where, decide(call, where))
            request = admit(call, where)
            ctx = claim(call, where, request)
            request = read_password_secret(call, request)
            if request.is_batch:
                return carry_out_batch(call, where, ctx, request)
            result = self.carry_out(ctx, request)
        except RequestError as err:
            result = Result.from_error(err, err.disk_id, err.instance_id)
        except ReinitError as err:
            result = Result.from_error(err, *call.selectors())
        except InvocationFailed:  # a batch that could not publish: documented, after logging it
            raise
        except Exception as err:  # a bug: still answered and notified, never a traceback to the caller
            call.log.error("internal.error", error=type(err).__name__, trace=traceback.format_exc(limit=8))
            result = Result(FAILED, "InternalError", "An internal error occurred; see the function log.",
                            False, *call.selectors(), status=500)
        return deliver(call, where, result)

    def carry_out(self, ctx: Context, request: Request) -> Result:
        """One disk, or the instance's system disk; a snapshot that outlasts the invocation
        hands the request on to a later one."""
        call = self.call
        result = run_single(ctx, request)
        if result.snapshot_pending:
            # A continuation is an `invoke` of the function's own account: a member
            # account's request is not handed on but stays a retryable wait, and the
            # platform's retry of the event (its account, its role) finds the same snapshot.
            name = function_name(call.config, call.context) if self.where.account is None else None
            result = continue_later(ctx, call.config, call.creds, name, request, result)
            settle_claim(ctx, result, call.scrubber)
        return result
