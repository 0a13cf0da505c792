"""The error catalogue: Code -> HTTP status and whether the same request may succeed later.

ECS's own codes keep ECS's HTTP status (carried on the error); the function's own codes
are INTERFACE.md section 10. `Retryable` follows section 11.
"""

from __future__ import annotations

SUCCEEDED, FAILED, REJECTED, DRY_RUN = "Succeeded", "Failed", "Rejected", "DryRun"
PARTIAL = "Partial"  # batch summaries only: some disks written, others not (INTERFACE 13.4)

# code: (HTTP status, retryable)
CATALOGUE: dict[str, tuple[int, bool]] = {
    "InvalidEvent.Malformed": (400, False),
    "MissingParameter.DiskId": (400, False),
    "InvalidDiskId.Malformed": (400, False),
    "InvalidInstanceId.Malformed": (400, False),
    "InvalidParameter.Unknown": (400, False),
    "InvalidParameter.Type": (400, False),
    "InvalidParameter.Conflict": (400, False),
    "InvalidPassword.Malformed": (400, False),
    "InvalidKeyPairName.Malformed": (400, False),
    "InvalidSecurityEnhancementStrategy.ValueNotSupported": (400, False),
    "Unauthorized.Signature": (401, False),
    "Forbidden.TagRequired": (403, False),
    "Forbidden.TooManyDisks": (403, False),
    "MethodNotAllowed": (405, False),
    "PayloadTooLarge": (413, False),
    "InvalidInstanceId.NotFound": (404, False),
    "Aborted.MaxErrors": (403, False),
    "Forbidden.EventCredential": (403, False),
    "Forbidden.Region": (403, False),
    "Forbidden.SplitWithPassword": (403, False),
    "Forbidden.EventType": (403, False),
    "Forbidden.Account": (403, False),
    "Forbidden.Secret": (403, False),  # PasswordSecretName not in REINIT_PASSWORD_SECRETS (section 13.2)
    # ReInitDisk may have run and it could not be told; Retryable is set where it is raised
    # (section 11, "Ambiguous failures"): false without an idempotency store.
    "Indeterminate": (502, False),
    "SnapshotFailed": (500, False),
    "Config.Invalid": (500, False),
    "InternalError": (500, False),
    "ServiceUnavailable": (503, True),
    "WaitTimeout": (504, False),
    # The same (key, DiskId) is being carried out by another invocation right now.
    "Conflict.InProgress": (409, True),
    # Preconditions seen before ReInitDisk use the code ECS would have given.
    "InvalidDiskId.NotFound": (404, False),
    "IncorrectDiskStatus": (403, True),
    "IncorrectInstanceStatus": (403, True),
    # Approval before the wipe (INTERFACE.md section 13.3).
    "Unauthorized.Approval": (401, False),
    "ApprovalDenied": (403, False),
}
AWAITING_APPROVAL = "AwaitingApproval"  # an Outcome: contained (and preserved); the wipe waits for a person

# ECS codes of a passing fault: a call may simply be made again (section 10).
TRANSIENT_ECS_CODES = ("ServiceUnavailable", "InternalError")
# ECS codes that mean "the same request may succeed later" (section 11): the transient ones,
# and a resource that may be moving.
RETRYABLE_ECS_CODES = (*TRANSIENT_ECS_CODES, "IncorrectInstanceStatus", "IncorrectDiskStatus")


def ecs_code_retryable(code: str) -> bool:
    return code.startswith("Throttling") or code in RETRYABLE_ECS_CODES


class ReinitError(Exception):
    """A refusal or failure with its public code. `outcome` is Rejected or Failed."""

    def __init__(self, code: str, message: str, *, outcome: str = REJECTED, status: int | None = None,
                 retryable: bool | None = None, ecs_request_id: str | None = None, may_have_run: bool = False):
        super().__init__(message)
        known_status, known_retryable = CATALOGUE.get(code, (None, None))
        self.code = code
        self.message = message
        self.outcome = outcome
        self.status = status or known_status or 500
        self.retryable = retryable if retryable is not None else (
            known_retryable if known_retryable is not None else ecs_code_retryable(code))
        self.ecs_request_id = ecs_request_id
        self.may_have_run = may_have_run  # ReInitDisk ran, or may have: never release its claim
        self.in_doubt = False  # may have run, and it could not be told: the record stays in doubt
        self.extra: dict = {}  # keys added to the notification (e.g. InstanceLeftStopped)
        self.reason: str | None = None  # for the log only, never for the caller
        self.instance_moved = False  # the instance moved while it was stopped for this (stopping.moved)


def rejected(code: str, message: str) -> ReinitError:
    return ReinitError(code, message, outcome=REJECTED)


def failed(code: str, message: str, **kw) -> ReinitError:
    return ReinitError(code, message, outcome=FAILED, **kw)
