"""One invocation, end to end: door -> parse -> validate -> policy -> flow -> notify -> answer.

`App` holds what lives across invocations of one instance (the clients, the stores, the
learned pace, the clock); `Invocation` is one invocation, in named steps. index.py is a
thin shell around one App.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random as _random
import time
import traceback
import uuid
from dataclasses import dataclass, replace

from reinit import approval, events
from reinit.chunks import MAX_CHUNK_DISKS, hander, splitter
from reinit.clients import ClientCache, resolve_credentials
from reinit.cloudevent import acting_account, check_type, event_region, read_target, require_target
from reinit.config import Config, load_config
from reinit.context import Context, Once
from reinit.continuation import continue_later, function_name, settle_claim
from reinit.errors import FAILED, REJECTED, ReinitError, failed, rejected
from reinit.events import EVENTBRIDGE, HTTP, INVOKE
from reinit.fleet import run_batch
from reinit.flow import run_single
from reinit.idempotency import IdempotencyStore, LocalReplayGuard, StoreUnavailable, fingerprint
from reinit.log import Log
from reinit.notify import PublishError
from reinit.pace import Paces
from reinit.report import Meta, batch_http_status, http_status, notification, summary, summary_message
from reinit.request import (
    Password,
    Request,
    RequestError,
    parse_request,
    password_problem,
    refuse_event_credentials,
    shown,
)
from reinit.result import Result
from reinit.retry import Retrier
from reinit.scrub import Scrubber
from reinit.secrets import SecretCache, SecretError, SecretReader
from reinit.sts import AssumedRoles, role_arn, session_name
from reinit.webhook import MAX_BODY_BYTES, WINDOW_SECONDS

DEFAULT_TIMEOUT = 60.0
PUBLISH_ATTEMPTS = 4
PUBLISH_ATTEMPTS_TO_DEADLINE = 1000  # bounded by the deadline long before this
# Batch outcomes of a disk not carried out for a passing reason: a retry of the invocation does it.
PASSING = ("Conflict.InProgress", "WaitTimeout", "ServiceUnavailable")


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

    @property
    def hard_end(self) -> float:
        return self.start + self.timeout - min(0.5, self.timeout * 0.01)


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


def http_answer(status: int, body: dict) -> dict:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "isBase64Encoded": False, "body": json.dumps(body)}


class Invocation:
    """One invocation in named steps. Every failure becomes a Result that is published
    (when the request was authenticated) and answered."""

    def __init__(self, app: App, event, context):
        self.app, self.context = app, context
        self.start = app.clock()
        self.invocation_id = getattr(context, "request_id", None)
        self.config = load_config(app.env, function_timeout(context))
        self.deadline = Deadline(self.start, self.config.function_timeout or DEFAULT_TIMEOUT)
        self.inv = events.parse_event(event)
        self.scrubber = Scrubber([self.config.webhook_secret, self.config.approver_secret])
        self.role = approval.WEBHOOK  # who signed an HTTP request (door)
        self.log = Log({"invocation": self.invocation_id, "trigger": self.inv.trigger}, scrubber=self.scrubber)
        self.creds = resolve_credentials(context, app.env)
        if self.creds:
            self.scrubber.add(self.creds.access_key_secret)
            self.scrubber.add(self.creds.security_token)
        self.region = self.config.region
        self.account: str | None = None  # a member account the event is acted on in (section 13.1)
        self.store = self._open_store()
        self.secrets = SecretReader(app.secret_cache, self.config.kms_endpoint, self.config.region, self.creds,
                                    self.config.secret_cache_seconds, app.clock, retrier=Retrier(
                                        app.clock, app.sleep, app.random, self.deadline.work_ends, max_attempts=3))

    # -- the steps ----------------------------------------------------------------------
    def run(self):
        if self.inv.trigger == HTTP:
            refusal = self.door()
            if refusal is not None:  # logged; published only once the signature verified (anyone could fill the topic)
                self.log.warning("http.refused", code=refusal.code, reason=refusal.reason)
                body = self.scrubbed(notification(refusal, self.meta()))
                if refusal.code == "ServiceUnavailable":  # the signature verified: a real request, not lost unsaid
                    self.publish(self.publisher(), body, refusal.outcome)
                return http_answer(http_status(refusal), body)
            events.http_fields(self.inv)
            refusal = approval.role_refusal(self.role, self.inv.fields)
            if refusal is not None:
                self.log.warning("http.refused", code=refusal.code, reason=refusal.reason)
                return http_answer(http_status(refusal), self.scrubbed(notification(refusal, self.meta())))
        try:
            if self.role == approval.APPROVER:
                self.refuse_query_string()
                return self.finish(self.decide())
            request = self.validate()
            ctx = self.context_for(request)
            request = self.read_password_secret(request)
            if request.is_batch:
                return self.batch(ctx, request)
            result = run_single(ctx, request)
            if result.extra.get("SnapshotPending"):
                # A continuation is an `invoke` of the function's own account: a member
                # account's request is not handed on but stays a retryable wait, and the
                # platform's retry of the event (its account, its role) finds the same snapshot.
                name = function_name(self.config, self.context) if self.account is None else None
                result = continue_later(ctx, self.config, self.creds, name, request, result)
                settle_claim(ctx, result, self.scrubber)
        except RequestError as err:
            result = Result.from_error(err, err.disk_id, err.instance_id)
        except ReinitError as err:
            result = Result.from_error(err, *self.selectors())
        except InvocationFailed:  # a batch that could not publish: documented, after logging it
            raise
        except Exception as err:  # a bug: still answered and notified, never a traceback to the caller
            self.log.error("internal.error", error=type(err).__name__, trace=traceback.format_exc(limit=8))
            result = Result(FAILED, "InternalError", "An internal error occurred; see the function log.",
                            False, *self.selectors(), status=500)
        return self.finish(result)

    def door(self) -> Result | None:
        """Method (405), decoded size (413), then signature (401): section 11, "HTTP order".
        A signature is accepted once: a replay inside the window is 401 too."""
        http = self.inv.http
        if http.method != "POST":
            return Result(REJECTED, "MethodNotAllowed", "Only POST starts a reinit.", status=405)
        if http.body is not None and len(http.body) > MAX_BODY_BYTES:
            return Result(REJECTED, "PayloadTooLarge", "The body is larger than 64 KiB.", status=413)
        try:
            signature = self.verify_signature(http)
        except ReinitError as err:
            return Result.from_error(err)
        if signature is None:
            return None  # REINIT_WEBHOOK_AUTH=fc: the trigger's own authType guards it
        ttl = 2 * WINDOW_SECONDS + 60
        try:
            fresh = (self.store.first_use(signature, ttl) if self.store
                     else self.app.replays.first_use(signature, self.app.wall(), ttl))
        except StoreUnavailable as err:
            self.log.error("idempotency.unavailable", error=str(err))
            return Result(FAILED, "ServiceUnavailable", "The replay store is unreachable; try again.", True, status=503)
        if not fresh:
            return Result(REJECTED, "Unauthorized.Signature", "The request signature was not accepted.", status=401,
                          reason="the signature was already used (a replay)")
        return None

    def verify_signature(self, http) -> str | None:
        """The signature, checked against the webhook secret (REINIT_WEBHOOK_SECRET, or the
        ACSCurrent and ACSPrevious versions of REINIT_WEBHOOK_SECRET_NAME) and the approvers'
        secret (section 13.3); sets who signed. Where none matches and the webhook secret is
        read from KMS, it is read again once (the caller may sign with a newer version)."""
        def check(webhooks):
            signature, self.role = approval.authenticate(self.config, webhooks, self.approver_secrets, http.headers,
                                                         http.body, self.app.wall())
            return signature
        name = self.config.webhook_secret_name
        if not name or self.config.webhook_auth != "hmac":
            return check(self.webhook_secrets())
        versions = self.webhook_secrets()
        try:
            return check(versions)
        except ReinitError as err:
            if err.reason != "the signature does not match":
                raise
            newer = self.webhook_versions(lambda: self.secrets.refresh(name))
            if not newer or newer == versions:
                raise err from None
            return check(newer)

    def webhook_secrets(self) -> tuple:
        """Every version of the webhook secret that a signature may be made with now."""
        name = self.config.webhook_secret_name
        if not name:
            return (self.config.webhook_secret,) if self.config.webhook_secret else ()
        return self.webhook_versions(lambda: self.secrets.get(name))

    def webhook_versions(self, read) -> tuple:
        """The versions of the webhook secret `read` returns (added to the scrubber), or a
        refusal that names no value: 503 where KMS may answer later, else Config.Invalid."""
        try:
            versions = read()
        except SecretError as err:
            self.log.error("secret.unreadable", secret=err.name, code=err.code, request_id=err.request_id)
            if err.retryable:
                raise failed("ServiceUnavailable", f"The webhook secret could not be read from KMS ({err.code}); "
                             "try again.", retryable=True) from None
            raise failed("Config.Invalid", f"The webhook secret named by REINIT_WEBHOOK_SECRET_NAME could not be "
                         f"read from KMS ({err.code}).") from None
        for value in versions or ():
            self.scrubber.add(value)
        return tuple(v for v in versions or () if v)

    def read_password_secret(self, request: Request) -> Request:
        """The request with its Password read from the KMS secret it names (section 13.2).
        The value must pass the Password rules; a refusal names the secret, never the value."""
        name = request.password_secret_name
        if name is None:
            return request
        try:
            value = self.secrets.get(name)[0]
        except SecretError as err:
            # KMS's own code, as ECS's codes pass through (section 10).
            raise ReinitError(err.code, f"The Password could not be read from KMS secret {shown(name)} ({err.code}); "
                              "nothing was done.", outcome=FAILED, status=err.status or 500,
                              retryable=err.retryable) from None
        self.scrubber.add(value)
        problem = password_problem(value)
        if problem:
            raise rejected("InvalidPassword.Malformed", f"KMS secret {shown(name)} does not hold a valid Password: "
                           f"{problem}")
        return replace(request, password=Password(value))

    def validate(self) -> Request:
        """The request, parsed and checked against the function's own policy."""
        inv, config = self.inv, self.config
        if inv.malformed:
            raise events.malformed_error(inv)
        if config.problems:
            raise failed("Config.Invalid", "The function is misconfigured: " + "; ".join(config.problems) + ".")
        self.refuse_query_string()
        if isinstance(inv.fields.get("Password"), str):  # redact it even if the request is refused
            self.scrubber.add(inv.fields["Password"])
        if inv.trigger == EVENTBRIDGE:
            self.admit_event()
        request = parse_request(inv.fields, inv.trigger)
        if request.password is not None:
            self.scrubber.add(request.password.reveal())
        return approval.contained(self.config, self.inv.trigger, self.apply_policy(request))

    def refuse_query_string(self) -> None:
        """Never ignored: `POST /?DryRun=true` must not wipe the disk its body names, nor
        approve one (section 13.2's door rules; the approvers' path is checked too)."""
        inv = self.inv
        if inv.trigger == HTTP and inv.http.query:
            raise rejected("InvalidParameter.Unknown", f"The URL has a query string ({shown(', '.join(inv.http.query))}); "
                           "the HTTP trigger reads the request from the JSON body only. Nothing was done.")

    def apply_policy(self, request: Request) -> Request:
        """Region, snapshot and event rules of the configuration (sections 3, 6)."""
        config = self.config
        region = request.region_id
        if request.password_secret_name is not None and request.password_secret_name not in config.password_secrets:
            raise rejected("Forbidden.Secret", f"The secret {shown(request.password_secret_name)} is not one of "
                           "REINIT_PASSWORD_SECRETS; nothing was done.")
        if self.inv.trigger == EVENTBRIDGE:
            region = event_region(self.inv.extra.get("region"), read_target(self.inv.fields), region)
            # The login of an instance an event reinitializes is the function's choice.
            request = replace(request, key_pair_name=config.event_key_pair_name)
        region = region or config.region
        if region not in config.regions:
            raise rejected("Forbidden.Region", f"Region {shown(region)} is not one of REINIT_REGIONS "
                           f"({', '.join(config.regions)}); nothing was done.")
        self.region = region
        if config.snapshot == "always" and request.snapshot is False:
            raise rejected("InvalidParameter.Conflict", "REINIT_SNAPSHOT=always: every wipe keeps a snapshot first; "
                           "Snapshot cannot be false.")
        if config.snapshot == "never" and request.snapshot:
            raise rejected("InvalidParameter.Conflict", "REINIT_SNAPSHOT=never: this function takes no snapshots.")
        return replace(request, region_id=region, snapshot=config.snapshot == "always" or bool(request.snapshot))

    def admit_event(self) -> None:
        """Section 13.1, before anything is looked up: the event's type, the disk it names,
        and the account it comes from (which may be a member account to act in)."""
        inv, config = self.inv, self.config
        refuse_event_credentials(inv.fields)
        check_type(config, inv.extra.get("type"))
        target = read_target(inv.fields)
        if config.account_id is None:
            self.warn_once("event.account_unchecked", "FC_ACCOUNT_ID is not set: the account of an event is not checked")
        self.account = acting_account(config, inv.extra.get("account"), target)
        require_target(inv.extra.get("type"), target)

    def acting_credentials(self):
        """The function's own credentials, or, for an event from a member account, those of
        the role REINIT_ACCOUNT_ROLE assumed there."""
        if self.account is None:
            return self.creds
        config = self.config
        if not config.sts_endpoint:
            raise failed("Config.Invalid", "No STS endpoint to assume a role in a member account: set "
                         "REINIT_STS_ENDPOINT or REINIT_REGION.")
        arn = role_arn(self.account, config.account_role)
        creds = self.app.roles.credentials(config.sts_endpoint, config.region, self.creds, arn,
                                           session_name(function_name(config, self.context)), self.app.wall())
        self.scrubber.add(creds.access_key_secret)
        self.scrubber.add(creds.security_token)
        self.log.info("account.assumed", account=self.account, role=arn, access_key_id=creds.access_key_id)
        return creds

    def context_for(self, request: Request) -> Context:
        if self.creds is None:
            raise failed("Config.Invalid", "No credentials: neither context.credentials nor the ALIBABA_CLOUD_* variables.")
        ecs = self.app.clients.ecs_for(self.config, self.acting_credentials(), self.region)
        once = self.once(request)  # a key used for another request is refused before anything is recorded
        return Context(ecs, self.config, self.app.clock, self.app.sleep, self.app.random, self.deadline.work_ends,
                       self.log, once=once, evidence_key=self.evidence_key(request), gate=self.gate(request))

    # -- approval (section 13.3; approval.py) ------------------------------------------
    def gate(self, request: Request) -> approval.Gate | None:
        if self.config.approval == "never":
            return None
        asked = " ".join(str(p) for p in (self.inv.trigger, self.inv.extra.get("source"), self.inv.event_id) if p)
        store = self.store
        decided = (lambda tid, disk: store.recorded(f"approval:{tid}", disk)) if store is not None else None
        return approval.gate_for(self.config, self.inv.trigger, request, self.token_keys(), self.app.wall,
                                 self.inv.extra.get("type"), asked, self.account, decided)

    def approver_secrets(self) -> tuple[str, ...]:
        try:
            secrets = approval.approver_secrets(self.config, self.app.get_secret or self.secrets.get)
        except SecretError as err:
            self.log.error("approval.secret.unavailable", error=err.code)
            if err.retryable:  # KMS may answer later: retryable, as for the webhook secret (found in review)
                raise failed("ServiceUnavailable", f"The approvers' secret could not be read from KMS ({err.code}); "
                             "try again.", retryable=True) from None
            return ()
        except Exception as err:  # unreadable for good: no approval is accepted, nothing else changes
            self.log.error("approval.secret.unavailable", error=type(err).__name__)
            return ()
        for secret in secrets:
            self.scrubber.add(secret)
        return secrets

    def token_keys(self) -> list[bytes]:
        return approval.token_keys(self.approver_secrets(), self.webhook_secrets())

    def decide(self) -> Result:
        """An approver's Approve or Deny: the token checked, then carried out once."""
        try:
            if self.config.problems:
                raise failed("Config.Invalid", "The function is misconfigured: " + "; ".join(self.config.problems) + ".")
            return approval.decide(self.decision_context, self.inv.fields, self.token_keys(), self.app.wall())
        except ReinitError as err:
            return Result.from_error(err)

    def decision_context(self, region: str, decision_id: str, account: str | None = None) -> Context:
        if region not in self.config.regions:
            raise rejected("Forbidden.Region", f"Region {shown(region)} is not one of REINIT_REGIONS; nothing was done.")
        if account is not None and account not in self.config.event_accounts:
            # Listed when the incident was held, removed since: no longer acted in.
            raise rejected("Forbidden.Account", f"The token's account {shown(account)} is no longer in "
                           "REINIT_EVENT_ACCOUNTS; nothing was done.")
        self.region, self.account = region, account
        if self.creds is None:
            raise failed("Config.Invalid", "No credentials: neither context.credentials nor the ALIBABA_CLOUD_* variables.")
        ecs = self.app.clients.ecs_for(self.config, self.acting_credentials(), region)
        hold = self.deadline.start + self.deadline.timeout - self.app.clock() + 5.0
        once = Once(self.store, f"approval:{decision_id}", hold, self.invocation_id or "") if self.store else None
        return Context(ecs, self.config, self.app.clock, self.app.sleep, self.app.random, self.deadline.work_ends,
                       self.log, once=once)

    def evidence_key(self, request: Request) -> str:
        """What names this request's evidence snapshots: its ClientToken, else a digest of
        its idempotency key. A continuation carries it as its ClientToken, so every
        invocation of one request finds the same snapshot."""
        if request.continuation is not None:
            return request.client_token  # the parent's evidence key, carried on
        key = self.idempotency_key(request) or f"invocation:{self.invocation_id}"
        nonce = self.nonce(request)
        if nonce:  # this request's own: the same key on another day names other evidence and tasks
            key += "\n" + nonce
        return "reinit-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]

    def nonce(self, request: Request) -> str:
        """What makes one request's task ids and evidence its own (docs/handoffs.md): with a
        store, the nonce recorded for its key (a retry finds it; the key used again after
        it expired is a new request); without one, for a key the caller chose (ClientToken,
        Idempotency-Key), the FC request id, which FC keeps across its retries. A key the
        trigger gives (an event id) is unique to its request already ("")."""
        key = self.idempotency_key(request)
        if key is None or request.continuation is not None or request.batch_id is not None:
            return ""  # carried in the parent's evidence key or BatchId
        candidate = self.invocation_id or uuid.uuid4().hex
        if self.store is None:
            return candidate if key.startswith(("client-token:", "http:idempotency-key:")) else ""
        try:
            return self.store.request_nonce(key, candidate)
        except StoreUnavailable as err:
            self.log.error("idempotency.unavailable", error=str(err))
            raise failed("ServiceUnavailable", "The idempotency store cannot be used; nothing was done, so that no "
                         "disk can be wiped twice.", retryable=True) from None

    def once(self, request: Request) -> Once | None:
        """The idempotency key of this request (section 11, "Idempotency"), bound to the
        store; the same key with another request is refused."""
        key = self.idempotency_key(request)
        if self.store is None or key is None:
            return None
        try:
            other = self.store.remember_request(key, self.fingerprint(request))
        except StoreUnavailable as err:
            self.log.error("idempotency.unavailable", error=str(err))
            raise failed("ServiceUnavailable", "The idempotency store cannot be used; nothing was done, so that no "
                         "disk can be wiped twice.", retryable=True) from None
        if other is not None:
            raise rejected("InvalidParameter.Conflict", "This idempotency key was already used for a different "
                           "request; use a new ClientToken (or Idempotency-Key) for a new request.")
        hold = self.deadline.start + self.deadline.timeout - self.app.clock() + 5.0
        return Once(self.store, key, hold, self.invocation_id or "")

    def idempotency_key(self, request: Request) -> str | None:
        """ClientToken, else an HTTP Idempotency-Key, else the trigger's own id; for invoke,
        the Function Compute request id, which FC keeps across its retries of an async
        invocation. A chunk of a split batch is keyed by its BatchId."""
        inv = self.inv
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
        if inv.trigger == HTTP and inv.http.headers.get("idempotency-key"):
            # Hashed whole: two long keys that differ late are two requests, not one.
            header = inv.http.headers["idempotency-key"].encode("utf-8", "backslashreplace")
            return "http:idempotency-key:" + hashlib.sha256(header).hexdigest()
        if inv.event_id is not None:
            return f"{inv.trigger}:{inv.event_id}"
        if inv.trigger == INVOKE and self.invocation_id:
            return f"invoke:{self.invocation_id}"
        return None

    def fingerprint(self, request: Request) -> str:
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

    def batch(self, ctx: Context, request: Request):
        meta = self.meta()
        publisher = self.publisher()

        unpublished: list[Result] = []

        def on_result(result: Result) -> None:
            if not self.publish(publisher, notification(result, meta), result.outcome):
                unpublished.append(result)

        split = self.splitter(ctx, request)
        paces = self.app.paces(self.config, self.region, 1.0 / (request.chunks or 1))
        if request.pace is not None:
            paces.seed("ReInitDisk", request.pace)
        name = function_name(self.config, self.context)
        hand_on = (hander(ctx, request, self.creds, name, paces)
                   if request.batch_id is not None and self.config.fc_endpoint and name else None)
        results, refusal, figures = run_batch(ctx, request, paces, on_result, split, hand_on)
        # A wipe that ran is published even through an outage of the topic: again, until the deadline.
        unpublished[:] = [r for r in unpublished if not (
            r.may_have_run and self.publish(publisher, notification(r, meta), r.outcome, until_deadline=True))]
        full = summary(results, meta, self.app.clock() - self.start, refusal)
        full.update(figures)
        summary_published = self.publish(publisher, summary_message(full), "Summary",
                                         until_deadline=any(r.may_have_run for r in results))
        self.log.info("batch.result", outcome=full["Outcome"], code=full["Code"], total=full["Total"],
                      counts=full["Counts"], duration=full["DurationSeconds"])
        full = self.scrubbed(full)
        if self.inv.trigger == HTTP:
            return http_answer(batch_http_status(full, refusal), full)
        if (unpublished or not summary_published) and (
                self.store is not None or not any(r.may_have_run and not r.retryable for r in results)):
            # Never silent: as for one disk, the platform's retry and failure destination get
            # it, where a retry cannot wipe again (a store answers each disk from its record,
            # or nothing was written).
            raise InvocationFailed(json.dumps({**summary_message(full), "NotificationFailed": True}))
        if self.store is not None and any(r.retryable and r.code in PASSING and (r.in_doubt or not r.may_have_run)
                                          for r in results):
            # Nobody else repeats an asynchronous batch (a chunk's caller is this function):
            # the platform's retry carries out what this invocation could not (a disk held
            # by a holder that died, past the deadline, or in doubt: the retry looks first),
            # and the store answers the rest (docs/handoffs.md).
            raise InvocationFailed(json.dumps(summary_message(full)))
        return full

    def splitter(self, ctx: Context, request: Request):
        """Where Function Compute can be reached, a selection too large for one invocation
        is split into chunks and handed to asynchronous invocations of this function."""
        config = self.config
        name = function_name(config, self.context)
        if not config.fc_endpoint or not name or request.batch_id is not None:
            return None
        usable = max(0.0, ctx.deadline - self.app.clock() - 30.0)
        # The rate this instance learned ReInitDisk's quota to be, where it has learned one.
        learned = self.app.paces(config, self.region).get("ReInitDisk").known
        rate = learned or config.fleet_rate
        limit = config.fleet_chunk or max(1, min(MAX_CHUNK_DISKS, int(rate * usable * 0.8)))
        # The request's evidence key holds its nonce: its chunks' task ids are its own.
        return splitter(ctx, request, ctx.evidence_key, self.creds, name, limit, learned)

    def finish(self, result: Result):
        """Publish the outcome, log it, and answer; end with an error where the platform
        should retry (section 11, "Which invocations fail")."""
        if self.account is not None:  # acted on in a member account (section 13.1)
            result.extra.setdefault("Account", self.account)
        body = self.scrubbed(notification(result, self.meta()))
        published = self.publish(self.publisher(), body, result.outcome, until_deadline=result.may_have_run)
        self.log.info("result", disk=result.disk_id, outcome=result.outcome, code=result.code,
                      ecs_request_id=result.ecs_request_id, duration=round(self.app.clock() - self.start, 3))
        if self.inv.trigger == HTTP:
            return http_answer(http_status(result), body)
        if not published and (self.store is not None or not result.may_have_run or result.retryable):
            # The topic stayed down: end with an error so that the platform retries and, in the
            # end, the asynchronous failure destination gets the outcome. Only where a retry
            # cannot wipe again: a store answers it from the record, nothing was written, or
            # the outcome itself says a repeat is safe (Retryable).
            raise InvocationFailed(json.dumps({**body, "NotificationFailed": True}))
        if result.outcome == FAILED and result.retryable:
            raise InvocationFailed(json.dumps(body))
        return body

    # -- pieces -------------------------------------------------------------------------
    def meta(self) -> Meta:
        return Meta(self.inv.trigger, self.inv.event_id, self.invocation_id, self.region)

    def scrubbed(self, body: dict) -> dict:
        return self.scrubber.value(body)

    def selectors(self) -> tuple[str | None, str | None]:
        fields = self.inv.fields or {}
        return shown(fields.get("DiskId")), shown(fields.get("InstanceId"))

    def _open_store(self) -> IdempotencyStore | None:
        try:
            store = self.app.store(self.config)
        except Exception as err:  # redis-py refused the URL itself
            self.config = replace(self.config, problems=(
                *self.config.problems, f"REINIT_IDEMPOTENCY_URL is not usable ({type(err).__name__})"))
            return None
        if store is None and not self.config.idempotency_url:
            self.warn_once("idempotency.disabled",
                           "REINIT_IDEMPOTENCY_URL is not set: duplicate events are not suppressed")
        if store is not None and "idempotency.store_checked" not in self.app.warned:
            self.app.warned.add("idempotency.store_checked")  # once per instance
            problems = store.forgets()
            if problems:  # warned, not refused: the disk's wipe mark still stops a second wipe
                self.log.warning("idempotency.store_forgets", reason="; ".join(problems))
            elif problems is None:
                self.log.info("idempotency.store_unchecked", reason="CONFIG GET was refused or failed")
        return store

    def warn_once(self, event: str, reason: str) -> None:
        if event not in self.app.warned:
            self.app.warned.add(event)
            self.log.warning(event, reason=reason)

    def publisher(self):
        config = self.config
        if not config.topic or not config.mns_endpoint or self.creds is None:
            return None
        try:
            return self.app.clients.get(config, self.creds)[1]
        except Exception:
            return None

    def publish(self, publisher, body: dict, tag: str, until_deadline: bool = False) -> bool:
        """Publish through the retry engine; if the topic stays down, the whole outcome goes
        to the log. False only where a topic is configured and it could not be published.
        `until_deadline` (the outcome of a wipe that ran): retried until the invocation's
        end less its margin, not a fixed number of times (INTERFACE.md section 13.5)."""
        body = self.scrubbed(body)
        if publisher is None:
            if not self.config.topic:
                self.warn_once("notify.disabled", "REINIT_TOPIC is not set: outcomes are only logged")
                return True
            self.log.error("notify.unavailable", notification=body)
            return False
        retrier = Retrier(self.app.clock, self.app.sleep, self.app.random, self.deadline.hard_end,
                          max_attempts=PUBLISH_ATTEMPTS_TO_DEADLINE if until_deadline else PUBLISH_ATTEMPTS,
                          errors=(PublishError,), base=0.2, cap=2.0)
        try:
            message_id = retrier.call(lambda: publisher.publish(body, tag), lambda err: err.retryable)
        except PublishError as err:
            self.log.error("notify.failed", topic=self.config.topic, code=err.code, notification=body)
            return False
        self.log.info("notify.published", topic=self.config.topic, message_id=message_id, tag=tag)
        return True
