"""Bad input never breaks a page: text is cleaned where it enters storage, what older versions
stored is cleaned where it is read, and hostile ids and numbers get a clear 4xx."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from chat.tools import ToolContext, run_tool
from memory import keys, working
from memory.extraction import dead_letters, queue
from memory.extraction.types import TurnMessage
from memory.prompt import build_prompt
from memory.query import MemoryFilter
from memory.search import search_memories
from memory.selectors import get_memory, memory_history
from memory.services import add_memory, update_memory
from memory.types import InvalidInput, Scope
from tests.chat_helpers import make_user
from tests.memory_helpers import ANYONE, STAFF, USER

pytestmark = pytest.mark.django_db

LONE = "\ud83d"  # the first half of an emoji's surrogate pair, alone


def _staff_client() -> Client:
    user = get_user_model().objects.create_user("vera", password="pw-vera-12345", is_staff=True)
    for codename in ("view_memories", "change_memories"):
        user.user_permissions.add(Permission.objects.get(content_type__app_label="memory", codename=codename))
    client = Client()
    client.force_login(user)
    return client


def _as_old_code_stored_it(redis_client: Any, *, session_id: str, user_id: str, memory_id: str) -> None:
    """What the previous version wrote for a message with a lone surrogate: `json.dumps` escapes it,
    so Redis took it, and it came back as a str no page could encode."""
    content = f"I love {LONE} pizza"
    message = {
        "id": "01OLD",
        "role": "user",
        "content": content,
        "at": time.time(),
        "tokens": 9,
        "meta": {"turn_id": "t-old", "client_id": f"c{LONE}"},
    }
    redis_client.rpush(keys.session_messages(session_id), json.dumps(message))
    # The turn's trace holds the message as its query.
    trace_key = keys.session_traces(session_id)
    trace = json.loads(redis_client.hget(trace_key, "t-old"))
    trace["query"] = content
    redis_client.hset(trace_key, "t-old", json.dumps(trace))
    # A history entry whose reason quotes the message (as a forget request's did).
    # The old code wrote every memory's "added" entry to its list at once; this one rebuilds it.
    event = memory_history(memory_id=memory_id)[0].as_dict()
    if not redis_client.exists(keys.history(memory_id)):
        redis_client.rpush(keys.history(memory_id), json.dumps(event))
    event["reason"] = f"user asked to forget: {LONE}"
    redis_client.rpush(keys.history(memory_id), json.dumps(event))
    # The turn, queued for extraction and then parked as a dead letter.
    turn = queue.QueuedTurn(1, "t-old", user_id, session_id, "engram", "default", "", [
        TurnMessage("user", content, time.time(), "t-old"),
    ])  # fmt: skip
    dead_letters.dead_letter(session_id=session_id, user_id=user_id, turns=[turn], error="boom", entries=[])


def test_a_lone_surrogate_stored_by_the_old_code_renders_on_every_page(redis_client: Any) -> None:
    user, user_id = make_user("alice")
    working.ensure_session(session_id="s1", user_id=user_id)
    build_prompt(user_id=user_id, session_id="s1", message="I love pizza", turn_id="t-old")
    memory = add_memory(text="User loves pizza", scope=Scope(user_id=user_id), actor=USER)
    _as_old_code_stored_it(redis_client, session_id="s1", user_id=user_id, memory_id=memory.id)

    owner = Client()
    owner.force_login(user)
    staff = _staff_client()
    pages = [
        (owner, "/chat/s1/", True),
        (owner, "/chat/s1/messages", True),
        (staff, reverse("inspector:session", kwargs={"session_id": "s1"}), True),
        (staff, reverse("inspector:export", kwargs={"user_id": user_id}), True),
        (staff, reverse("inspector:memory", kwargs={"memory_id": memory.id}), True),
        (staff, reverse("inspector:inspector"), False),  # lists the dead letter, not its text
    ]
    for client, url, shows_text in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode("utf-8")  # strict: the page is valid UTF-8
        if shows_text:
            assert "\ufffd" in body, f"{url} shows the replacement character where the bad one was"
    export = json.loads(staff.get(reverse("inspector:export", kwargs={"user_id": user_id})).content)
    assert export["sessions"][0]["messages"][0]["content"] == "I love \ufffd pizza"
    # The readers behind the pages, and the worker's view of the parked turn.
    assert working.get_messages(session_id="s1")[0].content == "I love \ufffd pizza"
    assert memory_history(memory_id=memory.id)[-1].reason == "user asked to forget: \ufffd"
    assert dead_letters.dead_letters()[0].turns[0].messages[0].content == "I love \ufffd pizza"


def test_text_entering_storage_is_cleaned(redis_client: Any) -> None:
    working.ensure_session(session_id="s1", user_id="alice", title=f"Trip {LONE}")
    saved = working.append_message(session_id="s1", role="user", content=f"hi {LONE}\x00 there")
    assert saved.content == "hi \ufffd there"
    assert working.get_session(session_id="s1").title == "Trip \ufffd"  # type: ignore[union-attr]
    # A pair stays the emoji it encodes.
    assert (
        working.append_message(session_id="s1", role="user", content="\ud83d\ude00").content == "\U0001f600"
    )
    memory = add_memory(text=f"User likes {LONE} tea", scope=Scope(user_id="alice"), actor=USER, reason=LONE)
    assert get_memory(owner=ANYONE, memory_id=memory.id).text == "User likes \ufffd tea"
    assert memory_history(memory_id=memory.id)[0].reason == "\ufffd"


@pytest.mark.parametrize("text", ["\x00", "\x00\x00\x00", " \x00 \x07 ", "\x1b"])
def test_text_of_nothing_but_control_characters_is_refused_clearly(text: str, redis_client: Any) -> None:
    working.ensure_session(session_id="s1", user_id="alice")
    ctx = ToolContext(user_id="alice", session_id="s1", model="m")
    result = run_tool(ctx, name="remember", raw_arguments=json.dumps({"text": text})).result
    assert "error" in result and "empty" in result["error"], result
    with pytest.raises(InvalidInput, match="empty"):
        add_memory(text=text, scope=Scope(user_id="alice"), actor=USER)
    memory = add_memory(text="User likes tea", scope=Scope(user_id="alice"), actor=USER)
    with pytest.raises(InvalidInput, match="empty"):
        update_memory(owner=ANYONE, memory_id=memory.id, text=text, actor=STAFF)
    # The inspector's edit form says so too, and nothing changes.
    staff = _staff_client()
    response = staff.post(
        reverse("inspector:edit", kwargs={"memory_id": memory.id}),
        {"text": text, "type": "semantic", "topics": "", "reason": "", "expected_version": "1"},
    )
    assert response.status_code == 400
    assert get_memory(owner=ANYONE, memory_id=memory.id).text == "User likes tea"


def test_a_tool_call_with_a_lone_surrogate_is_remembered_cleaned(redis_client: Any) -> None:
    working.ensure_session(session_id="s1", user_id="alice")
    ctx = ToolContext(user_id="alice", session_id="s1", model="m")
    raw = '{"text": "User likes \\ud83d tea"}'  # as a model's JSON may carry it
    result = run_tool(ctx, name="remember", raw_arguments=raw).result
    assert result["remembered"]["text"] == "User likes \ufffd tea"


@pytest.mark.parametrize("memory_id", ["x" * 300, "a\tb", "a\nb", "a\x00b", "a\rb", "\x7f"])
def test_forgetting_a_memory_by_a_hostile_id_is_a_404(memory_id: str, client: Client) -> None:
    user, _ = make_user("alice")
    client.force_login(user)
    from urllib.parse import quote

    response = client.post(f"/chat/me/memories/{quote(memory_id, safe='')}/forget")
    assert response.status_code == 404


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("bound", ["created_after", "created_before", "updated_after", "event_before"])
def test_nan_and_infinity_are_not_times(value: float, bound: str) -> None:
    bounds: dict[str, Any] = {bound: value}
    with pytest.raises(InvalidInput, match="finite"):
        MemoryFilter.build(user_id="alice", **bounds)


def test_a_json_filter_with_nan_is_refused_before_it_reaches_the_engine(redis_client: Any) -> None:
    add_memory(text="User likes tea", scope=Scope(user_id="alice"), actor=USER)
    body: dict[str, Any] = json.loads(
        '{"created_after": NaN, "updated_before": Infinity}'
    )  # Python's json accepts both
    with pytest.raises(InvalidInput):
        search_memories(filter=MemoryFilter.build(user_id="alice", **body), text="tea")


@pytest.mark.parametrize(
    "query",
    [
        "page=NaN",
        "page=Infinity",
        "page=-Infinity",
        "page=1e400",
        "topic=%00",
        "q=%00",
        "type=NaN",
        "sort=NaN",
    ],
)
def test_the_inspectors_filters_answer_bad_numbers_with_400(query: str, redis_client: Any) -> None:
    add_memory(text="User likes tea", scope=Scope(user_id="alice"), actor=USER)
    response = _staff_client().get(reverse("inspector:user", kwargs={"user_id": "alice"}) + "?" + query)
    assert response.status_code == 400, query
