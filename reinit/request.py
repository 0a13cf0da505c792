"""The request model and its validation (INTERFACE.md section 3 and 11, "Values").

Invalid input never reaches ECS: every rule that can be checked without the cloud is
checked here. The one rule that needs the OS (Windows and a leading `/`) is in flow.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reinit.cloudevent import read_target
from reinit.config import SECRET_NAME
from reinit.errors import ReinitError, rejected
from reinit.events import EVENTBRIDGE

DISK_ID = re.compile(r"d-[0-9a-z]{8,32}", re.ASCII)
INSTANCE_ID = re.compile(r"i-[0-9a-z]{8,32}", re.ASCII)
KEY_PAIR_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._:\-]{1,127}", re.ASCII)
# The special characters the ReInitDisk page lists for Password.
PASSWORD_SPECIALS = "()`~!@#$%^&*-_+=|{}[]:;'<>,.?/"
PASSWORD_CHARS = re.compile(r"[A-Za-z0-9" + re.escape(PASSWORD_SPECIALS) + r"]+", re.ASCII)
REGION_ID = re.compile(r"[a-z]{2}(-[a-z0-9]+){1,4}", re.ASCII)
CLIENT_TOKEN = re.compile(r"[\x21-\x7e]{1,64}", re.ASCII)  # printable ASCII, as ECS's own ClientToken
EVENT_CREDENTIALS = ("password", "keypairname", "passwordsecretname")  # never from an event bus, in any spelling
SHOWN_MAX = 64  # a malformed value is cut to this length in a notification

SINGLE_FIELDS = ("DiskId", "InstanceId")
STRING_FIELDS = ("Password", "KeyPairName", "SecurityEnhancementStrategy", "RegionId", "ClientToken", "PasswordSecretName")
BOOL_FIELDS = ("AutoStartInstance", "DryRun", "StopInstance", "WaitForCompletion", "Snapshot")
BATCH_FIELDS = ("DiskIds", "Tags", "DiskType", "MaxErrors", "BatchId", "Chunk", "Chunks")
# Set by the function itself on an evidence-snapshot continuation (continuation.continue_later).
INTERNAL_FIELDS = ("Continuation",)
# Set by the function on a chunk (chunks.py): the hand-off's number, and the ReInitDisk pace
# (calls a second) the invocation that handed it on had learned.
CHUNK_FIELDS = ("Hop", "Pace")
BATCH_ID = re.compile(r"b-[0-9a-f]{16}", re.ASCII)
KNOWN = (*SINGLE_FIELDS, *STRING_FIELDS, *BOOL_FIELDS, *BATCH_FIELDS, *INTERNAL_FIELDS, *CHUNK_FIELDS)


class Password:
    """A password that never shows itself: not in repr, str, format or JSON."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Password(<redacted>)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self):
        raise TypeError("a Password is not serialisable")


@dataclass(frozen=True)
class Request:
    disk_id: str | None = None
    instance_id: str | None = None
    password: Password | None = None
    key_pair_name: str | None = None
    auto_start: bool | None = None
    security_enhancement_strategy: str | None = None
    dry_run: bool = False
    stop_instance: bool = False
    wait: bool = False
    snapshot: bool | None = None  # None: as REINIT_SNAPSHOT says
    region_id: str | None = None  # None: the function's region
    client_token: str | None = None
    continuation: int | None = None  # the how-many-th invocation waiting for the evidence snapshot
    disk_ids: tuple[str, ...] | None = None
    tags: tuple[tuple[str, str | None], ...] | None = None
    disk_type: str = "all"
    max_errors: int | None = None
    batch_id: str | None = None  # set on a chunk of a split batch (chunks.py)
    chunk: int | None = None
    chunks: int | None = None
    password_secret_name: str | None = None  # the Password is read from this KMS secret (section 13.2)
    hop: int = 0  # a chunk's hand-offs so far (0: as the parent handed it off)
    pace: float | None = None  # ReInitDisk calls a second this chunk starts at (learned before)

    @property
    def is_batch(self) -> bool:
        return self.disk_ids is not None or self.tags is not None


class RequestError(ReinitError):
    """A validation refusal that remembers the selectors it could read, for the notification."""

    def __init__(self, code: str, message: str, disk_id=None, instance_id=None):
        super().__init__(code, message)
        self.disk_id, self.instance_id = disk_id, instance_id


def shown(value) -> str | None:
    """A selector as a notification may show it: a string, cut to 64 characters."""
    if value is None:
        return None
    return (value if isinstance(value, str) else repr(value))[:SHOWN_MAX]


def _bool(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise rejected("InvalidParameter.Type", f"{name} must be true or false.")


def _string(name: str, value) -> str:
    if not isinstance(value, str):
        raise rejected("InvalidParameter.Type", f"{name} must be a string.")
    return value


def password_problem(password: str) -> str | None:
    """The ReInitDisk page's rule, except the Windows one (that needs the OS)."""
    if not 8 <= len(password) <= 30:
        return "Password must be 8 to 30 characters long."
    if not PASSWORD_CHARS.fullmatch(password):
        return "Password may contain only letters, digits and the special characters " + PASSWORD_SPECIALS + "."
    kinds = sum([
        any(c.isascii() and c.isupper() for c in password),
        any(c.isascii() and c.islower() for c in password),
        any(c.isascii() and c.isdigit() for c in password),
        any(c in PASSWORD_SPECIALS for c in password),
    ])
    if kinds < 3:
        return "Password must contain at least three of: upper case, lower case, digits, special characters."
    return None


def parse_request(fields: dict, trigger: str) -> Request:
    """Validate a request object; raise RequestError with the code of section 10."""
    disk_id = fields.get("DiskId")
    instance_id = fields.get("InstanceId")
    if trigger == EVENTBRIDGE:
        # Every place an ECS event or a security tool names its resource (cloudevent.py).
        try:
            target = read_target(fields)
        except ReinitError as err:
            raise RequestError(err.code, err.message) from None
        disk_id, instance_id = target.disk_id, target.instance_id
    try:
        return _parse(fields, trigger, disk_id, instance_id)
    except ReinitError as err:
        raise RequestError(err.code, err.message, shown(disk_id), shown(instance_id)) from None


def refuse_event_credentials(fields: dict) -> None:
    """Whoever can publish to the event bus must not choose the login of the machine: this
    comes first of all an event's checks, whatever else is wrong with it."""
    named = sorted(k for k in fields if isinstance(k, str) and k.lower() in EVENT_CREDENTIALS)
    if named:
        raise rejected("Forbidden.EventCredential", f"An event may not carry {shown(named[0])}: the login of a "
                       "reinitialized instance is the function's choice (REINIT_EVENT_KEY_PAIR_NAME). Nothing was done.")


def _parse(fields: dict, trigger: str, disk_id, instance_id) -> Request:
    """The rules in the order a refusal is chosen: names, nulls and types, then how the
    fields combine, then each value's own format."""
    fields = _known_fields(fields, trigger)
    _no_nulls(fields, disk_id, instance_id)
    strings = {name: _string(name, fields[name]) for name in STRING_FIELDS if name in fields}
    bools = {name: _bool(name, fields[name]) for name in BOOL_FIELDS if name in fields}
    disk_ids = _disk_ids(fields["DiskIds"]) if "DiskIds" in fields else None
    tags = _tags(fields["Tags"]) if "Tags" in fields else None
    disk_type = fields.get("DiskType", "all")
    if disk_type not in ("system", "data", "all"):
        raise rejected("InvalidParameter.Type", "DiskType must be system, data or all.")
    max_errors = fields.get("MaxErrors")
    if max_errors is not None and (isinstance(max_errors, bool) or not isinstance(max_errors, int) or max_errors < 1):
        raise rejected("InvalidParameter.Type", "MaxErrors must be a whole number of at least 1.")

    _selectors(fields, disk_id, instance_id, disk_ids, tags, max_errors)
    _batch_chunk(fields, disk_ids)
    _chunk_fields(fields)
    _continuation(fields, disk_id, strings)
    _credentials(strings)
    _formats(disk_id, instance_id, strings)
    return Request(
        disk_id=disk_id,
        instance_id=instance_id,
        password=Password(strings["Password"]) if "Password" in strings else None,
        key_pair_name=strings.get("KeyPairName"),
        auto_start=bools.get("AutoStartInstance"),
        security_enhancement_strategy=strings.get("SecurityEnhancementStrategy"),
        dry_run=bools.get("DryRun", False),
        stop_instance=bools.get("StopInstance", False),
        wait=bools.get("WaitForCompletion", False),
        snapshot=bools.get("Snapshot"),
        region_id=strings.get("RegionId"),
        client_token=strings.get("ClientToken"),
        continuation=fields.get("Continuation"),
        disk_ids=disk_ids,
        tags=tags,
        disk_type=disk_type,
        max_errors=max_errors,
        batch_id=fields.get("BatchId"),
        chunk=fields.get("Chunk"),
        chunks=fields.get("Chunks"),
        password_secret_name=strings.get("PasswordSecretName"),
        hop=fields.get("Hop", 0),
        pace=fields.get("Pace"),
    )


def _known_fields(fields: dict, trigger: str) -> dict:
    """The fields this trigger may carry: an unknown name is refused, except in an event."""
    if trigger == EVENTBRIDGE:
        refuse_event_credentials(fields)
        # Another service's document: unknown fields are ignored, and so are the batch
        # forms, so that no event can widen an incident wipe to a fleet.
        return {k: v for k, v in fields.items() if k in KNOWN and k not in (*BATCH_FIELDS, *INTERNAL_FIELDS, *CHUNK_FIELDS)}
    unknown = sorted(k for k in fields if k not in KNOWN)
    if unknown:
        name = shown(unknown[0])
        raise rejected("InvalidParameter.Unknown", f"Unknown field {name!s}; field names are case-sensitive.")
    return fields


def _no_nulls(fields: dict, disk_id, instance_id) -> None:
    """Section 11, "Values": null is a wrong type, except that a null DiskId is a missing one."""
    if "DiskId" in fields and fields["DiskId"] is None:
        raise rejected("MissingParameter.DiskId", "DiskId is null.")
    for name in ("InstanceId", *STRING_FIELDS, *BOOL_FIELDS, *BATCH_FIELDS):
        if name in fields and fields[name] is None:
            raise rejected("InvalidParameter.Type", f"{name} must not be null.")
    if disk_id is not None and not isinstance(disk_id, str):
        raise rejected("InvalidParameter.Type", "DiskId must be a string.")
    if instance_id is not None and not isinstance(instance_id, str):
        raise rejected("InvalidParameter.Type", "InstanceId must be a string.")


def _selectors(fields: dict, disk_id, instance_id, disk_ids, tags, max_errors) -> None:
    """One way of naming disks: a disk, an instance, a list or tags, and what goes with each."""
    batch = disk_ids is not None or tags is not None
    if disk_id is None and instance_id is None and not batch:
        raise rejected("MissingParameter.DiskId", "Name a disk: DiskId, InstanceId, DiskIds or Tags.")
    if disk_id is not None and batch:
        raise rejected("InvalidParameter.Conflict", "DiskId cannot be combined with DiskIds or Tags.")
    if instance_id is not None and batch:
        raise rejected("InvalidParameter.Conflict", "InstanceId cannot be combined with DiskIds or Tags.")
    if disk_ids is not None and tags is not None:
        raise rejected("InvalidParameter.Conflict", "DiskIds and Tags cannot be combined.")
    if "DiskType" in fields and tags is None:
        raise rejected("InvalidParameter.Conflict", "DiskType goes with Tags only.")
    if max_errors is not None and not batch:
        raise rejected("InvalidParameter.Conflict", "MaxErrors goes with DiskIds or Tags only.")


def _batch_chunk(fields: dict, disk_ids) -> None:
    """BatchId, Chunk and Chunks: all three or none, on a DiskIds request (chunks.py)."""
    chunk_fields = [name for name in ("BatchId", "Chunk", "Chunks") if name in fields]
    if not chunk_fields:
        return
    if len(chunk_fields) != 3 or disk_ids is None:
        raise rejected("InvalidParameter.Conflict", "BatchId, Chunk and Chunks go together, with DiskIds.")
    if not isinstance(fields["BatchId"], str) or not BATCH_ID.fullmatch(fields["BatchId"]):
        raise rejected("InvalidParameter.Type", "BatchId must look like b- followed by 16 hex digits.")
    for name in ("Chunk", "Chunks"):
        if isinstance(fields[name], bool) or not isinstance(fields[name], int) or fields[name] < 0:
            raise rejected("InvalidParameter.Type", f"{name} must be a whole number.")
    if fields["Chunk"] >= fields["Chunks"]:
        raise rejected("InvalidParameter.Type", "Chunk must be less than Chunks.")


def _continuation(fields: dict, disk_id, strings: dict) -> None:
    """Continuation: set by the function on an evidence-snapshot continuation only."""
    if "Continuation" not in fields:
        return
    hop = fields["Continuation"]
    if isinstance(hop, bool) or not isinstance(hop, int) or not 1 <= hop <= 1000:
        raise rejected("InvalidParameter.Type", "Continuation must be a whole number from 1 to 1000.")
    if disk_id is None or "ClientToken" not in strings or fields.get("Snapshot") is not True:
        raise rejected("InvalidParameter.Conflict", "Continuation goes with DiskId, ClientToken and Snapshot.")


def _credentials(strings: dict) -> None:
    """At most one of Password, KeyPairName and PasswordSecretName."""
    if "Password" in strings and "KeyPairName" in strings:
        raise rejected("InvalidParameter.Conflict", "Password and KeyPairName cannot be combined.")
    if "PasswordSecretName" in strings and ("Password" in strings or "KeyPairName" in strings):
        raise rejected("InvalidParameter.Conflict", "PasswordSecretName cannot be combined with Password or KeyPairName.")
    if "PasswordSecretName" in strings and not SECRET_NAME.fullmatch(strings["PasswordSecretName"]):
        raise rejected("InvalidParameter.Type", "PasswordSecretName must be a KMS secret name (1 to 192 letters, "
                       "digits and _/+=.@-) or a secret's ARN.")


def _formats(disk_id, instance_id, strings: dict) -> None:
    """Each value's own format, as the ReInitDisk page gives it."""
    if disk_id is not None and not DISK_ID.fullmatch(disk_id):
        raise rejected("InvalidDiskId.Malformed", "DiskId must look like d- followed by 8 to 32 lower-case letters or digits.")
    if instance_id is not None and not INSTANCE_ID.fullmatch(instance_id):
        raise rejected("InvalidInstanceId.Malformed", "InstanceId must look like i- followed by 8 to 32 lower-case letters or digits.")
    if "Password" in strings and (problem := password_problem(strings["Password"])):
        raise rejected("InvalidPassword.Malformed", problem)
    if "KeyPairName" in strings and not KEY_PAIR_NAME.fullmatch(strings["KeyPairName"]):
        raise rejected("InvalidKeyPairName.Malformed",
                       "KeyPairName must be 2 to 128 characters, start with a letter, and use letters, digits, '.', '_', '-' or ':'.")
    if "RegionId" in strings and not REGION_ID.fullmatch(strings["RegionId"]):
        raise rejected("InvalidParameter.Type", "RegionId must be a region ID such as cn-hangzhou.")
    if "ClientToken" in strings and not CLIENT_TOKEN.fullmatch(strings["ClientToken"]):
        raise rejected("InvalidParameter.Type", "ClientToken must be 1 to 64 printable ASCII characters.")
    ses = strings.get("SecurityEnhancementStrategy")
    if ses is not None and ses not in ("Active", "Deactive"):
        raise rejected("InvalidSecurityEnhancementStrategy.ValueNotSupported",
                       "SecurityEnhancementStrategy must be Active or Deactive.")


def _chunk_fields(fields: dict) -> None:
    """Hop and Pace: only on a chunk (with BatchId), within sane bounds."""
    for name in CHUNK_FIELDS:
        if name in fields and "BatchId" not in fields:
            raise rejected("InvalidParameter.Conflict", f"{name} goes with BatchId only.")
    hop = fields.get("Hop", 0)
    if isinstance(hop, bool) or not isinstance(hop, int) or not 0 <= hop <= 10000:
        raise rejected("InvalidParameter.Type", "Hop must be a whole number from 0 to 10000.")
    pace = fields.get("Pace", 1.0)
    if isinstance(pace, bool) or not isinstance(pace, (int, float)) or not 0.001 <= pace <= 1000:
        raise rejected("InvalidParameter.Type", "Pace must be a number from 0.001 to 1000.")


def _disk_ids(value) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise rejected("InvalidParameter.Type", "DiskIds must be a list of disk IDs.")
    if not value:
        raise rejected("MissingParameter.DiskId", "DiskIds is empty.")
    for disk_id in value:
        if not DISK_ID.fullmatch(disk_id):
            raise rejected("InvalidDiskId.Malformed", f"DiskIds has a malformed disk ID: {shown(disk_id)}.")
    return tuple(dict.fromkeys(value))  # a disk named twice is still reinitialized once


def _tags(value) -> tuple[tuple[str, str | None], ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= 20:
        raise rejected("InvalidParameter.Type", "Tags must be a list of 1 to 20 {Key, Value} objects.")
    tags = []
    for tag in value:
        if not isinstance(tag, dict):
            raise rejected("InvalidParameter.Type", "Each tag must be an object with Key and optional Value.")
        extra = sorted(k for k in tag if k not in ("Key", "Value"))
        if extra:
            raise rejected("InvalidParameter.Unknown", f"Unknown tag field {shown(extra[0])}.")
        key, val = tag.get("Key"), tag.get("Value")
        if not isinstance(key, str) or not key:
            raise rejected("InvalidParameter.Type", "Each tag needs a non-empty string Key.")
        if "Value" in tag and not isinstance(val, str):
            raise rejected("InvalidParameter.Type", "A tag Value must be a string.")
        tags.append((key, val))
    return tuple(tags)
