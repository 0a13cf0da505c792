"""Red-team findings: each test shows one way a promise (never the wrong disk, never twice,
never silent, never the password) still breaks. Each is xfail(strict) until it is fixed."""

from __future__ import annotations

import json

import pytest

from reinit import flow
from tests.conftest import base_seed, disk_id, instance_id, load_event
from tests.model_support import Killed, advance_redis

D1, I1 = disk_id(1), instance_id(1)


def timer(payload: dict) -> dict:
    return {**load_event("timer"), "payload": json.dumps(payload)}


@pytest.fixture
def seed():
    seed = base_seed(2)
    seed["timings"]["snapshot"] = 500.0
    return seed


# -- never twice: a holder that dies after ReInitDisk ----------------------------------------
def test_a_holder_killed_after_reinit_disk_is_not_wiped_again_by_the_redelivery(
        invoke, cloud, clock, redis_store, monkeypatch):
    """Never twice. An invocation claims (key, disk), ReInitDisk is accepted (ECS starts the
    instance afterwards), then the process dies (a BaseException: FC's kill, OOM). The
    InProgress record simply expires (PX = the holder's timeout), so the platform's
    redelivery of the same event finds no record, sees a Running instance, stops it
    (StopInstance) and wipes the disk a second time, destroying what the instance wrote
    after the first wipe. Cause: idempotency.py _CLAIM / IdempotencyStore.claim: an
    InProgress record vanishes at its hold expiry instead of turning InDoubt (keep it for
    the TTL with a HeldUntil, and resolve an expired one with resolve_in_doubt)."""
    import redis

    cloud.ecs.instances[I1].status = "Running"
    cloud.ecs.timings.update(stop=1.0, reinit=5.0, start=3.0)
    real = flow.reinit_safely

    def dies_after_the_call(*args, **kwargs):
        real(*args, **kwargs)
        raise Killed("the process died right after ECS accepted ReInitDisk")

    monkeypatch.setattr(flow, "reinit_safely", dies_after_the_call)
    request = {"DiskId": D1, "StopInstance": True, "ClientToken": "incident-7"}
    with pytest.raises(Killed):
        invoke(request, timeout=60)
    assert invoke.reinit_count(D1) == 1
    monkeypatch.setattr(flow, "reinit_safely", real)
    clock.advance(400)  # the reinit finished, ECS started the instance, it wrote; the hold expired
    advance_redis(redis.Redis.from_url(redis_store), 400)
    assert cloud.ecs.status_of(I1) == "Running"
    invoke(request, timeout=60)  # FC's retry of the same async invocation / the operator's retry
    assert invoke.reinit_count(D1) == 1


# -- continuations under an idempotency store ------------------------------------------------
def test_a_continuation_of_a_request_with_a_client_token_is_not_refused_as_a_conflict(
        invoke, cloud, clock, env, redis_store):
    """Never silent / restart symmetry. An incident request with a ClientToken, StopInstance
    and Snapshot; the snapshot outlasts the invocation, so it is continued. The continuation
    payload carries the same ClientToken (as its evidence key) and so the same idempotency
    key, but with AutoStartInstance added: the store's fingerprint differs and the
    continuation is refused InvalidParameter.Conflict (Rejected, not retryable). The disk
    is never wiped and the instance, stopped by the function, stays stopped for good,
    although the first answer promised 'the wipe starts it again'. Cause: app.py
    continue_later / once(): the continuation's key equals the parent's ("client-token:X")
    and fingerprint() includes auto_start (and the selector: InstanceId vs DiskId).
    Fix: key a continuation by its own (evidence key, hop) or exclude the continuation's
    derived fields from the fingerprint comparison."""
    import index
    env.update(REINIT_FC_ENDPOINT=cloud.endpoint, REINIT_FUNCTION_NAME="reinit")
    cloud.fc.register("reinit", lambda event, context: index.handler(event, context), timeout=600)
    cloud.ecs.instances[I1].status = "Running"
    first = invoke({"DiskId": D1, "Snapshot": True, "StopInstance": True, "ClientToken": "incident-42"},
                   timeout=60)
    assert first.get("ContinuedAs")
    cloud.fc.run_pending()
    [continued] = cloud.fc.invocations
    assert continued.get("Result", {}).get("Outcome") == "Succeeded", continued
    assert invoke.reinit_count(D1) == 1


def test_a_continuation_of_an_instance_id_request_with_a_client_token_goes_on(invoke, cloud, clock, env, redis_store):
    """Never silent. As above with the InstanceId selector: the continuation names DiskId,
    so its fingerprint differs from the parent's under the same ClientToken and it is
    refused InvalidParameter.Conflict; the disk is never wiped. Cause: app.py once()/
    fingerprint() with the continuation's key equal to the parent's."""
    import index
    env.update(REINIT_FC_ENDPOINT=cloud.endpoint, REINIT_FUNCTION_NAME="reinit")
    cloud.fc.register("reinit", lambda event, context: index.handler(event, context), timeout=600)
    first = invoke({"InstanceId": I1, "Snapshot": True, "ClientToken": "incident-43"}, timeout=60)
    assert first.get("ContinuedAs")
    cloud.fc.run_pending()
    [continued] = cloud.fc.invocations
    assert continued.get("Result", {}).get("Outcome") == "Succeeded", continued
    assert invoke.reinit_count(D1) == 1


# -- restart symmetry: a batch disk whose snapshot outlasts the invocation --------------------
def test_a_batch_disk_whose_snapshot_outlasts_the_invocation_does_not_leave_its_instance_stopped(invoke, cloud, clock):
    """Restart symmetry (section 11, "Stopping"): in a batch, StopInstance + Snapshot, the
    snapshot outlasts the invocation. Nothing continues a batch disk (continue_later is
    for single requests only) and the batch returns normally, so no retry comes, yet
    settle_instance leaves the instance stopped and says it 'stays stopped until the evidence
    snapshot is accomplished and the disk reinitialized, which starts it again': it never
    is. Cause: flow.py carry_out sets group.left_stopped on SnapshotPending and
    settle_instance trusts it in fleet.Batch.run_group. Fix: in a batch (no continuation),
    restart the instance, or continue the disk as a single request."""
    cloud.ecs.instances[I1].status = "Running"
    summary = invoke(timer({"DiskIds": [D1], "StopInstance": True, "Snapshot": True}), timeout=60)
    assert summary["Results"][0]["Code"] == "WaitTimeout"
    clock.advance(30)
    assert cloud.ecs.status_of(I1) in ("Starting", "Running"), summary["Results"][0]["Message"]


# -- the password in the idempotency store ---------------------------------------------------
PW_A, PW_B = "Reinit!Alpha2026", "Reinit!Bravo2026"


def _echoing_refusal(cloud, password: str) -> None:
    """ECS refuses ReInitDisk with a message that echoes the request (as the gateway's
    SignatureDoesNotMatch quotes its string to sign): section 11 expects foreign text to
    carry secrets."""
    cloud.faults.inject("ReInitDisk", code="InvalidParameter", status=400,
                        message=f"The specified parameter Password={password} is not valid.")


def test_the_idempotency_store_never_holds_the_password(invoke, cloud, redis_store):
    """Never the password. ECS's error message echoes the request; the answer and the
    notification are scrubbed, but idempotency._finish stores result.stored(), whose
    Message is the raw ECS text, so Redis/Tair keeps the Password in clear for the TTL.
    Cause: idempotency._finish / Result.stored(): nothing scrubs the record. Fix: pass the
    invocation's Scrubber into Once and scrub the stored dict (or store the scrubbed
    notification)."""
    import redis

    _echoing_refusal(cloud, PW_A)
    answer = invoke({"DiskId": D1, "Password": PW_A, "ClientToken": "pw-1"})
    assert answer["Outcome"] == "Failed" and PW_A not in json.dumps(answer)
    client = redis.Redis.from_url(redis_store)
    stored = b" ".join(client.get(k) or b"" for k in client.scan_iter() if client.type(k) == b"string")
    assert PW_A.encode() not in stored


def test_a_duplicate_never_hands_one_callers_password_to_another(invoke, cloud, env, redis_store):
    """Never the password. Without a webhook secret (REINIT_WEBHOOK_AUTH=fc, or no HTTP
    trigger) the fingerprint records the Password only as present, so the same
    ClientToken with another Password is a duplicate: it is answered (and published) with
    the stored Message, scrubbed only of the second caller's Password, so the first
    caller's Password reaches the second caller and the topic. Cause: as above (the store
    keeps the raw message) plus app.fingerprint(): without a secret two Passwords look
    the same. Fix: scrub before storing; and key the password by an HMAC under a
    function-held key even without a webhook secret (or refuse ClientToken reuse with
    a Password)."""
    env.pop("REINIT_WEBHOOK_SECRET")
    env["REINIT_WEBHOOK_AUTH"] = "fc"
    _echoing_refusal(cloud, PW_A)
    invoke({"DiskId": D1, "Password": PW_A, "ClientToken": "shared-token"})
    second = invoke({"DiskId": D1, "Password": PW_B, "ClientToken": "shared-token"})
    assert PW_A not in json.dumps(second)
    assert all(PW_A not in json.dumps(m) for m in invoke.messages())


# -- evidence: a reused ClientToken finds an old snapshot --------------------------------------
def test_a_new_wipe_with_a_reused_client_token_takes_a_fresh_evidence_snapshot(invoke, cloud, clock):
    """Never silent / evidence before the wipe. Without an idempotency store (or after its
    TTL), the same ClientToken days later is a new request (a timer payload with a fixed
    ClientToken is one every firing). Its evidence step finds the snapshot of the first
    request by its tags (reinit:event = the ClientToken) and reports it 'accomplished
    first', then wipes: what was on the disk just before the second wipe is gone with no
    evidence, and the notification names a snapshot that predates the first wipe. Cause:
    snapshot.find_evidence_snapshot / app.evidence_key: the evidence key is the bare
    ClientToken. Fix: reuse an existing snapshot only for the same invocation chain (a
    Continuation or an in-doubt record), e.g. tag it with a per-request nonce that the
    continuation carries, or require it to be newer than the request."""
    cloud.ecs.timings["snapshot"] = 40.0
    request = {"DiskId": D1, "Snapshot": True, "ClientToken": "nightly-evidence"}
    first = invoke(request)
    assert first["Outcome"] == "Succeeded" and invoke.reinit_count(D1) == 1
    clock.advance(2 * 86400)  # days later: the instance ran, the disk changed
    second = invoke(request)
    assert second["Outcome"] == "Succeeded" and invoke.reinit_count(D1) == 2
    assert second["SnapshotId"] != first["SnapshotId"]
    assert len(cloud.calls("CreateSnapshot")) == 2


# -- chunks: a retried parent whose selection moved --------------------------------------------
@pytest.mark.parametrize("seed", [base_seed(6)])
def test_a_retried_split_whose_selection_shifted_hands_every_disk_off(invoke, cloud, env, seed, redis_store):
    """Never silent. A Tags batch is split in chunks of 2; InvokeFunction fails for good on
    the third chunk. Before the retry one disk of the first chunk loses the selecting tag,
    so the selection re-lists one place shorter. Before the fix, chunk task ids named
    positions: chunks 0 and 1 met 409 although they now held other disks, and disk 5 was
    in no chunk that ever ran. Now a chunk's task id names its disks, and with a store the
    disks of a batch are keyed by the batch: every disk runs, once."""
    import index
    env.update(REINIT_FC_ENDPOINT=cloud.endpoint, REINIT_FUNCTION_NAME="reinit", REINIT_FLEET_CHUNK="2")
    cloud.fc.register("reinit", lambda event, context: index.handler(event, context))
    cloud.faults.inject("InvokeFunction", code="ServiceUnavailable", status=503, times=50, skip=2)
    request = {"Tags": [{"Key": "fleet", "Value": "lab"}], "ClientToken": "fleet-wipe-7"}
    first = invoke(request)  # a batch always returns its summary
    assert first["Code"] == "ServiceUnavailable" and first["Retryable"] is True
    cloud.faults.clear()
    cloud.fc.run_pending()  # the two chunks that were handed off run
    del cloud.ecs.disks[disk_id(1)].tags["fleet"]  # chunk 0 already held it; the listing shifts
    invoke(request)  # the retry
    cloud.fc.run_pending()
    assert [invoke.reinit_count(disk_id(n)) for n in range(1, 7)] == [1] * 6


@pytest.mark.parametrize("seed", [base_seed(6)])
def test_without_a_store_a_split_that_failed_part_way_names_the_disks_it_did_not_hand_off(invoke, cloud, env, seed):
    """Never silent, never twice: without a store a retry of a moved selection could run a
    disk twice, so the failure is not retryable, and it names every disk not handed off."""
    import index
    env.update(REINIT_FC_ENDPOINT=cloud.endpoint, REINIT_FUNCTION_NAME="reinit", REINIT_FLEET_CHUNK="2")
    cloud.fc.register("reinit", lambda event, context: index.handler(event, context))
    cloud.faults.inject("InvokeFunction", code="ServiceUnavailable", status=503, times=50, skip=2)
    first = invoke({"Tags": [{"Key": "fleet", "Value": "lab"}]})
    assert (first["Code"], first["Retryable"]) == ("ServiceUnavailable", False)
    assert disk_id(5) in first["Message"] and disk_id(6) in first["Message"]


# -- time: ReIniting shown late ---------------------------------------------------------------
def test_a_reinit_that_shows_reiniting_after_the_settle_time_is_not_reported_finished(invoke, cloud, clock):
    """Never silent (section 11, "Waiting": the moment before ReIniting is never taken for
    the end). ECS accepts ReInitDisk but shows ReIniting only 8 s later (a loaded region's
    eventually consistent DescribeDisks); the reinit then takes 60 s. The completion wait
    looks twice, sees In_use for 5 s (SETTLE_SECONDS) and answers 'ReInitDisk finished
    (inferred...)' while the disk is still about to be wiped: a caller that starts the
    instance or attaches the disk on that answer races the wipe. Cause: flow.py
    wait_for_completion's `waited >= SETTLE_SECONDS` rule, which has no sign from ECS
    behind it. Fix: infer the end only from a positive sign (ReIniting seen, or the
    instance started by ECS), else wait to the deadline and answer WaitTimeout."""
    cloud.ecs.timings.update(reinit_start=8.0, reinit=60.0)
    start = clock.now()
    answer = invoke({"DiskId": D1, "WaitForCompletion": True}, timeout=600)
    assert answer["Outcome"] == "Succeeded"
    assert clock.now() - start >= 68, answer["Message"]  # the reinit really ended before the answer


# -- continuations: a redelivered parent and the queued continuation both wipe ----------------
def test_a_redelivered_parent_and_its_continuation_do_not_both_wipe(invoke, cloud, clock, env, redis_store):
    """Never twice. An EventBridge incident (StopInstance, Snapshot, AutoStartInstance) whose
    snapshot outlasts the invocation: the parent releases its (eventbridge:id, disk) record
    and queues a continuation keyed 'client-token:reinit-<digest>'. EventBridge delivers
    the event again once the snapshot is accomplished: the redelivery claims the released
    record, finds the same snapshot and wipes (ECS starts the instance; it writes). Then
    the continuation runs under its own key, sees the instance Running, stops it and
    wipes a second time. Cause: continuation.continue_later releases the parent's record
    (idempotency._finish: retryable and not may_have_run) and the continuation uses
    another idempotency key. Fix: keep the parent's record (a 'Continued' state naming
    the task) so a redelivery answers 'continued' instead of running, and run the
    continuation under the parent's key (taking over that record)."""
    import index
    env.update(REINIT_FC_ENDPOINT=cloud.endpoint, REINIT_FUNCTION_NAME="reinit")
    cloud.fc.register("reinit", lambda event, context: index.handler(event, context), timeout=300)
    cloud.ecs.instances[I1].status = "Running"
    event = load_event("eventbridge")
    event["data"] = {"instanceId": I1, "Snapshot": True, "StopInstance": True, "AutoStartInstance": True}
    first = invoke(event, timeout=300)
    assert first.get("ContinuedAs") and invoke.reinit_count(D1) == 0
    clock.advance(600)  # the snapshot is accomplished meanwhile
    again = invoke(event, timeout=300)  # the same event id, delivered again: answered, not run
    assert again["Duplicate"] is True and again["ContinuedAs"] == first["ContinuedAs"]
    assert invoke.reinit_count(D1) == 0
    cloud.fc.run_pending()  # only the continuation wipes
    assert invoke.reinit_count(D1) == 1
    clock.advance(60)
    assert cloud.ecs.status_of(I1) == "Running"
