"""Issue 16 item 1 (users): counts by type and export, confined for app keys; erase for staff keys
only, with a receipt, leaving nothing of the user in Redis."""

from __future__ import annotations

import json
from typing import Any

import pytest

from memory import keys, working
from memory.prompt import build_prompt
from memory.selectors import get_memory
from memory.services import add_memory, delete_memory
from memory.types import MemoryType, Scope
from tests.api_helpers import ApiClient, make_key
from tests.memory_helpers import ANYONE, USER, everything_in_redis

pytestmark = pytest.mark.django_db

ERASED = "api-erz-9w"
WORDS = ("Quillfeather", "Zanzibarro")


@pytest.fixture
def staff(redis_client: Any) -> ApiClient:
    return ApiClient(make_key("staff")[1])


@pytest.fixture
def app(redis_client: Any) -> ApiClient:
    return ApiClient(make_key("bot", role="app", agent_id="bot", namespaces=["ns1", "ns2"])[1])


def _memories(user_id: str = "alice") -> dict[str, Any]:
    made = {
        "mine": add_memory(text="Alice likes tea", scope=Scope(user_id, "bot", "ns1"), actor=USER),
        "mine_event": add_memory(
            text="Alice ran a race", type=MemoryType.EPISODIC, scope=Scope(user_id, "bot", "ns2"), actor=USER
        ),
        "other_agent": add_memory(
            text="Alice likes coffee", scope=Scope(user_id, "rival", "ns1"), actor=USER
        ),
        "other_ns": add_memory(text="Alice likes juice", scope=Scope(user_id, "bot", "secret"), actor=USER),
        "chat": add_memory(text="Alice lives in Oslo", scope=Scope(user_id), actor=USER),
    }
    return made


def test_counts_by_type_are_confined_for_an_app(staff: ApiClient, app: ApiClient) -> None:
    _memories()
    assert staff.get("/api/v1/users/alice/counts").json() == {
        "user_id": "alice",
        "total": 5,
        "by_type": {"semantic": 4, "episodic": 1},
    }
    assert app.get("/api/v1/users/alice/counts").json() == {
        "user_id": "alice",
        "total": 2,
        "by_type": {"semantic": 1, "episodic": 1},
    }
    assert app.get("/api/v1/users/nobody/counts").json()["total"] == 0


def test_an_apps_export_holds_only_its_own_memories_and_sessions(staff: ApiClient, app: ApiClient) -> None:
    made = _memories()
    gone = add_memory(text="Alice had a cat", scope=Scope("alice", "bot", "ns1"), actor=USER)
    delete_memory(memory_id=gone.id, owner=ANYONE, actor=USER)
    hidden_gone = add_memory(text="Alice had a dog", scope=Scope("alice", "rival", "ns1"), actor=USER)
    delete_memory(memory_id=hidden_gone.id, owner=ANYONE, actor=USER)
    app.put("/api/v1/sessions/s1", {"user_id": "alice", "messages": [{"role": "user", "content": "hi"}]})
    working.ensure_session(session_id="chat-1", user_id="alice")
    working.append_message(session_id="chat-1", role="user", content="chat secret")

    exported = app.get("/api/v1/users/alice/export")
    assert exported.status_code == 200
    data = exported.json()
    assert {m["id"] for m in data["memories"]} == {made["mine"].id, made["mine_event"].id}
    assert [m["id"] for m in data["deleted_memories"]] == [gone.id]
    assert [s["id"] for s in data["sessions"]] == ["s1"]
    assert data["exported_by"] == "api-key:bot"
    text = json.dumps(data)
    for hidden in ("coffee", "juice", "Oslo", "dog", "chat secret"):
        assert hidden not in text, hidden
    # Staff export everything, with history.
    everything = staff.get("/api/v1/users/alice/export").json()
    assert len(everything["memories"]) == 5 and len(everything["deleted_memories"]) == 2
    assert {s["id"] for s in everything["sessions"]} == {"bot/s1", "chat-1"}
    assert all(m["history"] for m in everything["memories"])


def test_only_a_staff_key_erases_and_a_wrong_confirmation_erases_nothing(
    staff: ApiClient, app: ApiClient
) -> None:
    made = _memories()
    refused = app.post("/api/v1/users/alice/erase", {"confirm": "alice"})
    assert refused.status_code == 403 and refused["Content-Type"] == "application/problem+json"
    unconfirmed = staff.post("/api/v1/users/alice/erase", {"confirm": "bob"})
    assert unconfirmed.status_code == 422
    assert get_memory(memory_id=made["mine"].id, owner=ANYONE).text == "Alice likes tea"


def _leftovers(client: Any) -> dict[str, str]:
    return {
        place: value
        for place, value in everything_in_redis(client).items()
        if any(n in place or n in value for n in (ERASED, *WORDS))
    }


def test_erase_through_the_api_leaves_nothing_of_the_user(
    staff: ApiClient, app: ApiClient, redis_client
) -> None:
    mine = add_memory(
        text=f"{ERASED} keeps a parrot named {WORDS[0]}", scope=Scope(ERASED, "bot", "ns1"), actor=USER
    )
    app.put(
        "/api/v1/sessions/trip",
        {
            "user_id": ERASED,
            "messages": [{"role": "user", "content": f"We sail to {WORDS[1]}"}],
            "data": {"k": WORDS[1]},
        },
    )
    build_prompt(user_id=ERASED, session_id="bot/trip", message=f"Tell me about {WORDS[0]}", turn_id="t1")
    other = add_memory(text="Bob keeps a parrot too", scope=Scope("bob"), actor=USER)
    assert _leftovers(redis_client), "the setup stored the user's data"

    receipt = staff.post(f"/api/v1/users/{ERASED}/erase", {"confirm": ERASED})

    assert receipt.status_code == 200, receipt.content
    body = receipt.json()
    assert body["user_id"] == ERASED and mine.id in body["memory_ids"] and body["session_ids"] == ["bot/trip"]
    assert body["counts"]["memories"] == 1 and body["counts"]["traces"] == 1
    left = _leftovers(redis_client)
    [audit_place] = list(left)  # the erase's own audit event (with counts), nothing else
    assert audit_place.startswith(keys.mutation_stream() + "#")
    assert not any(word in left[audit_place] for word in WORDS)
    assert "api-key:staff" in left[audit_place], "the key is the actor in history"
    assert app.get(f"/api/v1/users/{ERASED}/counts").json()["total"] == 0
    assert app.get("/api/v1/sessions/trip").status_code == 404
    assert get_memory(memory_id=other.id, owner=ANYONE).text == "Bob keeps a parrot too"


def test_an_apps_export_has_the_sessions_its_list_has(app: ApiClient, staff: ApiClient) -> None:
    """One rule for which sessions are an app's (`ApiCaller.admits_session`), in the list and the
    export alike: not the chat's (even one filed under the app's agent id), not another app's."""
    message = {"user_id": "alice", "messages": [{"role": "user", "content": "hi"}]}
    app.put("/api/v1/sessions/s1", message)
    app.put("/api/v1/sessions/s2", message)
    working.ensure_session(session_id="chat-as-bot", user_id="alice", agent_id="bot")
    staff.put("/api/v1/sessions/other", {**message, "agent_id": "rival"})
    listed = {s["id"] for s in app.get("/api/v1/sessions?user_id=alice").json()["sessions"]}
    exported = {s["id"] for s in app.get("/api/v1/users/alice/export").json()["sessions"]}
    assert listed == exported == {"s1", "s2"}


def test_export_user_takes_the_callers_rule_for_sessions(redis_client: Any) -> None:
    from memory.access import Owner
    from memory.export import export_user

    working.ensure_session(session_id="bot/s1", user_id="alice", agent_id="bot")
    working.ensure_session(session_id="chat-as-bot", user_id="alice", agent_id="bot")
    data = export_user(
        user_id="alice",
        exported_by="test",
        owner=Owner.app(agent_id="bot", namespaces=("ns1",), user_id="alice"),
        admits_session=lambda session: session.id.startswith("bot/"),
    )
    assert [s["id"] for s in data["sessions"]] == ["bot/s1"]
