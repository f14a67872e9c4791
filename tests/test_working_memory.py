"""Working memory: messages, summary, data, tool cache, TTLs and token counts."""

import time

import pytest

from memory import keys, tokens, working
from memory.types import BelongsToAnotherUser, InvalidInput, MemoryNotFound


@pytest.fixture
def session():
    return working.ensure_session(session_id="s-1", user_id="alice", title="First chat")


def test_messages_keep_order_and_count_tokens_exactly(session):
    working.append_message(session_id="s-1", role="user", content="Hello there, I am Alice.")
    working.append_message(session_id="s-1", role="assistant", content="Hi Alice!")
    messages = working.get_messages(session_id="s-1")
    assert [(m.role, m.content) for m in messages] == [
        ("user", "Hello there, I am Alice."),
        ("assistant", "Hi Alice!"),
    ]
    assert messages[0].exact_tokens
    assert messages[0].tokens == tokens.count("Hello there, I am Alice.") + tokens.MESSAGE_OVERHEAD_TOKENS
    assert tokens.count("Hello there, I am Alice.") == 7  # cl100k_base: Hello| there|,| I| am| Alice|.
    stored = working.get_session(session_id="s-1")
    assert stored is not None
    assert stored.message_count == 2
    assert stored.message_tokens == sum(m.tokens for m in messages)
    assert stored.exact_tokens
    assert [m.content for m in working.get_messages(session_id="s-1", last=1)] == ["Hi Alice!"]


def test_token_counts_fall_back_to_an_estimate_without_tiktoken_files(monkeypatch, tmp_path, session):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    tokens.reset_for_tests()
    try:
        count = tokens.count_tokens("twelve chars")
        assert count == tokens.TokenCount(3, exact=False)
        message = working.append_message(session_id="s-1", role="user", content="x" * 40)
        assert not message.exact_tokens
        assert message.tokens == 10 + tokens.MESSAGE_OVERHEAD_TOKENS
        stored = working.get_session(session_id="s-1")
        assert stored is not None and not stored.exact_tokens
    finally:
        tokens.reset_for_tests()


def test_summary_and_session_data(session):
    working.set_summary(session_id="s-1", summary="Alice introduced herself.")
    working.set_session_data(session_id="s-1", values={"mood": "happy", "step": 2})
    stored = working.get_session(session_id="s-1")
    assert stored is not None
    assert stored.summary == "Alice introduced herself."
    assert stored.summary_tokens == tokens.count("Alice introduced herself.")
    assert working.get_session_data(session_id="s-1") == {"mood": "happy", "step": 2}


def test_session_ttl_is_refreshed_on_activity(settings, redis_client):
    settings.WORKING_MEMORY_TTL_SECONDS = 100
    working.ensure_session(session_id="s-2", user_id="alice")
    redis_client.expire(keys.session("s-2"), 10)
    working.append_message(session_id="s-2", role="user", content="still here")
    assert 95 <= redis_client.ttl(keys.session("s-2")) <= 100
    assert 95 <= redis_client.ttl(keys.session_messages("s-2")) <= 100
    stored = working.get_session(session_id="s-2")
    assert stored is not None and stored.ttl_seconds is not None and 95 <= stored.ttl_seconds <= 100


def test_durable_sessions_do_not_expire(settings, redis_client):
    settings.WORKING_MEMORY_TTL_SECONDS = 100
    working.ensure_session(session_id="s-3", user_id="alice", durable=True)
    working.append_message(session_id="s-3", role="user", content="keep me")
    assert redis_client.ttl(keys.session("s-3")) == -1
    assert working.get_session(session_id="s-3").ttl_seconds is None  # type: ignore[union-attr]
    working.set_durable(session_id="s-3", durable=False)
    assert 95 <= redis_client.ttl(keys.session_messages("s-3")) <= 100


def test_expired_sessions_leave_the_users_list(settings):
    settings.WORKING_MEMORY_TTL_SECONDS = 1
    working.ensure_session(session_id="short", user_id="alice")
    settings.WORKING_MEMORY_TTL_SECONDS = 100
    working.ensure_session(session_id="long", user_id="alice")
    time.sleep(1.2)
    assert working.session_ids_for_user(user_id="alice") == ["long"]
    assert working.session_count(user_id="alice") == 1


def test_tool_cache_returns_a_cached_result_until_its_ttl(session):
    args = {"order_id": "A-1"}
    assert (
        working.get_cached_tool_result(session_id="s-1", tool="lookup_order", arguments=args)
        is working.CACHE_MISS
    )
    working.cache_tool_result(
        session_id="s-1", tool="lookup_order", arguments=args, result={"status": "shipped"}, ttl_seconds=1
    )
    assert working.get_cached_tool_result(
        session_id="s-1", tool="lookup_order", arguments={"order_id": "A-1"}
    ) == {"status": "shipped"}
    assert (
        working.get_cached_tool_result(session_id="s-1", tool="lookup_order", arguments={"order_id": "B"})
        is working.CACHE_MISS
    )
    time.sleep(1.2)
    assert (
        working.get_cached_tool_result(session_id="s-1", tool="lookup_order", arguments=args)
        is working.CACHE_MISS
    )


def test_errors_are_clear(session, settings):
    settings.MESSAGE_MAX_CHARS = 50
    with pytest.raises(InvalidInput, match="limit is 50"):
        working.append_message(session_id="s-1", role="user", content="x" * 51)
    with pytest.raises(InvalidInput, match="role must be"):
        working.append_message(session_id="s-1", role="hacker", content="hi")
    with pytest.raises(MemoryNotFound, match="no session"):
        working.append_message(session_id="missing", role="user", content="hi")
    # Not bad input: a conflict with what is stored (the API's 409).
    with pytest.raises(BelongsToAnotherUser, match="another user"):
        working.ensure_session(session_id="s-1", user_id="mallory")
    with pytest.raises(BelongsToAnotherUser, match="another user"):
        working.replace_session(session_id="s-1", user_id="mallory", messages=[], data={})
    assert working.get_messages(session_id="s-1") == []


def test_drop_oldest_keeps_the_newest_messages(session):
    for i in range(5):
        working.append_message(session_id="s-1", role="user", content=f"m{i}")
    assert working.drop_oldest_messages(session_id="s-1", count=3) == 3
    assert [m.content for m in working.get_messages(session_id="s-1")] == ["m3", "m4"]
