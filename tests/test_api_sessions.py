"""Issue 16 item 1: working memory over the API (get, atomic put, delete, append, data, list), app
keys confined to their own sessions, and bad input refused with a problem while nothing changes."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from api.v1.cursors import decode_cursor, encode_cursor
from memory import working
from tests.api_helpers import ApiClient, make_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(redis_client: Any) -> ApiClient:
    return ApiClient(make_key("staff")[1])


@pytest.fixture
def app(redis_client: Any) -> ApiClient:
    return ApiClient(make_key("bot", role="app", agent_id="bot", namespaces=["ns1"])[1])


@pytest.fixture
def rival(redis_client: Any) -> ApiClient:
    return ApiClient(make_key("rival", role="app", agent_id="rival", namespaces=["ns1"])[1])


def _session(user_id: str = "alice", *texts: str, **extra: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "messages": [{"role": "user", "content": t} for t in texts or ("hello",)],
        **extra,
    }


def test_put_get_append_data_and_delete_round_trip(app: ApiClient) -> None:
    put = app.put(
        "/api/v1/sessions/chat-1", _session("alice", "I like tea", data={"mood": "calm"}, title="Tea")
    )
    assert put.status_code == 200, put.content
    body = put.json()
    assert body["id"] == "chat-1" and body["agent_id"] == "bot" and body["title"] == "Tea"
    assert [m["content"] for m in body["messages"]] == ["I like tea"] and body["data"] == {"mood": "calm"}
    appended = app.post(
        "/api/v1/sessions/chat-1/messages",
        {"messages": [{"role": "assistant", "content": "Noted."}, {"role": "user", "content": "Green"}]},
    )
    assert appended.status_code == 201
    got = app.get("/api/v1/sessions/chat-1").json()
    assert [(m["role"], m["content"]) for m in got["messages"]] == [
        ("user", "I like tea"),
        ("assistant", "Noted."),
        ("user", "Green"),
    ]
    assert got["message_count"] == 3 and got["tokens"] > 0
    assert app.put("/api/v1/sessions/chat-1/data", {"data": {"a": [1, {"b": None}]}}).json() == {
        "data": {"a": [1, {"b": None}]}
    }
    assert app.get("/api/v1/sessions/chat-1/data").json() == {"data": {"a": [1, {"b": None}]}}, (
        "a put replaces"
    )
    assert app.delete("/api/v1/sessions/chat-1").status_code == 204
    assert app.get("/api/v1/sessions/chat-1").status_code == 404
    assert app.delete("/api/v1/sessions/chat-1").status_code == 404


def test_a_put_replaces_the_whole_session_at_once(staff: ApiClient) -> None:
    staff.put("/api/v1/sessions/s1", _session("alice", "one", "two", data={"old": 1}, summary="before"))
    again = staff.put("/api/v1/sessions/s1", _session("alice", "three", data={"new": 2})).json()
    assert [m["content"] for m in again["messages"]] == ["three"]
    assert again["data"] == {"new": 2} and again["summary"] == ""


@pytest.mark.parametrize(
    "bad",
    [
        {"messages": [{"role": "user", "content": "fine"}, {"role": "wizard", "content": "x"}]},
        {"messages": [{"role": "user", "content": "x" * 100_000}]},
        {"messages": [{"role": "user", "content": "x", "at": False}]},
        {"messages": [{"role": "user", "content": "x", "at": 1e300}]},
        {"user_id": "a,b"},
        {"user_id": "bad\x00id"},
        {"user_id": ""},
        {"data": {"": 1}},
        {"data": [1, 2]},
        {"durable": "yes"},
    ],
)
def test_a_bad_put_is_refused_and_changes_nothing(staff: ApiClient, bad: dict[str, Any]) -> None:
    staff.put("/api/v1/sessions/s1", _session("alice", "kept", data={"keep": True}))
    before = working.get_session_with_messages(session_id="s1")
    refused = staff.put("/api/v1/sessions/s1", {**_session("alice"), **bad})
    assert refused.status_code == 422, refused.content
    assert refused["Content-Type"] == "application/problem+json"
    assert working.get_session_with_messages(session_id="s1") == before
    assert working.get_session_data(session_id="s1") == {"keep": True}


def test_an_append_with_one_bad_message_appends_none(staff: ApiClient) -> None:
    staff.put("/api/v1/sessions/s1", _session("alice", "kept"))
    refused = staff.post(
        "/api/v1/sessions/s1/messages",
        {"messages": [{"role": "user", "content": "fine"}, {"role": "user", "content": "x" * 100_000}]},
    )
    assert refused.status_code == 422
    assert [m.content for m in working.get_messages(session_id="s1")] == ["kept"]
    assert (
        staff.post(
            "/api/v1/sessions/missing/messages", {"messages": [{"role": "user", "content": "x"}]}
        ).status_code
        == 404
    )


def test_another_users_session_is_not_taken_over(staff: ApiClient) -> None:
    staff.put("/api/v1/sessions/s1", _session("alice", "mine"))
    refused = staff.put("/api/v1/sessions/s1", _session("mallory", "hijack"))
    # The request is well formed; it conflicts with what is stored.
    assert refused.status_code == 409 and refused["Content-Type"] == "application/problem+json"
    assert refused.json()["detail"] == "this session belongs to another user"
    assert [m.content for m in working.get_messages(session_id="s1")] == ["mine"]


def test_two_apps_with_the_same_session_id_never_meet(
    app: ApiClient, rival: ApiClient, staff: ApiClient
) -> None:
    app.put("/api/v1/sessions/s1", _session("alice", "bot's words"))
    assert rival.get("/api/v1/sessions/s1").status_code == 404
    rival.put("/api/v1/sessions/s1", _session("alice", "rival's words"))
    assert [m["content"] for m in app.get("/api/v1/sessions/s1").json()["messages"]] == ["bot's words"]
    assert [s["id"] for s in app.get("/api/v1/sessions?user_id=alice").json()["sessions"]] == ["s1"]
    # Staff see both, under the ids they are stored as.
    ids = {s["id"] for s in staff.get("/api/v1/sessions?user_id=alice").json()["sessions"]}
    assert ids == {"bot/s1", "rival/s1"}


def test_an_app_never_sees_the_chats_sessions(app: ApiClient) -> None:
    working.ensure_session(session_id="s1", user_id="alice")  # the chat's own session
    working.append_message(session_id="s1", role="user", content="secret chat")
    assert app.get("/api/v1/sessions/s1").status_code == 404
    assert app.get("/api/v1/sessions?user_id=alice").json()["sessions"] == []
    assert app.delete("/api/v1/sessions/s1").status_code == 404
    assert app.put("/api/v1/sessions/s1/data", {"data": {"x": 1}}).status_code == 404
    assert [m.content for m in working.get_messages(session_id="s1")] == ["secret chat"]
    # An id that names the chat's session through the app's prefix is still the app's own.
    assert app.get("/api/v1/sessions/..%2Fs1").status_code == 404


def test_sessions_page_with_a_cursor(staff: ApiClient) -> None:
    for n in range(5):
        staff.put(f"/api/v1/sessions/s{n}", _session("alice", f"m{n}"))
    first = staff.get("/api/v1/sessions?user_id=alice&limit=2").json()
    second = staff.get(f"/api/v1/sessions?user_id=alice&limit=2&cursor={first['next_cursor']}").json()
    third = staff.get(f"/api/v1/sessions?user_id=alice&limit=2&cursor={second['next_cursor']}").json()
    ids = [s["id"] for page in (first, second, third) for s in page["sessions"]]
    assert sorted(ids) == [f"s{n}" for n in range(5)] and third["next_cursor"] is None
    # One cursor encoding across the API (api/v1/cursors.py), the history pages' too.
    assert decode_cursor(first["next_cursor"]) == 2 and decode_cursor(second["next_cursor"]) == 4
    for cursor in ("garbage!", "LTE=", "OTk5OTk5OTk5OQ==", "MQ==", encode_cursor(2) + "x"):
        refused = staff.get(f"/api/v1/sessions?user_id=alice&cursor={cursor}")
        assert refused.status_code == 422, cursor


@pytest.mark.parametrize("session_id", ["a,b", "x" * 300, " padded", "tab%09id", "%00"])
def test_hostile_session_ids_are_a_problem_not_a_crash(
    staff: ApiClient, app: ApiClient, session_id: str
) -> None:
    for client in (staff, app):
        for answer in (
            client.get(f"/api/v1/sessions/{session_id}"),
            client.put(f"/api/v1/sessions/{session_id}", _session()),
            client.delete(f"/api/v1/sessions/{session_id}"),
        ):
            assert 400 <= answer.status_code < 500, (session_id, answer.status_code)
            assert answer["Content-Type"] == "application/problem+json"


def test_malformed_and_oversized_bodies_are_problems(staff: ApiClient, settings: Any) -> None:
    malformed = staff.client.put(
        "/api/v1/sessions/s1", data="{not json", content_type="application/json", headers=staff.headers
    )
    assert malformed.status_code == 400 and malformed.json()["detail"] == "the request body is not valid JSON"
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    big = staff.put("/api/v1/sessions/s1", _session("alice", "x" * 20_000))
    assert big.status_code == 413 and big["Content-Type"] == "application/problem+json"
    assert working.get_session(session_id="s1") is None


def test_an_unknown_api_path_is_a_problem_too(staff: ApiClient) -> None:
    strict = Client(enforce_csrf_checks=True)
    for answer in (
        staff.get("/api/v1/nothing-here"),
        staff.get("/api/v1/sessions/a%2Fb"),
        strict.post("/api/v2/sessions", data="{}", content_type="application/json"),
    ):
        assert answer.status_code == 404 and answer["Content-Type"] == "application/problem+json"
        assert answer.json()["status"] == 404


def test_a_hostile_user_id_in_the_list_is_a_problem(staff: ApiClient) -> None:
    for user_id in ("a,b", "%00x", "x" * 201, "%20padded"):
        answer = staff.get(f"/api/v1/sessions?user_id={user_id}")
        assert answer.status_code == 422, user_id


def test_a_session_id_as_long_as_the_key_allows_works_and_one_more_is_a_clear_422(
    app: ApiClient, staff: ApiClient
) -> None:
    # The app key's agent is "bot": its ids are stored as "bot/<id>" in the engine's 200 characters.
    longest = "s" * (200 - len("bot/"))
    assert app.put(f"/api/v1/sessions/{longest}", _session()).status_code == 200
    assert app.get(f"/api/v1/sessions/{longest}").json()["id"] == longest
    refused = app.put(f"/api/v1/sessions/{longest}s", _session())
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith(f"session_id is longer than {len(longest)} characters")
    # Past the engine's own limit too, the caller hears its own (the compat API has no path limit).
    far_too_long = app.put(f"/v1/working-memory/{'s' * 300}", {"messages": []})
    assert far_too_long.status_code == 422
    assert far_too_long.json()["detail"].startswith(f"session_id is longer than {len(longest)} characters")
    assert staff.put(f"/api/v1/sessions/{'t' * 200}", _session()).status_code == 200
    # A memory filed under an app's session follows the same rule.
    memory = {"text": "User likes green tea", "user_id": "alice", "session_id": longest + "s"}
    assert app.post("/api/v1/memories", {"memories": [memory]}).status_code == 422
