"""What one invocation is given and opens once, as `Call`: its configuration, event, log,
scrubber, credentials, idempotency store, secret reader and deadline. app.open_call builds
it; the steps of the pipeline (door, policy, claim, batch, delivery) read it and never
change it. `Where` is the one thing the steps learn as they go: the region and the member
account the request acts in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reinit.config import Config
from reinit.context import Context, Once
from reinit.ecs import Credentials, EcsApi
from reinit.events import Invocation as Event
from reinit.idempotency import IdempotencyStore
from reinit.log import Log
from reinit.report import Meta
from reinit.request import shown
from reinit.scrub import Scrubber
from reinit.secrets import SecretReader


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


@dataclass
class Where:
    """Where the request acts: a region, and a member account (section 13.1) or None. The
    steps that learn them fill them in (policy, an approver's decision), so that a refusal
    after that point still names them."""

    region: str | None
    account: str | None = None


def warn_once(app: Any, log: Log, event: str, reason: str) -> None:
    """A warning written once per instance (app.warned)."""
    if event not in app.warned:
        app.warned.add(event)
        log.warning(event, reason=reason)


@dataclass(frozen=True)
class Call:
    """One invocation's fixed setting (see the module docstring)."""

    app: Any  # reinit.app.App: what lives across invocations (clients, stores, paces, clock)
    context: Any  # Function Compute's context object
    invocation_id: str | None
    start: float
    config: Config
    deadline: Deadline
    inv: Event
    scrubber: Scrubber
    log: Log
    creds: Credentials | None
    store: IdempotencyStore | None
    secrets: SecretReader

    def warn_once(self, event: str, reason: str) -> None:
        warn_once(self.app, self.log, event, reason)

    def scrubbed(self, body: dict) -> dict:
        return self.scrubber.value(body)

    def meta(self, where: Where) -> Meta:
        return Meta(self.inv.trigger, self.inv.event_id, self.invocation_id, where.region)

    def selectors(self) -> tuple[str | None, str | None]:
        fields = self.inv.fields or {}
        return shown(fields.get("DiskId")), shown(fields.get("InstanceId"))

    def hold(self) -> float:
        """How long a claim is held: until the invocation would time out, and a little more."""
        return self.deadline.start + self.deadline.timeout - self.app.clock() + 5.0

    def work_context(self, ecs: EcsApi, once: Once | None = None, **more: Any) -> Context:
        """The Context a disk is carried out in, ending at the deadline's work end."""
        return Context(ecs, self.config, self.app.clock, self.app.sleep, self.app.random, self.deadline.work_ends,
                       self.log, once=once, **more)
