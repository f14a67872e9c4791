"""A client nobody here wrote: Redis Agent Memory Server's own `agent-memory-client` (0.14.0, a
pinned dev dependency, unmodified) against a live Engram (daphne in a subprocess on loopback, as
`make run` serves it), with the API key in the URL as a team switching servers would write it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from agent_memory_client import MemoryAPIClient, MemoryClientConfig, create_memory_client
from agent_memory_client.exceptions import MemoryNotFoundError, MemoryServerError
from agent_memory_client.filters import Namespace, Topics, UserId
from agent_memory_client.models import ClientMemoryRecord, MemoryMessage, MemoryTypeEnum, WorkingMemory

from tests.api_helpers import make_key

pytestmark = [
    pytest.mark.slow,
    pytest.mark.shared_server,
    # get_or_create_working_memory calls the deprecated get_working_memory itself.
    pytest.mark.filterwarnings("ignore:get_working_memory is deprecated:DeprecationWarning"),
]


def _url(live_url: str, raw_key: str) -> str:
    return live_url.replace("http://", f"http://engram:{raw_key}@")


@pytest.fixture
def keys(live_url: str) -> dict[str, str]:
    """Two apps sharing a namespace name, each confined to its own agent."""
    _, app_a = make_key("app-a", role="app", agent_id="support-bot", namespaces=("shop", "other"))
    _, app_b = make_key("app-b", role="app", agent_id="sales-bot", namespaces=("shop",))
    return {"a": app_a, "b": app_b}


@pytest.fixture
async def client_a(live_url: str, keys: dict[str, str]) -> AsyncIterator[MemoryAPIClient]:
    client = await create_memory_client(_url(live_url, keys["a"]), timeout=60.0, default_namespace="shop")
    yield client
    await client.close()


@pytest.fixture
async def client_b(live_url: str, keys: dict[str, str]) -> AsyncIterator[MemoryAPIClient]:
    client = await create_memory_client(_url(live_url, keys["b"]), timeout=60.0, default_namespace="shop")
    yield client
    await client.close()


def _texts(prompt: dict[str, Any]) -> list[str]:
    return [m["content"]["text"] for m in prompt["messages"]]


async def test_every_call_the_client_shares_with_engram_round_trips(client_a: MemoryAPIClient) -> None:
    health = await client_a.health_check()
    assert health.now > 1_700_000_000_000, "milliseconds since the epoch, as AMS answers"

    # Working memory: a new session is created on first use (GET 404 -> PUT), then replaced whole.
    created, empty = await client_a.get_or_create_working_memory("chat-1", user_id="alice")
    assert created and empty.messages == [] and empty.session_id == "chat-1"
    again, _ = await client_a.get_or_create_working_memory("chat-1", user_id="alice")
    assert not again, "found the second time, not created again"
    conversation = WorkingMemory(
        session_id="chat-1",
        user_id="alice",
        messages=[
            MemoryMessage(role="user", content="I am planning a trip to Kyoto in April"),
            MemoryMessage(role="assistant", content="Cherry blossom season, lovely."),
        ],
        data={"trip": {"city": "Kyoto"}},
        context="The user is planning travel.",
    )
    put = await client_a.put_working_memory("chat-1", conversation, user_id="alice")
    assert [m.content for m in put.messages] == [m.content for m in conversation.messages]
    _, stored = await client_a.get_or_create_working_memory("chat-1", user_id="alice")
    assert [(m.role, m.content) for m in stored.messages] == [
        ("user", "I am planning a trip to Kyoto in April"),
        ("assistant", "Cherry blossom season, lovely."),
    ]
    assert [m.id for m in stored.messages] == [m.id for m in conversation.messages]
    assert stored.data == {"trip": {"city": "Kyoto"}} and stored.context == "The user is planning travel."
    shorter = WorkingMemory(
        session_id="chat-1", user_id="alice", messages=[MemoryMessage(role="user", content="hi")]
    )
    replaced = await client_a.put_working_memory("chat-1", shorter, user_id="alice")
    assert [m.content for m in replaced.messages] == ["hi"] and not replaced.data, (
        "a PUT replaces, never appends"
    )
    await client_a.put_working_memory("chat-1", conversation, user_id="alice")
    listed = await client_a.list_sessions(user_id="alice")
    assert listed.sessions == ["chat-1"] and listed.total == 1

    # Long-term memory: create, then find it by search and by id.
    tea = ClientMemoryRecord(
        text="User likes green tea in the morning",
        user_id="alice",
        memory_type=MemoryTypeEnum.SEMANTIC,
        topics=["drinks"],
        entities=["green tea"],
    )
    other = ClientMemoryRecord(
        text="User's sister lives in Oslo", user_id="alice", memory_type=MemoryTypeEnum.EPISODIC
    )
    ack = await client_a.create_long_term_memory([tea, other])
    assert ack.status.startswith("ok")
    found = await client_a.search_long_term_memory(
        text="what does the user drink in the morning", user_id=UserId(eq="alice")
    )
    assert found.memories and found.memories[0].id == tea.id, [m.text for m in found.memories]
    assert found.memories[0].dist < 1.0 and found.total >= 1
    by_topic = await client_a.search_long_term_memory(
        text="drink", user_id=UserId(eq="alice"), topics=Topics(any=["drinks"])
    )
    assert [m.id for m in by_topic.memories] == [tea.id]
    got = await client_a.get_long_term_memory(tea.id)
    assert (got.text, got.user_id, got.namespace, got.memory_type.value) == (
        "User likes green tea in the morning",
        "alice",
        "shop",
        "semantic",
    )
    assert got.topics == ["drinks"]

    # Edit shows on the next read, and search finds the new text.
    edited = await client_a.edit_long_term_memory(tea.id, {"text": "User likes jasmine tea in the morning"})
    assert edited.text == "User likes jasmine tea in the morning"
    assert (await client_a.get_long_term_memory(tea.id)).text == "User likes jasmine tea in the morning"
    jasmine = await client_a.search_long_term_memory(text="jasmine tea", user_id=UserId(eq="alice"))
    assert jasmine.memories[0].id == tea.id

    # memory_prompt: the session's messages, the relevant memory, then the question.
    prompt = await client_a.memory_prompt(
        query="What tea should I pack for the trip?", session_id="chat-1", user_id="alice"
    )
    texts = _texts(prompt)
    assert texts[-1] == "What tea should I pack for the trip?"
    assert any("jasmine tea" in t for t in texts), texts
    assert "I am planning a trip to Kyoto in April" in texts
    assert "The user is planning travel." in "\n".join(texts)
    assert tea.id in [m["id"] for m in prompt["long_term_memories"]]
    without_session = await client_a.hydrate_memory_prompt(
        query="what tea?", user_id={"eq": "alice"}, limit=3
    )
    assert any("jasmine tea" in t for t in _texts(without_session))

    # Delete: the memory is gone for get (MemoryNotFoundError) and for search.
    deleted = await client_a.delete_long_term_memories([tea.id])
    assert deleted.status == "ok, deleted 1 memories"
    with pytest.raises(MemoryNotFoundError):
        await client_a.get_long_term_memory(tea.id)
    after = await client_a.search_long_term_memory(text="jasmine tea", user_id=UserId(eq="alice"))
    assert tea.id not in [m.id for m in after.memories]
    assert (await client_a.get_long_term_memory(other.id)).text == "User's sister lives in Oslo"

    # Deleting working memory: the next get_or_create starts afresh.
    assert (await client_a.delete_working_memory("chat-1", user_id="alice")).status == "ok"
    recreated, fresh = await client_a.get_or_create_working_memory("chat-1", user_id="alice")
    assert recreated and fresh.messages == []


async def test_a_wrong_or_missing_key_is_refused(live_url: str, keys: dict[str, str]) -> None:
    for base_url in (_url(live_url, "eng_" + "x" * 40), _url(live_url, keys["a"] + "x"), live_url):
        client = MemoryAPIClient(MemoryClientConfig(base_url=base_url))
        try:
            assert (await client.health_check()).now > 0, "health is public, as in AMS"
            with pytest.raises(MemoryServerError) as refused:
                await client.list_sessions(user_id="alice")
            assert refused.value.status_code == 401
            assert "API key" in str(refused.value)
            with pytest.raises(MemoryServerError):
                await client.search_long_term_memory(text="anything")
            with pytest.raises(MemoryServerError):
                await client.create_long_term_memory([ClientMemoryRecord(text="sneaky")])
        finally:
            await client.close()


async def test_an_app_key_never_sees_another_apps_memories_or_sessions(
    client_a: MemoryAPIClient, client_b: MemoryAPIClient
) -> None:
    secret = ClientMemoryRecord(
        text="User's locker code is 4711", user_id="alice", memory_type=MemoryTypeEnum.SEMANTIC
    )
    await client_a.create_long_term_memory([secret])
    await client_a.put_working_memory(
        "shared-id",
        WorkingMemory(
            session_id="shared-id", user_id="alice", messages=[MemoryMessage(role="user", content="A's chat")]
        ),
        user_id="alice",
    )

    # Same user id, same namespace name, same session id: B still sees nothing of A's.
    seen = await client_b.search_long_term_memory(text="locker code", user_id=UserId(eq="alice"))
    assert seen.memories == [] and seen.total == 0
    listed = await client_b.search_long_term_memory(text="", user_id=UserId(eq="alice"))
    assert listed.memories == []
    with pytest.raises(MemoryNotFoundError):
        await client_b.get_long_term_memory(secret.id)
    with pytest.raises(MemoryNotFoundError):
        await client_b.edit_long_term_memory(secret.id, {"text": "User's locker code is 0000"})
    assert (await client_b.delete_long_term_memories([secret.id])).status == "ok, deleted 0 memories"
    prompt = await client_b.memory_prompt(
        query="what is my locker code?", session_id="shared-id", user_id="alice"
    )
    assert not any("4711" in t or "A's chat" in t for t in _texts(prompt))
    assert (await client_b.list_sessions(user_id="alice")).sessions == []
    with pytest.raises(MemoryNotFoundError):
        await client_b.get_working_memory("shared-id", user_id="alice")
    # B cannot take A's memory id over either (told only that it cannot have it, not whose it
    # is), nor reach a namespace it lacks.
    with pytest.raises(MemoryServerError) as taken:
        await client_b.create_long_term_memory(
            [ClientMemoryRecord(id=secret.id, text="mine now", user_id="alice")]
        )
    assert taken.value.status_code == 422 and "cannot be used" in str(taken.value)
    with pytest.raises(MemoryServerError) as forbidden:
        await client_b.search_long_term_memory(text="locker", namespace=Namespace(eq="other"))
    assert forbidden.value.status_code == 403

    # A's memory and session are as A left them.
    kept = await client_a.get_long_term_memory(secret.id)
    assert (kept.text, kept.user_id) == ("User's locker code is 4711", "alice")
    _, session = await client_a.get_or_create_working_memory("shared-id", user_id="alice")
    assert [m.content for m in session.messages] == ["A's chat"]
    found = await client_a.search_long_term_memory(text="locker code", user_id=UserId(eq="alice"))
    assert [m.id for m in found.memories] == [secret.id]
