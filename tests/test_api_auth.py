"""Issue 16 item 2: the API is closed without a valid key; keys are stored hashed, bound to an app
(agent and namespaces) or staff, and rate limited per key."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import pytest
from django.db import connection

from api.callers import ApiCaller
from api.problems import Forbidden
from core.api_keys import ApiKeyError, authenticate_api_key, create_api_key, revoke_api_key
from core.models import ApiKey
from core.outage import UNAVAILABLE_MESSAGE
from memory.access import Owner
from memory.services import add_memory
from memory.types import Actor, ActorKind, MemoryNotFound, Scope
from tests.api_helpers import ApiClient, make_key
from tests.memory_helpers import USER
from tests.outage_helpers import kill, private_redis, restart

pytestmark = pytest.mark.django_db

COUNTS = "/api/v1/users/alice/counts"


def test_a_request_without_a_key_is_refused_with_a_problem_and_with_a_key_answered(redis_client) -> None:
    _, raw = make_key()
    refused = ApiClient(None).get(COUNTS)
    assert refused.status_code == 401
    assert refused["Content-Type"] == "application/problem+json"
    assert refused.json()["status"] == 401
    assert refused["WWW-Authenticate"].startswith("Bearer")
    answered = ApiClient(raw).get(COUNTS)
    assert answered.status_code == 200, answered.content


def test_health_is_the_one_public_operation(redis_client) -> None:
    response = ApiClient(None).get("/api/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    for path in ("/api/v1/sessions?user_id=alice", "/api/v1/sessions/s1", "/api/v1/users/alice/export"):
        assert ApiClient(None).get(path).status_code == 401, path


@pytest.mark.parametrize("scheme", ["header", "bearer", "basic"])
def test_each_scheme_carries_the_key(redis_client, scheme: str) -> None:
    _, raw = make_key()
    assert ApiClient(raw, scheme=scheme).get(COUNTS).status_code == 200


def test_wrong_revoked_and_malformed_keys_all_look_the_same(redis_client) -> None:
    revoked, revoked_raw = make_key("revoked")
    revoke_api_key(key_id=revoked.pk)
    _, good = make_key("good")
    wrong = good[:-1] + ("A" if good[-1] != "A" else "B")
    basic_wrong_password = "Basic " + base64.b64encode(f"engram:{wrong}".encode()).decode()
    answers = [
        ApiClient(wrong).get(COUNTS),
        ApiClient(revoked_raw).get(COUNTS),
        ApiClient(revoked_raw, scheme="bearer").get(COUNTS),
        ApiClient(revoked_raw, scheme="basic").get(COUNTS),
        ApiClient(None).get(COUNTS, headers={"Authorization": basic_wrong_password}),
        ApiClient(None).get(COUNTS, headers={"Authorization": "Basic !!!not base64"}),
        ApiClient(None).get(COUNTS, headers={"Authorization": "Bearer "}),
        ApiClient("x" * 5000).get(COUNTS),
        ApiClient(good.upper()).get(COUNTS),
    ]
    assert {r.status_code for r in answers} == {401}
    assert len({r.content for r in answers}) == 1, "a revoked key must not be told apart from a wrong one"
    assert ApiClient(good).get(COUNTS).status_code == 200


def test_keys_are_stored_hashed_only(redis_client) -> None:
    api_key, raw = make_key()
    assert api_key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw.startswith("eng_") and len(raw) == 44 and api_key.prefix == raw[:8]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM core_apikey")
        rows = cursor.fetchall()
    assert rows and not any(raw in str(value) for row in rows for value in row)
    assert authenticate_api_key(raw_key=raw) == api_key
    assert authenticate_api_key(raw_key=api_key.key_hash) is None  # the hash is not a key


def test_an_app_key_needs_a_namespace_and_clean_ids() -> None:
    bads: list[dict[str, Any]] = [
        {"namespaces": []},
        {"agent_id": "a/b"},
        {"agent_id": "a,b"},
        {"namespaces": ["ok", "bad\x00"]},
        {"name": " padded"},
        {"rate_limit_per_minute": 0},
    ]
    for bad in bads:
        kwargs = {"name": "k", "role": "app", "agent_id": "bot", "namespaces": ["ns"], **bad}
        with pytest.raises(ApiKeyError):
            create_api_key(**kwargs)
    assert not ApiKey.objects.exists()
    create_api_key(name="k", role="app", agent_id="bot", namespaces=["ns"])
    with pytest.raises(ApiKeyError, match="already exists"):
        create_api_key(name="k", role="staff", agent_id="bot", namespaces=[])


def _app(agent_id: str = "bot", namespaces: tuple[str, ...] = ("ns1", "ns2")) -> ApiCaller:
    return ApiCaller(key_id=1, name="app", role="app", agent_id=agent_id, namespaces=namespaces)


def test_an_app_caller_is_confined_to_its_agent_and_namespaces(redis_client) -> None:
    caller = _app()
    assert caller.actor == Actor(ActorKind.APP, "api-key:app")
    mine = add_memory(text="Alice likes tea", scope=Scope("alice", "bot", "ns2"), actor=USER)
    other_agent = add_memory(text="Alice likes coffee", scope=Scope("alice", "rival", "ns2"), actor=USER)
    other_ns = add_memory(text="Alice likes juice", scope=Scope("alice", "bot", "ns3"), actor=USER)
    owner = caller.owner()
    assert owner == Owner(None, "bot", ("ns1", "ns2")) and not owner.unconfined
    assert owner.require(mine) is mine
    for memory in (other_agent, other_ns):
        with pytest.raises(MemoryNotFound):
            owner.require(memory)
    with pytest.raises(MemoryNotFound):
        caller.owner("bob").require(mine)
    # Writes go to its agent and an allowed namespace; naming another is refused, not rewritten.
    assert caller.scope(user_id="alice") == Scope("alice", "bot", "ns1")
    assert caller.scope(user_id="alice", namespace="ns2", session_id="s").session_id == "bot/s"
    for kwargs in ({"namespace": "ns3"}, {"agent_id": "rival"}):
        with pytest.raises(Forbidden):
            caller.scope(user_id="alice", **kwargs)
        with pytest.raises(Forbidden):
            caller.filter(user_id="alice", **kwargs)
    flt = caller.filter(user_id="alice")
    assert (flt.agent_id, flt.namespaces) == ("bot", ["ns1", "ns2"])
    with pytest.raises(Forbidden):
        caller.require_staff()


def test_two_apps_sessions_never_meet_and_staff_ids_are_as_stored() -> None:
    one, two = _app("one"), _app("two")
    assert one.session_key("s1") == "one/s1" and two.session_key("s1") == "two/s1"
    assert one.external_session_id("one/s1") == "s1"
    with pytest.raises(MemoryNotFound):
        one.external_session_id("two/s1")
    staff = ApiCaller(key_id=2, name="ops", role="staff", agent_id="engram", namespaces=("default",))
    assert staff.session_key("one/s1") == "one/s1" and staff.external_session_id("one/s1") == "one/s1"
    assert staff.owner() == Owner.anyone() and staff.owner("alice") == Owner.user("alice")


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(redis_client) -> None:
    _, limited = make_key("limited", rate_limit_per_minute=3)
    _, other = make_key("other", rate_limit_per_minute=3)
    client = ApiClient(limited)
    assert [client.get(COUNTS).status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get(COUNTS)
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/problem+json"
    assert 1 <= int(refused["Retry-After"]) <= 61
    assert "3 requests a minute" in refused.json()["detail"]
    assert ApiClient(other).get(COUNTS).status_code == 200, "the limit is per key"
    # A wrong key is not counted against anyone, and is still "unauthorized", not "too many".
    assert ApiClient("eng_" + "x" * 40).get(COUNTS).status_code == 401


def test_last_used_is_recorded(redis_client) -> None:
    api_key, raw = make_key()
    assert api_key.last_used_at is None
    ApiClient(raw).get(COUNTS)
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_during_a_redis_outage_the_api_answers_503_and_recovers(tmp_path) -> None:
    _, raw = make_key()
    client = ApiClient(raw)
    with private_redis(tmp_path / "redis") as server:
        assert client.get(COUNTS).status_code == 200
        kill(server)
        down = client.get(COUNTS)
        assert down.status_code == 503 and down["Content-Type"] == "application/problem+json"
        assert down.json()["detail"] == UNAVAILABLE_MESSAGE and down["Retry-After"]
        assert client.get("/api/v1/health").status_code == 200, "health says the API process is up"
        restart(server)
        # A kill can lose the last second of writes (the index's creation among them): the index
        # comes back by itself within its recheck time, so the API answers again without a restart.
        deadline = time.monotonic() + 15
        while (status := client.get(COUNTS).status_code) != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert status == 200
