"""The agent-memory-client compatible API (api/compat) through Django's own stack: bad input is a
4xx with the string `detail` that client reads (never a 500, nothing stored), Engram's kinds map
onto the client's three, and every change is in history with the key as its actor."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from memory import keys
from memory.selectors import memory_history
from memory.services import add_memory
from memory.types import ActorKind, MemoryType, Scope
from tests.api_helpers import ApiClient, make_key
from tests.memory_helpers import USER

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def app(redis_client: redis.Redis) -> ApiClient:
    _, raw = make_key("compat-app", role="app", agent_id="helper-bot", namespaces=("shop",))
    return ApiClient(raw, scheme="basic")


def _record(**fields: Any) -> dict[str, Any]:
    return {"id": "01JTESTRECORD0000000000001", "text": "User likes green tea", "user_id": "alice", **fields}


LONG_ID = "x" * 201
BAD_REQUESTS: list[tuple[str, str, Any, int]] = [
    ("get", "/v1/long-term-memory/01JNOSUCHMEMORY00000000000", None, 404),
    ("get", f"/v1/long-term-memory/{LONG_ID}", None, 422),
    ("post", "/v1/long-term-memory/", {"memories": []}, 422),
    ("post", "/v1/long-term-memory/", {"memories": [_record(id="a|b")]}, 422),
    ("post", "/v1/long-term-memory/", {"memories": [_record(text="   ")]}, 422),
    ("post", "/v1/long-term-memory/", {"memories": [_record(user_id="alice,mallory")]}, 422),
    ("post", "/v1/long-term-memory/", {"memories": [_record(namespace="not-mine")]}, 403),
    ("post", "/v1/long-term-memory/", {"memories": [_record(memory_type="dream")]}, 422),
    ("post", "/v1/long-term-memory/", {"memories": [_record(), _record()]}, 422),
    ("post", "/v1/long-term-memory/search", {"text": "tea", "limit": 1000}, 422),
    ("post", "/v1/long-term-memory/search", {"text": "tea", "limit": 60, "offset": 60}, 422),
    ("post", "/v1/long-term-memory/search", {"text": "tea", "topics": {"none": ["a"]}}, 422),
    ("post", "/v1/long-term-memory/search", {"text": "tea", "topics": {"all": ["a", "b"]}}, 422),
    ("post", "/v1/long-term-memory/search", {"text": "tea", "user_id": {"not_eq": "bob"}}, 422),
    ("post", "/v1/long-term-memory/search", {"text": "tea", "user_id": {"eq": "a", "in_": ["b"]}}, 422),
    ("post", "/v1/long-term-memory/search", {"text": "tea", "memory_type": {"eq": "dream"}}, 422),
    # A key the client never sends inside a filter (`in` for `in_`) would drop the condition if ignored.
    ("post", "/v1/long-term-memory/search", {"text": "tea", "user_id": {"in": ["a", "b"]}}, 422),
    (
        "post",
        "/v1/long-term-memory/search",
        {"text": "tea", "created_at": {"gt": "2024-01-01T00:00:00Z"}},
        422,
    ),
    (
        "post",
        "/v1/long-term-memory/search",
        {"text": "tea", "memory_type": {"not_in": ["episodic", "semantic", "message"]}},
        422,
    ),
    (
        "post",
        "/v1/long-term-memory/search",
        {"text": "tea", "last_accessed": {"gte": "2024-01-01T00:00:00Z"}},
        422,
    ),
    ("post", "/v1/long-term-memory/search", {"text": "tea", "created_at": {"gte": "yesterday"}}, 422),
    ("post", "/v1/long-term-memory/search", {"text": "tea", "namespace": {"eq": "not-mine"}}, 403),
    ("post", "/v1/long-term-memory/search", {"text": "tea", "distance_threshold": -1}, 422),
    ("post", "/v1/long-term-memory/search", ["not", "an object"], 400),
    ("put", "/v1/working-memory/s1", '"just a string"', 400),
    ("put", "/v1/working-memory/s1", {"session_id": "s1", "memories": [_record()]}, 422),
    (
        "put",
        "/v1/working-memory/s1",
        {"session_id": "s1", "messages": [{"role": "robot", "content": "x"}]},
        422,
    ),
    ("put", "/v1/working-memory/s1", {"session_id": "s2"}, 422),
    ("put", "/v1/working-memory/s1", {"session_id": "s1", "data": {"": 1}}, 422),
    ("put", "/v1/working-memory/a,b", {"session_id": "a,b"}, 422),
    ("get", "/v1/working-memory/nope", None, 404),
    ("get", "/v1/working-memory/?limit=0", None, 422),
    ("get", "/v1/working-memory/?namespace=not-mine", None, 403),
    ("delete", "/v1/long-term-memory", None, 422),
    ("delete", "/v1/long-term-memory?" + "&".join(f"memory_ids=m{i}" for i in range(101)), None, 422),
    ("post", "/v1/memory/prompt", {"query": "tea?"}, 422),
    ("post", "/v1/memory/prompt", {"query": "tea?", "long_term_search": {"topics": {"any": ["x"]}}}, 422),
    ("post", "/v1/memory/prompt", {"query": "", "session": {"session_id": "s1"}}, 422),
    (
        "post",
        "/v1/memory/prompt",
        {"query": "tea?", "session": {"session_id": "s1", "context_window_max": "lots"}},
        422,
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), BAD_REQUESTS)
def test_bad_input_is_a_4xx_with_a_string_detail_and_stores_nothing(
    app: ApiClient, redis_client: redis.Redis, method: str, path: str, body: Any, status: int
) -> None:
    before = sorted(k for k in redis_client.keys("*") if b":api:rate:" not in k)
    response = getattr(app, method)(path, body) if body is not None else getattr(app, method)(path)
    assert response.status_code == status, response.content
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    after = sorted(k for k in redis_client.keys("*") if b":api:rate:" not in k)
    assert after == before, "a refused request stores nothing"


def test_a_body_that_is_not_json_is_a_400(app: ApiClient) -> None:
    response = app.client.post(
        "/v1/long-term-memory/search", data="{not json", content_type="application/json", headers=app.headers
    )
    assert response.status_code == 400 and isinstance(response.json()["detail"], str)


def test_hostile_search_text_and_ids_are_only_text(app: ApiClient) -> None:
    app.post("/v1/long-term-memory/", {"memories": [_record()]})
    for text in ["@text:(is | it | nate)", "*", "alice | bob", "-tea", "}{", "%%", "tea)"]:
        response = app.post("/v1/long-term-memory/search", {"text": text, "user_id": {"eq": "alice"}})
        assert response.status_code == 200, (text, response.content)
    for user in ["*", "alice | bob", "{alice}", "-alice"]:
        response = app.post("/v1/long-term-memory/search", {"text": "tea", "user_id": {"eq": user}})
        assert response.status_code == 200 and response.json()["memories"] == [], user


def test_kinds_map_onto_the_clients_three(app: ApiClient, redis_client: redis.Redis) -> None:
    scope = Scope(user_id="alice", agent_id="helper-bot", namespace="shop")
    procedural = add_memory(
        text="User brews tea at 80 degrees", scope=scope, actor=USER, type=MemoryType.PROCEDURAL
    )
    got = app.get(f"/v1/long-term-memory/{procedural.id}").json()
    assert got["memory_type"] == "semantic", "the client knows no 'procedural'"
    semantic = app.post(
        "/v1/long-term-memory/search",
        {"text": "how does the user brew tea", "user_id": {"eq": "alice"}, "memory_type": {"eq": "semantic"}},
    ).json()
    assert [m["id"] for m in semantic["memories"]] == [procedural.id]
    episodic = app.post(
        "/v1/long-term-memory/search",
        {"text": "how does the user brew tea", "user_id": {"eq": "alice"}, "memory_type": {"eq": "episodic"}},
    ).json()
    assert episodic["memories"] == []


def test_memories_created_like_on_ams_never_expire_whatever_their_kind(
    app: ApiClient, redis_client: redis.Redis
) -> None:
    kinds = {"message": "01JTESTRECORD0000000000011", "episodic": "01JTESTRECORD0000000000012"}
    body = {"memories": [_record(id=i, text=f"User noted {k}", memory_type=k) for k, i in kinds.items()]}
    assert app.post("/v1/long-term-memory/", body).status_code == 200
    for memory_id in kinds.values():
        assert redis_client.ttl(keys.memory(memory_id)) == -1, "kept until deleted, as on AMS"


def test_every_change_is_in_history_with_the_key_as_actor(app: ApiClient) -> None:
    assert app.post("/v1/long-term-memory/", {"memories": [_record()]}).status_code == 200
    memory_id = _record()["id"]
    assert app.patch(f"/v1/long-term-memory/{memory_id}", {"text": "User likes oolong"}).status_code == 200
    deleted = app.delete(f"/v1/long-term-memory?memory_ids={memory_id}")
    assert deleted.json() == {"status": "ok, deleted 1 memories"}
    events = memory_history(memory_id=memory_id)
    assert sorted(e.event for e in events) == ["added", "deleted", "updated"]
    assert {(e.actor.kind, e.actor.id) for e in events} == {(ActorKind.APP, "api-key:compat-app")}


def test_a_retried_create_adds_nothing_twice(app: ApiClient, redis_client: redis.Redis) -> None:
    body = {"memories": [_record()]}
    assert app.post("/v1/long-term-memory/", body).status_code == 200
    assert app.post("/v1/long-term-memory/", body).status_code == 200, "the same create again is a retry"
    listed = app.post("/v1/long-term-memory/search", {"text": "", "user_id": {"eq": "alice"}}).json()
    assert [m["id"] for m in listed["memories"]] == [_record()["id"]]


def test_an_edit_may_not_move_a_memory(app: ApiClient) -> None:
    app.post("/v1/long-term-memory/", {"memories": [_record()]})
    memory_id = _record()["id"]
    for change in ({"user_id": "bob"}, {"namespace": "elsewhere"}, {"session_id": "s9"}, {}):
        response = app.patch(f"/v1/long-term-memory/{memory_id}", change)
        assert response.status_code == 422, change
    same = app.patch(f"/v1/long-term-memory/{memory_id}", {"user_id": "alice", "topics": ["drinks"]})
    assert same.status_code == 200 and same.json()["topics"] == ["drinks"] and same.json()["version"] == 2


def _create(client: ApiClient, **fields: Any) -> Any:
    return client.post("/v1/long-term-memory/", {"memories": [_record(**fields)]})


def test_a_create_by_id_is_an_upsert_that_says_what_it_did(app: ApiClient) -> None:
    memory_id = _record()["id"]
    assert _create(app).json()["status"].startswith("ok, stored 1, updated 0, unchanged 0")
    same = _create(app)
    assert same.status_code == 200 and "stored 0, updated 0, unchanged 1" in same.json()["status"]
    assert app.get(f"/v1/long-term-memory/{memory_id}").json()["version"] == 1
    edited = _create(app, text="User likes black coffee now")
    assert edited.status_code == 200 and "stored 0, updated 1, unchanged 0" in edited.json()["status"]
    got = app.get(f"/v1/long-term-memory/{memory_id}").json()
    assert (got["text"], got["version"]) == ("User likes black coffee now", 2)
    assert [e.event for e in memory_history(memory_id=memory_id)] == ["added", "updated"]
    assert _create(app, user_id="bob").status_code == 422, "an upsert does not move a memory"


def test_a_create_by_a_deleted_id_is_409_and_stores_nothing(app: ApiClient) -> None:
    memory_id = _record()["id"]
    _create(app)
    assert app.delete(f"/v1/long-term-memory?memory_ids={memory_id}").status_code == 200
    again = _create(app, text="User likes black coffee now")
    assert again.status_code == 409, again.content
    assert "deleted" in again.json()["detail"]
    assert app.get(f"/v1/long-term-memory/{memory_id}").status_code == 404


def test_an_id_used_before_is_refused_in_words_that_never_say_whose(
    app: ApiClient, redis_client: redis.Redis
) -> None:
    """An id whose memory expired keeps its history and its user's index entry until the retention
    sweep: a new memory under it (another app's, another user's) would inherit that history, and
    erasing the first user would delete it."""
    other = ApiClient(
        make_key("other-app", role="app", agent_id="other", namespaces=("nb",))[1], scheme="basic"
    )
    assert _create(app, id="pref-9", text="Alice's PIN is 4321").status_code == 200
    taken = _create(other, id="pref-9", text="Bob likes tea", user_id="bob")
    redis_client.delete(keys.memory("pref-9"))  # its TTL ran out; the sweep has not run yet
    expired = _create(other, id="pref-9", text="Bob likes tea", user_id="bob")
    for refused in (taken, expired):
        assert refused.status_code == 422, refused.content
        assert refused.json()["detail"] == "the id pref-9 cannot be used for a new memory; choose another id"
    assert other.get("/api/v1/memories/pref-9/history").status_code == 404
    assert "4321" not in other.get("/api/v1/memories/pref-9/history").content.decode()
    assert not redis_client.sismember(keys.user_memory_ids("bob"), "pref-9")


def test_a_bulk_delete_is_all_or_nothing(app: ApiClient) -> None:
    staff = ApiClient(make_key("support", role="staff")[1])
    ids = ("m1", "m2", "m3")
    body = {"memories": [_record(id=i, text=f"Fact {i} about llamas") for i in ids]}
    assert app.post("/v1/long-term-memory/", body).status_code == 200
    assert staff.post("/api/v1/memories/m2/pin", {"pinned": True}).status_code == 200
    refused = app.delete("/v1/long-term-memory?memory_ids=m1&memory_ids=m2&memory_ids=m3")
    assert refused.status_code == 409 and "pinned" in refused.json()["detail"]
    assert [app.get(f"/v1/long-term-memory/{i}").status_code for i in ids] == [200, 200, 200]
    done = app.delete("/v1/long-term-memory?memory_ids=m1&memory_ids=m3&memory_ids=nope")
    assert done.json() == {"status": "ok, deleted 2 memories"}
    assert [app.get(f"/v1/long-term-memory/{i}").status_code for i in ids] == [404, 200, 404]
