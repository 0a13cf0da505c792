"""Issue 20: never twice when the store forgets, never stuck when it stumbles, never a
stale guard. Each test is one finding of the issue, through the real handler, a real
redis-server and the emulator (docs/idempotency.md)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

import index
from reinit.app import InvocationFailed
from reinit.idempotency import IdempotencyStore
from tests.conftest import TOPIC, WEBHOOK_SECRET, base_seed, disk_id, instance_id, load_event
from tests.model_support import advance_redis

D1, I1, D2, I2 = disk_id(1), instance_id(1), disk_id(2), instance_id(2)


@pytest.fixture
def seed():
    return base_seed(2)


def redis_client(url):
    import redis
    return redis.Redis.from_url(url)


def handler(event, request_id: str, timeout: float = 60):
    """One invocation with a request id of our choosing: FC keeps it across its own
    retries of an asynchronous invocation."""
    context = SimpleNamespace(request_id=request_id, credentials=None,
                              function=SimpleNamespace(name="reinit", timeout=timeout))
    return index.handler(json.dumps(event).encode(), context)


def outcome(call):
    try:
        return call()
    except InvocationFailed as failed:
        return json.loads(str(failed))


# -- 1. a store that forgets ----------------------------------------------------------------
@pytest.mark.parametrize("forget", ["restart", "evict"])
def test_a_store_that_forgets_does_not_let_a_redelivery_wipe_again(invoke, cloud, clock, redis_store, forget):
    cloud.ecs.instances[I1].status = "Running"
    request = {"DiskId": D1, "StopInstance": True, "ClientToken": "incident-9"}
    assert invoke(request)["Outcome"] == "Succeeded"
    clock.advance(120)  # the reinit ended; ECS started the instance, which writes
    assert cloud.ecs.status_of(I1) == "Running"
    client = redis_client(redis_store)
    if forget == "restart":
        client.flushall()
    else:  # a volatile-* policy evicts the record (it has an expiry)
        for key in client.scan_iter("reinit:event:*"):
            client.delete(key)
    again = outcome(lambda: invoke(request))
    assert invoke.reinit_count(D1) == 1
    assert cloud.ecs.status_of(I1) == "Running"  # not stopped again either
    assert "looked again" in again["Message"], again  # answered from the disk's own memory
    assert [c["Action"] for c in cloud.calls() if c["Action"] in ("StopInstance", "ReInitDisk")] == [
        "StopInstance", "ReInitDisk"]  # the first invocation's, and nothing since


def test_a_wipe_leaves_its_mark_and_a_refused_one_takes_it_away(invoke, cloud, redis_store):
    assert invoke({"DiskId": D1, "ClientToken": "t-ok"})["Outcome"] == "Succeeded"
    assert cloud.ecs.disks[D1].tags["reinit-wipe"].startswith("v1.")
    cloud.faults.inject("ReInitDisk", code="InvalidParameter", status=400, times=1)
    refused = outcome(lambda: invoke({"DiskId": D2, "ClientToken": "t-refused"}))
    assert refused["Code"] == "InvalidParameter"
    assert "reinit-wipe" not in cloud.ecs.disks[D2].tags
    assert [c["Action"] for c in cloud.calls() if c["Action"].endswith("agResources")][-2:] == ["TagResources", "UntagResources"]


def test_a_key_used_again_after_its_ttl_is_a_new_request_even_with_its_mark(invoke, cloud, clock, env, redis_store):
    env["REINIT_IDEMPOTENCY_TTL"] = "3600"
    request = {"DiskId": D1, "ClientToken": "weekly"}
    assert invoke(request)["Outcome"] == "Succeeded"
    clock.advance(3700)
    advance_redis(redis_client(redis_store), 3700)
    assert invoke(request)["Outcome"] == "Succeeded"
    assert invoke.reinit_count(D1) == 2


# -- 2. no stuck claims ---------------------------------------------------------------------
class LostAnswer:
    """The claim script runs in Redis, and its answer is lost (a timeout on the way back)."""

    def __init__(self, monkeypatch, times: int = 1):
        import redis
        self.left = times
        real = redis.Redis.eval

        def eval_(client, script, *args):
            answer = real(client, script, *args)
            if self.left and "local current" in script and str(args[1]).find("reinit:event:") >= 0:
                self.left -= 1
                raise redis.TimeoutError("Timeout reading from socket")
            return answer

        monkeypatch.setattr(redis.Redis, "eval", eval_)


def test_a_claim_whose_answer_was_lost_is_taken_over_by_the_platforms_retry(invoke, cloud, redis_store, monkeypatch):
    event = load_event("timer")
    LostAnswer(monkeypatch, times=2)  # the owner's own clean-up is lost too
    first = outcome(lambda: handler(event, "fc-req-1"))
    assert first["Code"] == "ServiceUnavailable"
    retry = outcome(lambda: handler(event, "fc-req-1"))  # FC's retry carries the same request id
    assert retry["Outcome"] == "Succeeded", retry
    assert invoke.reinit_count(D1) == 1


def test_a_claim_whose_answer_was_lost_is_released_by_its_owner(invoke, cloud, redis_store, monkeypatch):
    LostAnswer(monkeypatch, times=1)
    request = {"DiskId": D1, "ClientToken": "ops-7"}
    assert outcome(lambda: handler(request, "fc-a"))["Code"] == "ServiceUnavailable"
    again = outcome(lambda: handler(request, "fc-b"))  # another request id: an operator's retry
    assert again["Outcome"] == "Succeeded", again
    assert invoke.reinit_count(D1) == 1


def test_a_record_of_this_request_id_in_writing_is_looked_at_again(invoke, cloud, redis_store, clock):
    event = load_event("timer")
    key = f"timer:{event['triggerName']}@{event['triggerTime']}"
    from emulator.ecs.responses import instance_to_wire
    since = instance_to_wire(cloud.ecs.instances[I1], "cn-hangzhou")["StartTime"]
    store = IdempotencyStore(redis_store, 86400)
    assert store.claim(key, D1, hold_seconds=600, owner="fc-req-9") is None
    store.mark_writing(key, D1, StoppedByUs=False, AutoStart=None, StartTime=since)
    # That attempt died before ReInitDisk ran: the disk is In_use, the instance still Stopped.
    retry = outcome(lambda: handler(event, "fc-req-9"))
    assert retry["Outcome"] == "Succeeded", retry
    assert invoke.reinit_count(D1) == 1


def test_in_progress_promises_publication_only_for_a_live_holder(invoke, cloud, redis_store):
    event = load_event("timer")
    key = f"timer:{event['triggerName']}@{event['triggerTime']}"
    IdempotencyStore(redis_store, 86400).claim(key, D1, hold_seconds=600, owner="fc-other")
    busy = outcome(lambda: handler(event, "fc-req-2"))
    assert busy["Code"] == "Conflict.InProgress" and "will be published" in busy["Message"]


def test_a_ttl_below_the_timeout_never_expires_a_claim_under_its_holder(invoke, cloud, env, redis_store):
    env["REINIT_IDEMPOTENCY_TTL"] = "60"
    event = load_event("timer")
    key = f"timer:{event['triggerName']}@{event['triggerTime']}"
    IdempotencyStore(redis_store, 60).claim(key, D1, hold_seconds=600, owner="fc-holder")
    advance_redis(redis_client(redis_store), 61)  # past the TTL, long before the holder's time
    busy = outcome(lambda: handler(event, "fc-second", timeout=600))
    assert busy["Code"] == "Conflict.InProgress", busy
    assert invoke.reinit_count(D1) == 0


# -- 3. a fingerprint that survives rotation, and recovers nothing -----------------------------
def test_a_rotated_webhook_secret_does_not_turn_a_retry_into_another_request(invoke, cloud, env, redis_store):
    event = load_event("timer")
    assert outcome(lambda: handler(event, "fc-1"))["Outcome"] == "Succeeded"
    env["REINIT_WEBHOOK_SECRET"] = "whsec-rotated-fedcba9876543210"
    again = outcome(lambda: handler(event, "fc-2"))
    assert again.get("Duplicate") is True, again
    assert invoke.reinit_count(D1) == 1


@pytest.mark.parametrize("mode", ["hmac", "fc", "none"])
def test_nothing_in_the_store_depends_on_the_password(invoke, cloud, env, redis_store, mode):
    """A dictionary needs something that changes with the password: the store's request
    and event records are the same bytes whatever the password was, in every mode."""
    if mode == "fc":
        env["REINIT_WEBHOOK_AUTH"] = "fc"
    if mode != "hmac":
        env.pop("REINIT_WEBHOOK_SECRET", None)
    client = redis_client(redis_store)
    seen = []
    for password in ("Sup3r-Secret!", "Other-Pa55word#"):
        client.flushall()
        outcome(lambda password=password: handler({"DiskId": D1, "Password": password, "ClientToken": "pw-1"}, "fc-p"))
        records = {k: client.get(k) for k in client.scan_iter("reinit:*")
                   if k.startswith((b"reinit:request:", b"reinit:event:"))}
        assert records
        seen.append({k: v for k, v in records.items() if k.startswith(b"reinit:request:")})
        for value in records.values():
            assert password.encode() not in value
    assert seen[0] == seen[1]


# -- 4. the guard looked at again right before the write -----------------------------------------
def test_a_tag_removed_while_the_instance_stops_saves_the_disk(invoke, cloud, redis_store):
    cloud.ecs.instances[I1].status = "Running"
    backend = cloud.ecs
    real = backend.stop_instance

    def stop_and_untag(instance, *args, **kwargs):
        answer = real(instance, *args, **kwargs)
        backend.disks[D1].tags.pop("reinit-allowed", None)  # someone takes the disk out meanwhile
        return answer

    backend.stop_instance = stop_and_untag
    result = outcome(lambda: invoke({"DiskId": D1, "StopInstance": True}))
    assert result["Code"] == "Forbidden.TagRequired", result
    assert invoke.reinit_count(D1) == 0


def test_a_tag_removed_during_a_batch_saves_that_disk(invoke, cloud):
    for inst in (I1, I2):
        cloud.ecs.instances[inst].status = "Running"
    backend = cloud.ecs
    real = backend.stop_instance

    def stop_and_untag(instance, *args, **kwargs):
        answer = real(instance, *args, **kwargs)
        if instance == I2:
            backend.disks[D2].tags.pop("reinit-allowed", None)
        return answer

    backend.stop_instance = stop_and_untag
    summary = invoke({"DiskIds": [D1, D2], "StopInstance": True})
    codes = {r["DiskId"]: r["Code"] for r in summary["Results"]}
    assert codes[D2] == "Forbidden.TagRequired", summary
    assert (invoke.reinit_count(D1), invoke.reinit_count(D2)) == (1, 0)


# -- 5. the door -----------------------------------------------------------------------------
def test_a_signed_request_refused_for_the_store_is_published(invoke, cloud, env):
    env["REINIT_IDEMPOTENCY_URL"] = "redis://127.0.0.1:1/0"
    answer = invoke.http({"DiskId": D1})
    assert answer["statusCode"] == 503
    assert [m["Code"] for m in invoke.messages()] == ["ServiceUnavailable"]
    unsigned = invoke.http({"DiskId": D1}, secret="not-the-secret")
    assert unsigned["statusCode"] == 401
    assert len(cloud.messages(TOPIC)) == 1  # a request that did not verify is never published
    assert WEBHOOK_SECRET not in json.dumps(invoke.messages())


# -- what a production store needs -----------------------------------------------------------
def test_a_store_that_can_forget_is_warned_about_once(invoke, cloud, redis_store, capsys):
    client = redis_client(redis_store)
    client.config_set("maxmemory-policy", "volatile-lru")
    try:
        invoke({"DiskId": D1, "DryRun": True})
        invoke({"DiskId": D1, "DryRun": True})
    finally:
        client.config_set("maxmemory-policy", "noeviction")
    out = capsys.readouterr().out
    assert out.count("idempotency.store_forgets") == 1
    assert "volatile-lru" in out and "persistence" in out  # the test server runs with --save "" --appendonly no


def test_a_store_that_refuses_config_is_used_all_the_same(invoke, cloud, redis_store, monkeypatch, capsys):
    import redis
    monkeypatch.setattr(redis.Redis, "config_get", lambda *a, **k: (_ for _ in ()).throw(
        redis.ResponseError("ERR unknown command 'CONFIG'")))  # as Tair or a managed Redis may answer
    assert invoke({"DiskId": D1, "ClientToken": "tair-1"})["Outcome"] == "Succeeded"
    assert "idempotency.store_unchecked" in capsys.readouterr().out


def test_another_requests_wipe_in_between_does_not_erase_the_memory(invoke, cloud, clock, redis_store):
    """Found by the model: the mark kept only the latest request, so after another
    request's wipe and a store that forgot, the first request wiped the disk again."""
    cloud.ecs.instances[I1].status = "Running"
    first = {"DiskId": D1, "StopInstance": True, "ClientToken": "first"}
    assert invoke(first)["Outcome"] == "Succeeded"
    clock.advance(120)
    assert invoke({"DiskId": D1, "StopInstance": True, "ClientToken": "second"})["Outcome"] == "Succeeded"
    clock.advance(120)
    assert cloud.ecs.status_of(I1) == "Running"
    redis_client(redis_store).flushall()
    outcome(lambda: invoke(first))
    assert invoke.reinit_count(D1) == 2


def test_a_repeat_after_a_holder_died_before_its_mark_leaves_a_mark(invoke, cloud, clock, redis_store, monkeypatch):
    """Found by the soak: the holder died after the claim said Writing and before the mark;
    FC's retry (same request id) found it in doubt and repeated ReInitDisk with no mark, so
    once the store forgot, a redelivery wiped the disk again."""
    from reinit import flow
    from tests.model_support import Killed

    cloud.ecs.instances[I1].status = "Running"
    real = flow.write_mark

    def dies(*args, **kwargs):
        raise Killed("the process died before TagResources left")

    monkeypatch.setattr(flow, "write_mark", dies)
    request = {"DiskId": D1, "StopInstance": True, "ClientToken": "dies-before-mark"}
    with pytest.raises(Killed):
        handler(request, "fc-dies")
    monkeypatch.setattr(flow, "write_mark", real)
    assert outcome(lambda: handler(request, "fc-dies"))["Outcome"] == "Succeeded"
    assert invoke.reinit_count(D1) == 1
    clock.advance(120)  # ECS started the instance again; it writes
    redis_client(redis_store).flushall()
    outcome(lambda: handler(request, "fc-later"))
    assert invoke.reinit_count(D1) == 1


def test_an_outcome_never_overwrites_a_claim_another_holder_took_over(redis_store):
    """complete() settles only this invocation's own claim (issue 20: the owner's
    compare-and-swap, now on every write of the record): where another holder took the
    record over meanwhile, that record stays, and the caller hears ClaimLost."""
    from reinit.idempotency import ClaimLost
    store, other = IdempotencyStore(redis_store, 86400), IdempotencyStore(redis_store, 86400)
    assert store.claim("timer:t@x", D1, hold_seconds=600, owner="fc-a") is None
    key = store.key("timer:t@x", D1)
    theirs = '{"State": "InProgress", "Owner": "fc-b", "Phase": "Writing", "HeldUntil": 9999999999}'
    redis_client(redis_store).set(key, theirs)  # fc-b took it over (fc-a looked dead)
    with pytest.raises(ClaimLost):
        store.complete("timer:t@x", D1, {"Outcome": "Succeeded"})
    assert redis_client(redis_store).get(key).decode() == theirs
    # Its own claim, or one that expired meanwhile, is settled as before.
    assert other.claim("timer:t@y", D1, hold_seconds=600, owner="fc-c") is None
    other.complete("timer:t@y", D1, {"Outcome": "Succeeded"})
    assert json.loads(redis_client(redis_store).get(other.key("timer:t@y", D1)))["State"] == "Done"
    assert other.claim("timer:t@z", D1, hold_seconds=600, owner="fc-d") is None
    redis_client(redis_store).delete(other.key("timer:t@z", D1))  # evicted under its holder
    other.complete("timer:t@z", D1, {"Outcome": "Succeeded"})
    assert json.loads(redis_client(redis_store).get(other.key("timer:t@z", D1)))["State"] == "Done"
