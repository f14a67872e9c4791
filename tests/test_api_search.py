"""Issue 16 item 1: /api/v1/search (semantic / keyword / hybrid, every filter, score breakdowns and
near misses) and /api/v1/memory-prompt (the chat's build_prompt with its token breakdown), both
confined to the caller's key."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.v1.memory_schemas import FILTER_ARGUMENTS, SearchIn
from memory import working
from memory.prompt import build_prompt
from memory.query import MemoryFilter
from memory.search import search_memories
from memory.traces import session_traces
from memory.types import ScoreBreakdown
from tests.api_helpers import ApiClient, make_key

pytestmark = pytest.mark.django_db

SEARCH = "/api/v1/search"
PROMPT = "/api/v1/memory-prompt"


@pytest.fixture
def staff() -> ApiClient:
    return ApiClient(make_key("support-desk")[1])


@pytest.fixture
def app() -> ApiClient:
    return ApiClient(make_key("notes-app", role="app", agent_id="notes", namespaces=["work", "home"])[1])


def add(client: ApiClient, *items: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post("/api/v1/memories", {"memories": list(items)})
    assert response.status_code == 201, response.content
    return response.json()["memories"]


def search(client: ApiClient, **body: Any) -> Any:
    response = client.post(SEARCH, {"user_id": "alice", **body})
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def alice(staff: ApiClient) -> list[dict[str, Any]]:
    return add(
        staff,
        {
            "text": "Alice's dog is a beagle named Rex",
            "user_id": "alice",
            "topics": ["pets"],
            "entities": ["Rex"],
        },
        {"text": "Alice works as a nurse at the Porto hospital", "user_id": "alice", "topics": ["work"]},
        {"text": "Alice prefers Python over Java", "user_id": "alice", "namespace": "code"},
        {
            "text": "Alice ran the Lisbon marathon",
            "user_id": "alice",
            "type": "episodic",
            "event_date": 1_690_000_000.0,
            "session_id": "s1",
        },
        {"text": "Always answer Alice in short bullet points", "user_id": "alice", "type": "procedural"},
        {"text": "Bob's dog is a poodle named Rex", "user_id": "bob"},
    )


def test_search_answers_the_engines_hits_with_every_score_and_the_near_misses(
    redis_client, staff, alice
) -> None:
    body = search(staff, text="What breed is my dog Rex?", relative_threshold=0.9, threshold=0.0)
    engine = search_memories(
        filter=MemoryFilter.build(user_id="alice"),
        text="What breed is my dog Rex?",
        relative_threshold=0.9,
        threshold=0.0,
    )
    assert [h["id"] for h in body["hits"]] == [h.memory.id for h in engine.hits]
    assert [h["id"] for h in body["near_misses"]] == [h.memory.id for h in engine.near_misses]
    assert body["near_misses"], "memories below the cut are shown as near misses"
    top = body["hits"][0]
    assert top["text"] == top["memory"]["text"] == "Alice's dog is a beagle named Rex"
    assert set(top["scores"]) == {f.name for f in dataclasses.fields(ScoreBreakdown)}
    assert top["scores"] == engine.hits[0].score.as_dict()
    assert top["ranked_by"] == "score" and top["rank"] == top["scores"]["final"]
    assert body["cut"] == pytest.approx(0.9 * top["scores"]["final"], abs=1e-4)  # scores are rounded
    assert all(h["memory"]["scope"]["user_id"] == "alice" for h in body["hits"] + body["near_misses"])


@pytest.mark.parametrize("mode", ["semantic", "keyword", "hybrid"])
def test_every_mode_searches(redis_client, staff, alice, mode) -> None:
    body = search(staff, text="beagle Rex", mode=mode)
    assert body["mode"] == mode
    assert body["hits"][0]["text"] == "Alice's dog is a beagle named Rex"
    scores = body["hits"][0]["scores"]
    assert (scores["vector"] == 0) == (mode == "keyword") and (scores["keyword"] == 0) == (mode == "semantic")


def test_the_api_takes_every_filter_the_engine_has() -> None:
    assert set(FILTER_ARGUMENTS) <= set(SearchIn.model_fields)
    assert {"user_id", "types", "topics", "created_after", "without_messages_of_session"} <= set(
        FILTER_ARGUMENTS
    )


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (
            {"types": ["episodic", "procedural"]},
            {"Alice ran the Lisbon marathon", "Always answer Alice in short bullet points"},
        ),
        (
            {"topics": ["pets", "work"]},
            {"Alice's dog is a beagle named Rex", "Alice works as a nurse at the Porto hospital"},
        ),
        ({"entities": ["rex"]}, {"Alice's dog is a beagle named Rex"}),
        ({"namespace": "code"}, {"Alice prefers Python over Java"}),
        ({"namespaces": ["code", "nowhere"]}, {"Alice prefers Python over Java"}),
        ({"session_id": "s1"}, {"Alice ran the Lisbon marathon"}),
        ({"event_after": 1_600_000_000, "event_before": 1_700_000_000}, {"Alice ran the Lisbon marathon"}),
        ({"created_after": 4_000_000_000}, set()),
        ({"updated_before": 1_000_000}, set()),
        ({"pinned_only": True}, set()),
        ({"agent_id": "someone-else"}, set()),
    ],
)
def test_filters_narrow_the_search(redis_client, staff, alice, filters, expected) -> None:
    body = search(staff, text="Alice", threshold=0.0, relative_threshold=0.0, top_k=20, **filters)
    assert {h["text"] for h in body["hits"]} == expected


def test_bad_searches_are_problems_not_errors(redis_client, staff) -> None:
    for bad in (
        {"text": ""},
        {"text": "x", "mode": "fuzzy"},
        {"text": "x", "top_k": 0},
        {"text": "x", "top_k": 10_000},
        {"text": "x", "threshold": 2},
        {"text": "x", "types": ["gossip"]},
        {"text": "x", "created_after": 5, "created_before": 1},
        {"text": "x", "user_id": "a,b"},
        {"text": "x" * 100_000},
        {"text": "x", "colour": "red"},
    ):
        response = staff.post(SEARCH, {"user_id": "alice", **bad})
        assert response.status_code == 422, (bad, response.content)
        assert response["Content-Type"] == "application/problem+json"


def test_an_app_key_searches_only_its_agent_and_namespaces(redis_client, staff, app) -> None:
    other = ApiClient(make_key("other-app", role="app", agent_id="other", namespaces=["work"])[1])
    add(other, {"text": "Alice's secret: she hates tea", "user_id": "alice"})
    add(
        staff,
        {
            "text": "Alice's tea order is oolong",
            "user_id": "alice",
            "agent_id": "notes",
            "namespace": "finance",
        },
    )
    add(staff, {"text": "Alice drinks tea at noon", "user_id": "alice"})
    [mine] = add(app, {"text": "Alice likes mint tea", "user_id": "alice"})
    body = search(app, text="tea", threshold=0.0, relative_threshold=0.0, near_misses=20)
    assert [h["id"] for h in body["hits"] + body["near_misses"]] == [mine["id"]]
    for refused in ({"namespace": "finance"}, {"namespaces": ["work", "finance"]}, {"agent_id": "other"}):
        response = app.post(SEARCH, {"user_id": "alice", "text": "tea", **refused})
        assert response.status_code == 403, (refused, response.content)
    for hostile in (
        "*",
        "alice|bob",
        "@user_id:{alice}",
        "{}",
        "alice*",
        "-alice",
        "(alice)",
        "al\\ice",
        "x" * 5000,
    ):
        response = app.post(
            SEARCH, {"user_id": hostile, "text": "tea", "threshold": 0.0, "relative_threshold": 0.0}
        )
        assert response.status_code in (200, 422), response.content
        if response.status_code == 200:
            assert response.json()["hits"] == []
    assert redis_client.ping()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(min_size=1, max_size=40),
    user_id=st.text(min_size=1, max_size=20),
    topic=st.text(max_size=12),
    mode=st.sampled_from(["semantic", "keyword", "hybrid"]),
)
def test_fuzzed_searches_answer_200_or_422_and_leave_the_server_up(
    redis_client, app, text, user_id, topic, mode
) -> None:
    body = {"text": text, "user_id": user_id, "mode": mode, "topics": [topic], "namespace": "work"}
    response = app.post(SEARCH, body)
    assert response.status_code in (200, 422), response.content
    assert redis_client.ping()


# --- memory_prompt --------------------------------------------------------------------------------


def test_memory_prompt_is_the_chats_prompt_with_its_token_breakdown(redis_client, staff, alice) -> None:
    working.ensure_session(session_id="chat-9", user_id="alice")
    working.append_message(session_id="chat-9", role="user", content="I am thinking about my dog")
    working.append_message(session_id="chat-9", role="assistant", content="Tell me more about Rex")
    message = "What breed is my dog?"
    expected = build_prompt(user_id="alice", session_id="chat-9", message=message, save_trace=False)
    response = staff.post(PROMPT, {"user_id": "alice", "session_id": "chat-9", "message": message})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["messages"] == expected.messages
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert "Alice's dog is a beagle named Rex" in body["messages"][0]["content"]
    assert [h["id"] for h in body["memories"]] == [h.memory.id for h in expected.memories]
    tokens = body["tokens"]
    assert {k: tokens[k] for k in expected.token_breakdown} == expected.token_breakdown
    parts = ("system_instructions", "memories", "summary", "recent_messages", "user_message")
    assert tokens["total"] == sum(tokens[p] for p in parts) and tokens["recent_message_count"] == 2
    # Like a chat turn, it is the session's retrieval trace.
    assert [t.turn_id for t in session_traces(session_id="chat-9")] == [body["turn_id"]]


def test_memory_prompt_without_a_session_and_with_a_budget(redis_client, staff, alice) -> None:
    body = staff.post(PROMPT, {"user_id": "alice", "message": "Where do I work?", "budget": 5000}).json()
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["tokens"]["budget"] == 5000 and body["session_id"] is None
    assert any("nurse" in h["text"] for h in body["memories"])


def test_memory_prompt_of_an_app_key_uses_only_its_memories_and_sessions(redis_client, staff, app) -> None:
    other = ApiClient(make_key("other-app", role="app", agent_id="other", namespaces=["work"])[1])
    add(other, {"text": "Alice's secret: she hates tea", "user_id": "alice"})
    add(app, {"text": "Alice likes mint tea", "user_id": "alice"})
    working.ensure_session(session_id="other/chat-1", user_id="alice", agent_id="other")
    working.append_message(session_id="other/chat-1", role="user", content="my bank pin is 1234")
    working.ensure_session(session_id="notes/chat-2", user_id="bob", agent_id="notes")
    working.ensure_session(session_id="notes/chat-1", user_id="alice", agent_id="notes")
    working.append_message(session_id="notes/chat-1", role="user", content="hello there")
    ok = app.post(PROMPT, {"user_id": "alice", "session_id": "chat-1", "message": "What tea do I like?"})
    assert ok.status_code == 200, ok.content
    text = ok.content.decode()
    assert "mint tea" in text and "hates tea" not in text and "1234" not in text
    assert "hello there" in text
    missing = app.post(PROMPT, {"user_id": "alice", "session_id": "nope", "message": "hi"})
    assert missing.status_code == 404
    for foreign in ("chat-2", "other/chat-1", "../other/chat-1"):
        response = app.post(PROMPT, {"user_id": "alice", "session_id": foreign, "message": "hi"})
        assert response.status_code in (404, 422), (foreign, response.content)
        assert "1234" not in response.content.decode()
        if response.status_code == 404:
            assert response.json()["detail"] == missing.json()["detail"]
    refused = app.post(PROMPT, {"user_id": "alice", "namespace": "finance", "message": "hi"})
    assert refused.status_code == 403


def test_memory_prompt_draws_on_what_the_callers_search_finds(redis_client, staff, app) -> None:
    add(app, {"text": "Alice grows basil at home", "user_id": "alice", "namespace": "home"})
    add(app, {"text": "Alice grows a startup at work", "user_id": "alice", "namespace": "work"})
    add(
        staff,
        {"text": "Alice grows tomatoes", "user_id": "alice", "agent_id": "notes", "namespace": "garden"},
    )

    def used(client: ApiClient, **body: Any) -> set[str]:
        response = client.post(PROMPT, {"user_id": "alice", "message": "What does Alice grow?", **body})
        assert response.status_code == 200, response.content
        return {h["text"] for h in response.json()["memories"]}

    # Any of the app's namespaces (as its search), never one it was not given.
    assert used(app) == {"Alice grows basil at home", "Alice grows a startup at work"}
    assert used(app, namespace="home") == {"Alice grows basil at home"}
    assert used(staff, agent_id="notes", namespace="garden") == {"Alice grows tomatoes"}
    assert len(used(staff)) == 3
