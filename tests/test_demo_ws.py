"""The memory demo socket (/ws/chat/<session>/demo/) through the real ASGI stack: who may open it,
the story so far on connect, a recall per chat turn, and the owner's background changes only."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from chat.identity import account_memory_id
from memory.extraction.pipeline import apply_plan
from memory.extraction.types import ExtractionPlan
from memory.services import add_memory, set_locked, set_pinned, set_ttl, update_memory
from memory.types import Scope, score_text
from tests.chat_helpers import (
    anonymous_cookie,
    anonymous_memory_id,
    communicator,
    frames_until,
    make_user,
    open_session,
    refusal_code,
    session_cookie_for_user,
    socket_to,
)
from tests.memory_helpers import ANYONE, STAFF, USER

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def offline(settings: Any) -> Any:
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""
    return settings


def _demo(session_id: str, cookie: str, **kwargs: Any) -> Any:
    return socket_to(f"/ws/chat/{session_id}/demo/", cookie, **kwargs)


def _user_with_chat(name: str, *, staff: bool = False) -> tuple[str, str, str]:
    user, memory_user = make_user(name, staff=staff)
    return session_cookie_for_user(user), open_session(memory_user, f"s-{name}"), memory_user


async def test_without_debug_only_staff_may_open_the_demo_of_their_own_chat(offline: Any) -> None:
    offline.DEBUG = False
    user_cookie, user_chat, _ = await sync_to_async(_user_with_chat)("alice")
    staff_cookie, staff_chat, _ = await sync_to_async(_user_with_chat)("sam", staff=True)
    cases = [
        (user_chat, user_cookie, 4403),  # the owner, but not staff
        (user_chat, "", 4401),  # signed out
        (user_chat, staff_cookie, 4403),  # staff, but another's chat
        ("no-such-chat", staff_cookie, 4404),
    ]
    for session_id, cookie, code in cases:
        comm = _demo(session_id, cookie)
        try:
            assert await refusal_code(comm) == code, (session_id, cookie, code)
        finally:
            await comm.disconnect()
    foreign = _demo(staff_chat, staff_cookie, origin="http://evil.example")
    try:
        assert await refusal_code(foreign) == 4403, "the origin is checked like the chat socket's"
    finally:
        await foreign.disconnect()
    own = _demo(staff_chat, staff_cookie)
    try:
        connected, _ = await own.connect()
        assert connected
        first = await own.receive_json_from(timeout=5)
        assert first == {"type": "snapshot", "recalls": [], "changes": []}
    finally:
        await own.disconnect()


async def test_with_debug_on_any_owner_may_open_it(offline: Any) -> None:
    offline.DEBUG = True
    cookie, session_id, _ = await sync_to_async(_user_with_chat)("alice")
    comm = _demo(session_id, cookie)
    try:
        connected, _ = await comm.connect()
        assert connected
        assert (await comm.receive_json_from(timeout=5))["type"] == "snapshot"
    finally:
        await comm.disconnect()
    visitor = await sync_to_async(anonymous_cookie)("visitor1")
    await sync_to_async(open_session)(anonymous_memory_id("visitor1"), "s-visitor")
    anonymous = _demo("s-visitor", visitor)
    try:
        connected, _ = await anonymous.connect()
        assert connected and (await anonymous.receive_json_from(timeout=5))["type"] == "snapshot"
    finally:
        await anonymous.disconnect()


async def test_each_turn_sends_its_recall_and_background_changes_of_the_owner_only(offline: Any) -> None:
    offline.DEBUG = False
    cookie, session_id, owner = await sync_to_async(_user_with_chat)("sam", staff=True)
    await sync_to_async(add_memory)(text="User lives in Lisbon", scope=Scope(user_id=owner), actor=USER)
    demo = _demo(session_id, cookie)
    chat = communicator(session_id, cookie)
    try:
        assert (await demo.connect())[0] and (await chat.connect())[0]
        story = await demo.receive_json_from(timeout=5)
        assert [c["text"] for c in story["changes"]] == ["User lives in Lisbon"], "the story so far"
        assert story["changes"][0]["decision"] == "add"

        await chat.send_json_to({"type": "message", "text": "Where do I live these days?", "client_id": "c1"})
        await frames_until(chat, "done")
        recall = await demo.receive_json_from(timeout=10)
        assert recall["type"] == "recall" and recall["query"] == "Where do I live these days?"
        [hit] = [h for h in recall["memories"] if h["text"] == "User lives in Lisbon"]
        assert hit["score"] > 0 and hit["score"] >= recall["cut"]
        assert hit["rule"].startswith("score ") and f">= cut {score_text(recall['cut'])}" in hit["rule"], hit

        other = await sync_to_async(add_memory)(
            text="Someone else likes tea", scope=Scope(user_id="user-2"), actor=USER
        )
        mine = await sync_to_async(add_memory)(text="User has a cat", scope=Scope(user_id=owner), actor=USER)
        change = await demo.receive_json_from(timeout=5)
        assert (change["type"], change["decision"], change["text"]) == ("change", "add", "User has a cat")
        assert change["actor"] == "user tester"
        await sync_to_async(update_memory)(
            owner=ANYONE, memory_id=mine.id, text="User has two cats", actor=USER
        )
        updated = await demo.receive_json_from(timeout=5)
        assert (updated["decision"], updated["text"]) == ("update", "User has two cats")
        # Events that carry no text name their memory by its text now, as the inspector feed does.
        await sync_to_async(set_ttl)(owner=ANYONE, memory_id=mine.id, ttl_seconds=3600, actor=USER)
        ttl = await demo.receive_json_from(timeout=5)
        assert (ttl["decision"], ttl["text"]) == ("ttl", "User has two cats"), ttl
        await sync_to_async(set_pinned)(owner=ANYONE, memory_id=mine.id, pinned=True, actor=STAFF)
        pinned = await demo.receive_json_from(timeout=5)
        assert (pinned["decision"], pinned["text"]) == ("pin", "User has two cats"), pinned
        await sync_to_async(update_memory)(
            owner=ANYONE, memory_id=other.id, text="Someone else likes coffee", actor=USER
        )
        assert await demo.receive_nothing(timeout=0.5), "another user's changes are not shown"
    finally:
        await chat.disconnect()
        await demo.disconnect()


async def test_an_extractor_step_that_changes_nothing_is_shown_as_a_no_op(offline: Any) -> None:
    offline.DEBUG = False
    cookie, session_id, owner = await sync_to_async(_user_with_chat)("sam", staff=True)
    known = await sync_to_async(add_memory)(
        text="User lives in Lisbon", scope=Scope(user_id=owner), actor=USER
    )
    plan = {
        "extractor": {"model": "rules", "prompt_version": "rules-1"},
        "scope": {"user_id": owner, "agent_id": "engram", "namespace": "default"},
        "from_seq": 1,
        "to_seq": 1,
        "source": ["t1"],
        "ops": [
            {
                "action": "noop",
                "candidate": {"text": "User lives in Lisbon", "type": "semantic"},
                "target_id": known.id,
                "reason": "already known",
            }
        ],
    }
    demo = _demo(session_id, cookie)
    try:
        assert (await demo.connect())[0]
        await demo.receive_json_from(timeout=5)  # the snapshot
        await sync_to_async(apply_plan)(
            ExtractionPlan.from_dict(plan), session_id=session_id, worker_id="w-test"
        )
        frame = await demo.receive_json_from(timeout=5)
        assert frame["type"] == "change"
        assert (frame["decision"], frame["text"], frame["reason"]) == (
            "no-op",
            "User lives in Lisbon",
            "already known",
        )
        assert frame["actor"] == "extractor w-test"
    finally:
        await demo.disconnect()


def test_the_chat_page_offers_the_demo_to_staff_or_on_debug_only(offline: Any) -> None:
    offline.DEBUG = False
    alice, alice_id = make_user("alice")
    sam, sam_id = make_user("sam", staff=True)
    for user, memory_user, shown in ((alice, alice_id, False), (sam, sam_id, True)):
        session_id = open_session(memory_user, f"s-{user.username}")
        client = Client()
        client.force_login(user)
        page = client.get(f"/chat/{session_id}/").content.decode()
        assert ('id="demo-toggle"' in page) is shown, user.username
        assert ("/demo/" in page) is shown
    offline.DEBUG = True
    client = Client()
    client.force_login(alice)
    assert 'id="demo-toggle"' in client.get("/chat/s-alice/").content.decode()
    assert account_memory_id(alice.pk) == alice_id


def test_every_kind_of_event_reads_as_one_plain_line() -> None:
    from chat.demo import change_frame

    expired = change_frame(
        {
            "event": "expired",
            "memory_id": "m1",
            "actor": {"kind": "system", "id": "retention"},
            "details": {"type": "semantic"},
            "at": 5,
        }
    )
    assert (expired["decision"], expired["text"], expired["memory_type"]) == ("expired", "", "semantic")
    assert expired["actor"] == "system retention"
    refused = change_frame(
        {"event": "change_refused", "details": {"proposed_text": "User lives in Porto"}, "reason": "locked"}
    )
    assert (refused["decision"], refused["text"]) == ("no-op", "User lives in Porto")
    assert refused["actor"] == "unknown"
    odd = change_frame({"event": "ttl_changed", "new": "junk", "old": None, "details": [1], "actor": "x"})
    assert (odd["decision"], odd["text"]) == ("ttl", "")


def test_the_story_so_far_names_ttl_and_lock_changes_by_the_memory_text(redis_client: Any) -> None:
    from chat.demo import recent_changes

    memory = add_memory(text="User works at the bakery", scope=Scope(user_id="u-story"), actor=USER)
    set_ttl(owner=ANYONE, memory_id=memory.id, ttl_seconds=600, actor=USER)
    set_locked(owner=ANYONE, memory_id=memory.id, locked=True, actor=STAFF)
    changes = recent_changes(user_id="u-story")
    assert [(c["decision"], c["text"]) for c in changes] == [
        ("add", "User works at the bakery"),
        ("ttl", "User works at the bakery"),
        ("lock", "User works at the bakery"),
    ]
