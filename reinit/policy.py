"""Parse and policy: the request read from the event and checked against the function's
own rules (configuration, the door's query-string rule, the event's type and account,
regions, snapshots, password secrets) before anything is looked up (sections 3, 6, 13)."""

from __future__ import annotations

from dataclasses import replace

from reinit import approval, events
from reinit.call import Call, Where
from reinit.cloudevent import acting_account, check_type, event_region, read_target, require_target
from reinit.errors import FAILED, ReinitError, failed, rejected
from reinit.events import EVENTBRIDGE, HTTP
from reinit.request import Password, Request, parse_request, password_problem, refuse_event_credentials, shown
from reinit.secrets import SecretError


def admit(call: Call, where: Where) -> Request:
    """The request, parsed and checked against the function's own policy."""
    inv, config = call.inv, call.config
    if inv.malformed:
        raise events.malformed_error(inv)
    if config.problems:
        raise failed("Config.Invalid", "The function is misconfigured: " + "; ".join(config.problems) + ".")
    refuse_query_string(call)
    assert inv.fields is not None, "an event with no request object is malformed (events.py), refused above"
    if isinstance(inv.fields.get("Password"), str):  # redact it even if the request is refused
        call.scrubber.add(inv.fields["Password"])
    if inv.trigger == EVENTBRIDGE:
        admit_event(call, where)
    request = parse_request(inv.fields, inv.trigger)
    if request.password is not None:
        call.scrubber.add(request.password.reveal())
    return approval.contained(config, inv.trigger, apply_policy(call, where, request))


def refuse_query_string(call: Call) -> None:
    """Never ignored: `POST /?DryRun=true` must not wipe the disk its body names, nor
    approve one (section 13.2's door rules; the approvers' path is checked too)."""
    inv = call.inv
    if inv.trigger == HTTP:
        assert inv.http is not None, "events._http gives every HTTP invocation its request"
        if inv.http.query:
            raise rejected("InvalidParameter.Unknown", f"The URL has a query string ({shown(', '.join(inv.http.query))}); "
                           "the HTTP trigger reads the request from the JSON body only. Nothing was done.")


def admit_event(call: Call, where: Where) -> None:
    """Section 13.1, before anything is looked up: the event's type, the disk it names,
    and the account it comes from (which may be a member account to act in)."""
    inv, config = call.inv, call.config
    assert inv.fields is not None, "admit() refused an event with no request object"
    refuse_event_credentials(inv.fields)
    check_type(config, inv.extra.get("type"))
    target = read_target(inv.fields)
    if config.account_id is None:
        call.warn_once("event.account_unchecked", "FC_ACCOUNT_ID is not set: the account of an event is not checked")
    where.account = acting_account(config, inv.extra.get("account"), target)
    require_target(inv.extra.get("type"), target)


def apply_policy(call: Call, where: Where, request: Request) -> Request:
    """Region, snapshot and event rules of the configuration (sections 3, 6)."""
    config, inv = call.config, call.inv
    region = request.region_id
    if request.password_secret_name is not None and request.password_secret_name not in config.password_secrets:
        raise rejected("Forbidden.Secret", f"The secret {shown(request.password_secret_name)} is not one of "
                       "REINIT_PASSWORD_SECRETS; nothing was done.")
    if inv.trigger == EVENTBRIDGE:
        assert inv.fields is not None, "admit() refused an event with no request object"
        region = event_region(inv.extra.get("region"), read_target(inv.fields), region)
        # The login of an instance an event reinitializes is the function's choice.
        request = replace(request, key_pair_name=config.event_key_pair_name)
    region = region or config.region
    if region not in config.regions:
        raise rejected("Forbidden.Region", f"Region {shown(region)} is not one of REINIT_REGIONS "
                       f"({', '.join(config.regions)}); nothing was done.")
    where.region = region
    if config.snapshot == "always" and request.snapshot is False:
        raise rejected("InvalidParameter.Conflict", "REINIT_SNAPSHOT=always: every wipe keeps a snapshot first; "
                       "Snapshot cannot be false.")
    if config.snapshot == "never" and request.snapshot:
        raise rejected("InvalidParameter.Conflict", "REINIT_SNAPSHOT=never: this function takes no snapshots.")
    return replace(request, region_id=region, snapshot=config.snapshot == "always" or bool(request.snapshot))


def read_password_secret(call: Call, request: Request) -> Request:
    """The request with its Password read from the KMS secret it names (section 13.2).
    The value must pass the Password rules; a refusal names the secret, never the value."""
    name = request.password_secret_name
    if name is None:
        return request
    try:
        value = call.secrets.get(name)[0]
    except SecretError as err:
        # KMS's own code, as ECS's codes pass through (section 10).
        raise ReinitError(err.code, f"The Password could not be read from KMS secret {shown(name)} ({err.code}); "
                          "nothing was done.", outcome=FAILED, status=err.status or 500,
                          retryable=err.retryable) from None
    call.scrubber.add(value)
    problem = password_problem(value)
    if problem:
        raise rejected("InvalidPassword.Malformed", f"KMS secret {shown(name)} does not hold a valid Password: "
                       f"{problem}")
    return replace(request, password=Password(value))
