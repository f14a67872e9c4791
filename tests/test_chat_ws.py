"""The chat socket with Channels' WebsocketCommunicator, a real Redis and the scripted LLM server."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async

from chat import tools
from chat.turns import group_name
from devtools.llm_server import ErrorReply, Reply, ToolCallReply
from memory import keys, working
from memory.query import MemoryFilter
from memory.selectors import list_memories, memory_history
from memory.services import add_memory
from memory.types import ActorKind, Scope
from tests.chat_helpers import (
    anonymous_cookie,
    anonymous_memory_id,
    communicator,
    frames_until,
    make_user,
    open_session,
    refusal_code,
    session_cookie_for_user,
)
from tests.memory_helpers import USER

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def llm(product_llm, settings):
    settings.CHAT_MODEL = "chat-model"
    return product_llm


@pytest.fixture
def alice():
    user, memory_id = make_user("alice")
    return user, memory_id, session_cookie_for_user(user)


async def _connect(session_id, cookie, **kwargs):
    comm = communicator(session_id, cookie, **kwargs)
    connected, code = await comm.connect()
    return comm, connected, code


async def test_a_reply_streams_token_by_token_and_the_turn_is_saved(llm, alice, redis_client):
    _user, memory_user, cookie = alice
    await sync_to_async(add_memory)(
        text="User's dog is called Rex", scope=Scope(user_id=memory_user), actor=USER
    )
    session_id = await sync_to_async(open_session)(memory_user)
    # Chunks further apart than the frame window each get their own frame.
    llm.enqueue(
        Reply(
            "Your dog is called Rex.",
            chunks=["Your ", "dog ", "is called ", "Rex."],
            delay_between_chunks=0.12,
        )
    )
    comm, connected, _ = await _connect(session_id, cookie)
    assert connected
    try:
        await comm.send_json_to({"type": "message", "text": "What's my dog called?", "client_id": "c1"})
        frames = await frames_until(comm, "done")
    finally:
        await comm.disconnect()
    assert frames[0]["type"] == "turn_started" and frames[0]["client_id"] == "c1"
    assert [f["text"] for f in frames if f["type"] == "delta"] == ["Your ", "dog ", "is called ", "Rex."]
    done = frames[-1]
    assert done["text"] == "Your dog is called Rex."
    # Alice is no staff: the memory as her memories page says it, no scores (issue 14).
    assert done["memories"][0]["text"] == "Your dog is called Rex."
    assert "scores" not in done["memories"][0]
    memory_id = done["memories"][0]["id"]
    assert done["memories"][0]["link"] == f"/chat/me/memories/?memory={memory_id}#memory-{memory_id}"
    request = llm.last_chat_request()
    assert request.stream and request.model == "chat-model"
    assert "User's dog is called Rex" in request.messages[0]["content"]
    assert {t["function"]["name"] for t in request.tools} >= {
        "search_memory",
        "remember",
        "forget",
        "lookup_order",
    }
    messages = await sync_to_async(working.get_messages)(session_id=session_id)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "What's my dog called?"),
        ("assistant", "Your dog is called Rex."),
    ]
    trace = await sync_to_async(working.get_trace)(session_id=session_id, turn_id=done["turn_id"])
    assert trace is not None and trace["memories"][0]["text"] == "User's dog is called Rex"
    assert redis_client.xlen(keys.turn_stream()) == 1, "queued for background extraction"


async def test_the_sample_tool_result_is_cached_so_the_second_call_never_happens(llm, alice):
    _, memory_user, cookie = alice
    session_id = await sync_to_async(open_session)(memory_user)
    tools.ORDER_BACKEND_CALLS.clear()
    for _ in range(2):
        llm.enqueue(ToolCallReply(calls=[("lookup_order", {"order_id": "A-17"})]), Reply("It has shipped."))
    comm, _, _ = await _connect(session_id, cookie)
    try:
        tool_frames = []
        for n in range(2):
            await comm.send_json_to({"type": "message", "text": "Where is order A-17?", "client_id": f"c{n}"})
            frames = await frames_until(comm, "done")
            tool_frames += [f for f in frames if f["type"] == "tool"]
    finally:
        await comm.disconnect()
    assert tools.ORDER_BACKEND_CALLS == ["A-17"], (
        "the backend was called once; the second time came from cache"
    )
    assert [(f["name"], f["cached"]) for f in tool_frames] == [
        ("lookup_order", False),
        ("lookup_order", True),
    ]
    followup = llm.chat_requests()[-1].messages
    tool_message = next(m for m in followup if m["role"] == "tool")
    assert json.loads(tool_message["content"])["order_id"] == "A-17"


async def test_memory_tools_remember_search_and_forget(llm, alice):
    _, memory_user, cookie = alice
    session_id = await sync_to_async(open_session)(memory_user)
    llm.enqueue(
        ToolCallReply(calls=[("remember", {"text": "User loves opera"})]), Reply("I'll remember that.")
    )
    comm, _, _ = await _connect(session_id, cookie)
    try:
        await comm.send_json_to({"type": "message", "text": "Remember that I love opera", "client_id": "c1"})
        await frames_until(comm, "done")
        memory = (
            await sync_to_async(list_memories)(filter=MemoryFilter.build(user_id=memory_user))
        ).memories[0]
        assert memory.text == "User loves opera"
        actor = (await sync_to_async(memory_history)(memory_id=memory.id))[0].actor
        assert actor.kind == ActorKind.TOOL and actor.id == "remember" and actor.model == "chat-model"

        llm.enqueue(ToolCallReply(calls=[("search_memory", {"query": "opera"})]), Reply("You love opera."))
        await comm.send_json_to({"type": "message", "text": "What music do I like?", "client_id": "c2"})
        await frames_until(comm, "done")
        tool_result = json.loads(
            next(m for m in llm.chat_requests()[-1].messages if m["role"] == "tool")["content"]
        )
        assert tool_result["memories"][0]["id"] == memory.id

        llm.enqueue(ToolCallReply(calls=[("forget", {"memory_id": memory.id})]), Reply("Forgotten."))
        await comm.send_json_to({"type": "message", "text": "Forget that", "client_id": "c3"})
        await frames_until(comm, "done")
    finally:
        await comm.disconnect()
    assert (await sync_to_async(list_memories)(filter=MemoryFilter.build(user_id=memory_user))).memories == []


async def test_forget_refuses_another_users_memory(llm, alice):
    _, memory_user, cookie = alice
    other = await sync_to_async(add_memory)(text="Bob's secret", scope=Scope(user_id="user-999"), actor=USER)
    session_id = await sync_to_async(open_session)(memory_user)
    llm.enqueue(ToolCallReply(calls=[("forget", {"memory_id": other.id})]), Reply("Done."))
    comm, _, _ = await _connect(session_id, cookie)
    try:
        await comm.send_json_to({"type": "message", "text": "forget it", "client_id": "c1"})
        await frames_until(comm, "done")
    finally:
        await comm.disconnect()
    result = json.loads(next(m for m in llm.chat_requests()[-1].messages if m["role"] == "tool")["content"])
    assert result == {"error": "no such memory"}
    assert (await sync_to_async(list_memories)(filter=MemoryFilter.build(user_id="user-999"))).total == 1


async def test_an_llm_failure_is_shown_and_the_message_kept(llm, alice):
    _, memory_user, cookie = alice
    session_id = await sync_to_async(open_session)(memory_user)
    llm.enqueue(ErrorReply(status=503))
    comm, _, _ = await _connect(session_id, cookie)
    try:
        await comm.send_json_to({"type": "message", "text": "Hello?", "client_id": "c1"})
        frames = await frames_until(comm, "error")
        await comm.send_json_to({"type": "ping"})
        assert (await comm.receive_json_from())["type"] == "pong", "the socket stays usable"
    finally:
        await comm.disconnect()
    assert frames[-1]["code"] == "llm_http"
    assert "Your message is saved" in frames[-1]["message"]
    messages = await sync_to_async(working.get_messages)(session_id=session_id)
    assert [(m.role, m.content) for m in messages] == [("user", "Hello?")]


async def test_rate_limit_per_user(llm, alice, settings):
    settings.CHAT_RATE_LIMIT_PER_MINUTE = 2
    _, memory_user, cookie = alice
    session_id = await sync_to_async(open_session)(memory_user)
    comm, _, _ = await _connect(session_id, cookie)
    try:
        for n in range(2):
            await comm.send_json_to({"type": "message", "text": f"hi {n}", "client_id": f"c{n}"})
            await frames_until(comm, "done")
        await comm.send_json_to({"type": "message", "text": "one more", "client_id": "c9"})
        frame = await comm.receive_json_from()
    finally:
        await comm.disconnect()
    assert frame["type"] == "error" and frame["code"] == "rate_limited"


async def test_bad_frames_get_errors_and_other_sessions_are_untouched(llm, alice, settings):
    settings.MESSAGE_MAX_CHARS = 100
    settings.CHAT_MAX_FRAME_BYTES = 2048
    _, memory_user, cookie = alice
    first = await sync_to_async(open_session)(memory_user, "s-a")
    second = await sync_to_async(open_session)(memory_user, "s-b")
    comm, _, _ = await _connect(first, cookie)
    other, _, _ = await _connect(second, cookie)
    try:
        bad = [
            ("{not json", "bad_frame"),
            ("[1, 2]", "bad_frame"),
            (json.dumps({"type": "explode"}), "bad_frame"),
            (json.dumps({"type": "message", "text": "hi"}), "bad_frame"),
            (json.dumps({"type": "message", "text": "   ", "client_id": "c1"}), "empty_message"),
            (json.dumps({"type": "message", "text": "x" * 101, "client_id": "c2"}), "message_too_long"),
            (json.dumps({"type": "message", "text": "y" * 3000, "client_id": "c3"}), "frame_too_large"),
        ]
        for text, code in bad:
            await comm.send_to(text_data=text)
            frame = await comm.receive_json_from()
            assert (frame["type"], frame["code"]) == ("error", code), text[:30]
        await comm.send_to(bytes_data=b"\x00\x01")
        assert (await comm.receive_json_from())["code"] == "bad_frame"
        await other.send_json_to({"type": "message", "text": "still fine?", "client_id": "ok"})
        frames = await frames_until(other, "done")
        assert frames[-1]["text"] == "ok"
        await comm.send_json_to({"type": "ping"})
        assert (await comm.receive_json_from())["type"] == "pong"
    finally:
        await comm.disconnect()
        await other.disconnect()
    assert await sync_to_async(working.get_messages)(session_id=first) == []


async def test_a_resent_message_runs_once(llm, alice):
    _, memory_user, cookie = alice
    session_id = await sync_to_async(open_session)(memory_user)
    comm, _, _ = await _connect(session_id, cookie)
    try:
        await comm.send_json_to({"type": "message", "text": "once", "client_id": "same"})
        await frames_until(comm, "done")
        await comm.send_json_to({"type": "message", "text": "once", "client_id": "same"})
        frame = await comm.receive_json_from()
    finally:
        await comm.disconnect()
    assert frame == {"type": "duplicate", "client_id": "same"}
    assert len(await sync_to_async(working.get_messages)(session_id=session_id)) == 2


async def test_two_tabs_see_the_same_stream(llm, alice):
    _, memory_user, cookie = alice
    session_id = await sync_to_async(open_session)(memory_user)
    llm.enqueue(Reply("Hello from Engram"))
    tab1, _, _ = await _connect(session_id, cookie)
    tab2, _, _ = await _connect(session_id, cookie)
    try:
        await tab1.send_json_to({"type": "message", "text": "hi", "client_id": "c1"})
        first = await frames_until(tab1, "done")
        second = await frames_until(tab2, "done")
    finally:
        await tab1.disconnect()
        await tab2.disconnect()
    assert first == second
    assert second[0] == {
        "type": "turn_started",
        "turn_id": first[0]["turn_id"],
        "client_id": "c1",
        "text": "hi",
        "title": "hi",  # the chat's first message names it (issue 14), in every tab
    }


async def test_a_turn_finishes_even_if_the_socket_drops(llm, alice):
    _, memory_user, cookie = alice
    session_id = await sync_to_async(open_session)(memory_user)
    llm.enqueue(Reply("slow answer", delay=0.5))
    comm, _, _ = await _connect(session_id, cookie)
    await comm.send_json_to({"type": "message", "text": "hello", "client_id": "c1"})
    assert (await comm.receive_json_from())["type"] == "turn_started"
    await comm.disconnect()
    for _ in range(100):
        messages = await sync_to_async(working.get_messages)(session_id=session_id)
        if len(messages) == 2:
            break
        await asyncio.sleep(0.05)
    assert [m.content for m in messages] == ["hello", "slow answer"]


async def test_sockets_are_checked_for_owner_origin_and_identity(llm, alice):
    _, memory_user, cookie = alice
    _bob, bob_memory_user = await sync_to_async(make_user)("bob")
    bobs = await sync_to_async(open_session)(bob_memory_user, "s-bob")
    mine = await sync_to_async(open_session)(memory_user, "s-alice")
    attempts = [
        (bobs, cookie, "http://localhost", 4403),
        ("s-nope", cookie, "http://localhost", 4404),
        (mine, cookie, "http://evil.example", 4403),
        (mine, "sessionid=bogus", "http://localhost", 4401),
    ]
    for session_id, cookie_, origin, expected in attempts:
        comm = communicator(session_id, cookie_, origin=origin)
        try:
            # Accepted, then closed with the reason: a rejected handshake reaches a page as 1006.
            assert await refusal_code(comm) == expected, (session_id, origin)
        finally:
            await comm.disconnect()


async def test_an_anonymous_visitor_can_chat(llm):
    cookie = await sync_to_async(anonymous_cookie)("v42")
    session_id = await sync_to_async(open_session)(anonymous_memory_id("v42"))
    comm, connected, _ = await _connect(session_id, cookie)
    assert connected
    try:
        await comm.send_json_to({"type": "message", "text": "hi", "client_id": "c1"})
        frames = await frames_until(comm, "done")
    finally:
        await comm.disconnect()
    assert frames[-1]["text"] == "ok"


async def test_offline_mode_answers_from_memory_and_says_so(alice, settings):
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""
    _, memory_user, cookie = alice
    await sync_to_async(add_memory)(
        text="User's dog is called Rex", scope=Scope(user_id=memory_user), actor=USER
    )
    session_id = await sync_to_async(open_session)(memory_user)
    comm, _, _ = await _connect(session_id, cookie)
    try:
        await comm.send_json_to(
            {"type": "message", "text": "My dog Rex loves the beach. I live in Porto.", "client_id": "c1"}
        )
        frames = await frames_until(comm, "done")
    finally:
        await comm.disconnect()
    done = frames[-1]
    assert done["offline"] is True
    # The page says "offline" once (a banner), not every reply.
    assert "Offline mode" not in done["text"]
    assert "Your dog is called Rex." in done["text"]
    assert "I'll remember this" in done["text"] and "You live in Porto" in done["text"]
    assert done["text"].count("dog is called Rex") == 1, "what it already knows is not announced as new"
    assert "".join(f["text"] for f in frames if f["type"] == "delta") == done["text"]


async def test_fast_tokens_are_coalesced_into_fewer_frames(llm, alice):
    _, memory_user, cookie = alice
    session_id = await sync_to_async(open_session)(memory_user)
    words = [f"w{n} " for n in range(40)]
    llm.enqueue(Reply(chunks=words, delay_between_chunks=0.005))
    comm, _, _ = await _connect(session_id, cookie)
    try:
        await comm.send_json_to({"type": "message", "text": "count", "client_id": "c1"})
        frames = await frames_until(comm, "done")
    finally:
        await comm.disconnect()
    deltas = [f["text"] for f in frames if f["type"] == "delta"]
    assert "".join(deltas).strip() == "".join(words).strip()
    assert 1 < len(deltas) < 20, "one frame per ~50 ms, not one per token"


def _publishes(redis_client) -> int:
    return int(redis_client.info("commandstats").get("cmdstat_publish", {}).get("calls", 0))


async def test_a_turn_reaches_its_own_processs_tabs_without_the_channel_layer(llm, alice, redis_client):
    """The tabs in the turn's process get every frame directly: no PUBLISH, no pub/sub read back."""
    _, memory_user, cookie = alice
    session_id = await sync_to_async(open_session)(memory_user)
    llm.enqueue(Reply(chunks=["one ", "two ", "three."], delay_between_chunks=0.08))
    tab1, _, _ = await _connect(session_id, cookie)
    tab2, _, _ = await _connect(session_id, cookie)
    try:
        redis_client.config_resetstat()
        await tab1.send_json_to({"type": "message", "text": "count to three", "client_id": "c1"})
        first = await frames_until(tab1, "done")
        second = await frames_until(tab2, "done")
        assert _publishes(redis_client) == 0, "no frame went through Redis"
        assert await tab1.receive_nothing(timeout=0.3) and await tab2.receive_nothing(timeout=0.1)
    finally:
        await tab1.disconnect()
        await tab2.disconnect()
    assert first == second
    assert "".join(f["text"] for f in first if f["type"] == "delta") == "one two three."


async def test_a_tab_on_another_process_gets_every_frame_through_the_layer_and_this_one_once(
    llm, alice, redis_client
):
    """Another process's subscription to the chat's group (what a tab there makes) gets every frame
    through Redis; the tab here still gets each frame exactly once (its own echo is dropped)."""
    from channels.layers import get_channel_layer

    from core.redis_client import get_async_redis

    _, memory_user, cookie = alice
    session_id = await sync_to_async(open_session)(memory_user)
    layer = get_channel_layer()
    channel = layer._addressing._get_group_channel_name(group_name(session_id))
    elsewhere = get_async_redis().pubsub()
    await elsewhere.subscribe(channel)
    llm.enqueue(Reply(chunks=["one ", "two ", "three."], delay_between_chunks=0.08))
    tab, _, _ = await _connect(session_id, cookie)
    try:
        await tab.send_json_to({"type": "message", "text": "count to three", "client_id": "c1"})
        here = await frames_until(tab, "done")
        assert await tab.receive_nothing(timeout=0.5), "no frame twice"
        there: list[dict] = []
        deadline = asyncio.get_running_loop().time() + 10
        while not there or there[-1]["type"] != "done":
            assert asyncio.get_running_loop().time() < deadline, f"frames through Redis stopped after {there}"
            # None also when what was read is the subscription's confirmation.
            message = await elsewhere.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                there.append(layer.deserialize(message["data"])["frame"])
    finally:
        await tab.disconnect()
        await elsewhere.aclose()
    assert here == there
    assert "".join(f["text"] for f in there if f["type"] == "delta") == "one two three."
