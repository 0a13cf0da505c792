"""What one invocation works with: Context (clients, settings, time, its log), Once (the
idempotency store bound to one event key) and ecs_failure (an ECS call that failed for good)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reinit.config import Config
from reinit.ecs import EcsApi, EcsCallError
from reinit.errors import ReinitError, ecs_code_retryable, failed
from reinit.idempotency import IdempotencyStore
from reinit.log import Log
from reinit.pace import PacedEcs
from reinit.retry import Retrier, RetryQuota, retryable_read

# Throttling answers in a row a paced call (a batch's) may meet before it fails (retry.py).
PACED_THROTTLED_ATTEMPTS = 20


@dataclass(frozen=True)
class Once:
    """The idempotency store bound to one invocation's key."""

    store: IdempotencyStore
    event_key: str
    hold_seconds: float  # until the invocation would time out
    owner: str = ""  # the invocation id, for the record (and the log)


@dataclass
class Context:
    """What one invocation works with: clients, settings, time, and its log."""

    ecs: EcsApi
    config: Config
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    random: Callable[[], float]
    deadline: float
    log: Log
    once: Once | None = None
    quota: RetryQuota = field(default_factory=RetryQuota)  # shared by a batch's workers
    evidence_key: str | None = None  # names the request's evidence snapshots (tags, ClientToken)
    before_write: Callable[..., None] | None = None  # idempotency: note the claim's phase before ReInitDisk
    ambiguous_reinits: set = field(default_factory=set)  # disks whose ReInitDisk answer was lost
    gate: Any = None  # an approval.Gate (callable, with for_batch): holds the wipe for a person (section 13.3)

    def retrier(self) -> Retrier:
        paced = isinstance(self.ecs, PacedEcs)  # a batch: its pace spaces the calls Throttling answers
        return Retrier(self.clock, self.sleep, self.random, self.deadline, on_retry=self._retrying,
                       quota=self.quota, throttled_attempts=PACED_THROTTLED_ATTEMPTS if paced else None)

    def _retrying(self, err: EcsCallError) -> None:
        self.log.info("ecs.retry", action=err.action, code=err.code)

    def read(self, fn):
        """An ECS read with retries; a final failure becomes Failed (section 10)."""
        try:
            return self.retrier().call(fn, retryable_read)
        except EcsCallError as err:
            raise ecs_failure(err) from None


def ecs_failure(err: EcsCallError, ecs_request_id: str | None = None) -> ReinitError:
    """An ECS call that failed for good. A refusal keeps ECS's code and status; anything
    transient (throttled, 5xx, no answer) is ServiceUnavailable naming ECS's last code."""
    if err.kind == "refused":
        return failed(err.code, f"ECS refused {err.action}: {err.message}", status=err.status,
                      retryable=ecs_code_retryable(err.code), ecs_request_id=ecs_request_id)
    why = f" ({err.gave_up})" if err.gave_up else ""  # what ended the retries
    return failed("ServiceUnavailable", f"ECS {err.action} did not succeed after retries{why}; "
                  f"last: {err.code}.", ecs_request_id=ecs_request_id)
