"""One invocation, end to end: door -> parse -> validate -> flow -> notify -> answer.

`App` holds what lives across invocations of one instance (the clients, the clock); the
rest is built per invocation. index.py is a thin shell around one App.
"""

from __future__ import annotations

import json
import os
import random as _random
import time
import traceback
from dataclasses import dataclass, replace

from reinit import events
from reinit.chunks import splitter
from reinit.clients import ClientCache, resolve_credentials
from reinit.config import Config, load_config
from reinit.errors import FAILED, REJECTED, ReinitError, failed
from reinit.events import HTTP, Invocation
from reinit.fleet import run_batch
from reinit.flow import run_single
from reinit.idempotency import IdempotencyStore, LocalReplayGuard, StoreUnavailable
from reinit.log import Log
from reinit.notify import PublishError
from reinit.pace import Paces
from reinit.report import Meta, batch_http_status, http_status, notification, summary, summary_message
from reinit.request import RequestError, parse_request, shown
from reinit.result import Context, Once, Result
from reinit.retry import full_jitter
from reinit.webhook import MAX_BODY_BYTES, WINDOW_SECONDS, verify

DEFAULT_TIMEOUT = 60.0


class InvocationFailed(Exception):
    """Raised after notifying, so that the platform retries (section 11, "Which invocations fail")."""


@dataclass
class Deadline:
    start: float
    timeout: float

    @property
    def work_ends(self) -> float:
        # Leave time to notify and answer before Function Compute ends the invocation.
        return self.start + self.timeout - min(5.0, self.timeout * 0.1)


def function_timeout(context) -> float | None:
    fn = getattr(context, "function", None)
    timeout = getattr(fn, "timeout", None)
    try:
        return float(timeout) if timeout else None
    except (TypeError, ValueError):
        return None


class App:
    def __init__(self, env=None, clock=time.monotonic, sleep=time.sleep, random=_random.random, wall=time.time):
        self.env = env if env is not None else os.environ
        self.clock, self.sleep, self.random, self.wall = clock, sleep, random, wall
        self.clients = ClientCache()
        self._warned_no_topic = False
        self._warned_no_store = False
        self._stores: dict[tuple, IdempotencyStore] = {}
        self._replays = LocalReplayGuard()
        self._paces: dict[tuple, Paces] = {}  # learned per region and endpoint, kept while warm

    def store(self, config: Config) -> IdempotencyStore | None:
        if not config.idempotency_url:
            return None
        key = (config.idempotency_url, config.idempotency_ttl)
        if key not in self._stores:
            self._stores[key] = IdempotencyStore(config.idempotency_url, config.idempotency_ttl)
        return self._stores[key]

    def paces(self, config: Config) -> Paces:
        key = (config.region, config.ecs_endpoint, config.fleet_rate)
        if key not in self._paces:
            self._paces[key] = Paces(self.clock, self.sleep, config.fleet_rate)
        return self._paces[key]

    def initialize(self, context) -> None:
        """Build the clients once per instance, where configuration and credentials allow."""
        config = load_config(self.env, function_timeout(context))
        creds = resolve_credentials(context, self.env)
        if not config.problems and creds:
            self.clients.get(config, creds)

    # -- the invocation --------------------------------------------------------------
    def handle(self, event, context):
        """One invocation. Whatever happens, the caller gets an answer, never a traceback;
        only InvocationFailed (documented, after notifying) ends it with an error."""
        try:
            return self._handle(event, context)
        except InvocationFailed:
            raise
        except Exception as err:  # a bug before the guarded part: answer it all the same
            Log({"invocation": getattr(context, "request_id", None)}).error("internal.error", error=type(err).__name__)
            try:
                trigger = events.parse_event(event).trigger
            except Exception:
                trigger = events.INVOKE
            result = Result(FAILED, "InternalError", "An internal error occurred; see the function log.", status=500)
            body = notification(result, Meta(trigger, None, getattr(context, "request_id", None), None))
            return self._http_answer(500, body) if trigger == HTTP else body

    def _handle(self, event, context):
        start = self.clock()
        invocation_id = getattr(context, "request_id", None)
        config = load_config(self.env, function_timeout(context))
        deadline = Deadline(start, config.function_timeout or DEFAULT_TIMEOUT)
        inv = events.parse_event(event)
        log = Log({"invocation": invocation_id, "trigger": inv.trigger}, secrets=[config.webhook_secret])
        creds = resolve_credentials(context, self.env)
        if creds:
            log.add_secret(creds.access_key_secret)
            log.add_secret(creds.security_token)
        meta = Meta(inv.trigger, inv.event_id, invocation_id, config.region)

        try:
            store = self.store(config)
        except Exception as err:  # redis-py refused the URL itself
            store = None
            config = replace(config, problems=(*config.problems, f"REINIT_IDEMPOTENCY_URL is not usable ({type(err).__name__})"))
        if store is None and not self._warned_no_store and not config.idempotency_url:
            log.warning("idempotency.disabled", reason="REINIT_IDEMPOTENCY_URL is not set: duplicate events are not suppressed")
            self._warned_no_store = True
        if inv.trigger == HTTP:
            refusal = self._http_door(inv, config, log, store)
            if refusal is not None:
                body = notification(refusal, meta)
                log.warning("http.refused", code=refusal.code, reason=refusal.reason)
                return self._http_answer(http_status(refusal), body)
            events.http_fields(inv)

        try:
            if inv.malformed:
                raise events.malformed_error(inv)
            if config.problems:
                raise failed("Config.Invalid", "The function is misconfigured: " + "; ".join(config.problems) + ".")
            if isinstance(inv.fields.get("Password"), str):  # redact it even if the request is refused
                log.add_secret(inv.fields["Password"])
            request = parse_request(inv.fields, inv.trigger)
            if request.password is not None:
                log.add_secret(request.password.reveal())
            if creds is None:
                raise failed("Config.Invalid", "No credentials: neither context.credentials nor the ALIBABA_CLOUD_* variables.")
            ecs, publisher = self.clients.get(config, creds)
            ctx = Context(ecs, config, self.clock, self.sleep, self.random, deadline.work_ends, log,
                          once=self._once(store, inv, deadline, request))
            if request.is_batch:
                split = self._splitter(ctx, request, inv, creds, context, invocation_id)
                return self._batch(ctx, request, meta, publisher, start, split)
            result = run_single(ctx, request)
        except RequestError as err:
            result = Result.from_error(err, err.disk_id, err.instance_id)
        except ReinitError as err:
            result = Result.from_error(err, *self._selectors(inv))
        except Exception as err:  # a bug: still answered and notified, never a traceback to the caller
            log.error("internal.error", error=type(err).__name__, trace=traceback.format_exc(limit=8))
            result = Result(FAILED, "InternalError", "An internal error occurred; see the function log.",
                            False, *self._selectors(inv), status=500)

        body = notification(result, meta)
        publisher = self._publisher_or_none(config, creds)
        published = self._publish(publisher, config, body, result.outcome, log)
        log.info("result", disk=result.disk_id, outcome=result.outcome, code=result.code,
                 ecs_request_id=result.ecs_request_id, duration=round(self.clock() - start, 3))
        if inv.trigger != HTTP and not published and (store is not None or not result.may_have_run):
            # The topic stayed down: end with an error so that the platform retries and, in the
            # end, the asynchronous failure destination gets the outcome. Only where a retry
            # cannot wipe again: a store answers it from the record, or nothing was written.
            raise InvocationFailed(json.dumps({**body, "NotificationFailed": True}))
        return self._answer(inv, result, body)

    # -- pieces -------------------------------------------------------------------------
    def _once(self, store, inv: Invocation, deadline: Deadline, request) -> Once | None:
        if store is None:
            return None
        if request.batch_id is not None:  # a chunk of a split batch: idempotent by (BatchId, Chunk)
            key = f"chunk:{request.batch_id}#{request.chunk}"
        elif inv.event_id is None:
            return None
        elif inv.trigger == HTTP and inv.http.headers.get("idempotency-key"):
            key = f"{inv.trigger}:idempotency-key:" + inv.http.headers["idempotency-key"][:256]
        else:
            key = f"{inv.trigger}:{inv.event_id}"
        hold = deadline.start + deadline.timeout - self.clock() + 5.0
        return Once(store, key, hold)

    def _splitter(self, ctx: Context, request, inv: Invocation, creds, context, invocation_id):
        """Where Function Compute can be reached, a selection too large for one invocation
        is split into chunks and handed to asynchronous invocations of this function."""
        config = ctx.config
        function_name = config.function_name or getattr(getattr(context, "function", None), "name", None)
        if not config.fc_endpoint or not function_name or request.batch_id is not None:
            return None
        usable = max(0.0, ctx.deadline - self.clock() - 30.0)
        limit = config.fleet_chunk or max(1, int(config.fleet_rate * usable * 0.8))
        return splitter(ctx, request, f"{inv.trigger}:{inv.event_id or invocation_id}", creds, function_name, limit)

    def _http_door(self, inv: Invocation, config: Config, log: Log, store) -> Result | None:
        """Method (405), decoded size (413), then signature (401): section 11, "HTTP order".
        A signature is accepted once: a replay inside the window is 401 too."""
        if inv.http.method != "POST":
            return Result(REJECTED, "MethodNotAllowed", "Only POST starts a reinit.", status=405)
        if inv.http.body is not None and len(inv.http.body) > MAX_BODY_BYTES:
            return Result(REJECTED, "PayloadTooLarge", "The body is larger than 64 KiB.", status=413)
        if config.webhook_auth != "hmac":
            return None
        try:
            signature = verify(config.webhook_secret, inv.http.headers, inv.http.body, self.wall())
        except ReinitError as err:
            return Result.from_error(err)
        ttl = 2 * WINDOW_SECONDS + 60
        try:
            fresh = store.first_use(signature, ttl) if store else self._replays.first_use(signature, self.wall(), ttl)
        except StoreUnavailable as err:
            log.error("idempotency.unavailable", error=str(err))
            return Result(FAILED, "ServiceUnavailable", "The replay store is unreachable; try again.", True, status=503)
        if not fresh:
            return Result(REJECTED, "Unauthorized.Signature", "The request signature was not accepted.", status=401,
                          reason="the signature was already used (a replay)")
        return None

    @staticmethod
    def _selectors(inv: Invocation) -> tuple[str | None, str | None]:
        fields = inv.fields or {}
        return shown(fields.get("DiskId")), shown(fields.get("InstanceId"))

    def _publisher_or_none(self, config: Config, creds):
        if not config.topic or not config.mns_endpoint or creds is None:
            return None
        try:
            return self.clients.get(config, creds)[1]
        except Exception:
            return None

    def _publish(self, publisher, config: Config, body: dict, tag: str, log: Log) -> bool:
        """Publish with retries; if the topic stays down, the whole outcome goes to the log.
        False only where a topic is configured and the message could not be published."""
        if publisher is None:
            if not config.topic and not self._warned_no_topic:
                log.warning("notify.disabled", reason="REINIT_TOPIC is not set: outcomes are only logged")
                self._warned_no_topic = True
            if config.topic:
                log.error("notify.unavailable", notification=body)
                return False
            return True
        for attempt in range(1, 5):
            try:
                message_id = publisher.publish(body, tag)
                log.info("notify.published", topic=config.topic, message_id=message_id, tag=tag)
                return True
            except PublishError as err:
                if not err.retryable or attempt == 4:
                    log.error("notify.failed", topic=config.topic, code=err.code, notification=body)
                    return False
                self.sleep(full_jitter(attempt, self.random, base=0.2, cap=2.0))
        return False

    def _answer(self, inv: Invocation, result: Result, body: dict):
        if inv.trigger == HTTP:
            return self._http_answer(http_status(result), body)
        if result.outcome == FAILED and result.retryable:
            raise InvocationFailed(json.dumps(body))
        return body

    @staticmethod
    def _http_answer(status: int, body: dict) -> dict:
        return {"statusCode": status, "headers": {"Content-Type": "application/json"},
                "isBase64Encoded": False, "body": json.dumps(body)}

    def _batch(self, ctx: Context, request, meta: Meta, publisher, start: float, split=None):
        def on_result(result: Result) -> None:
            self._publish(publisher, ctx.config, notification(result, meta), result.outcome, ctx.log)

        results, refusal, figures = run_batch(ctx, request, self.paces(ctx.config), on_result, split)
        full = summary(results, meta, self.clock() - start, refusal)
        full.update(figures)
        self._publish(publisher, ctx.config, summary_message(full), "Summary", ctx.log)
        ctx.log.info("batch.result", outcome=full["Outcome"], code=full["Code"], total=full["Total"],
                     counts=full["Counts"], duration=full["DurationSeconds"])
        if meta.trigger == HTTP:
            return self._http_answer(batch_http_status(full, refusal), full)
        return full
