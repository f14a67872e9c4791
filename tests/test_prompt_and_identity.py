"""Prompt assembly with traces, identity moves and erasure."""

import pytest

from memory import keys, tokens, working
from memory.lifecycle import erase_user, move_identity
from memory.prompt import MEMORY_HEADER, SUMMARY_HEADER, build_prompt
from memory.query import MemoryFilter
from memory.search import search_memories
from memory.selectors import counts_by_type, get_memory, memory_history
from memory.services import add_memory, delete_memory, set_pinned
from memory.types import MemoryNotFound
from tests.memory_helpers import ANYONE, STAFF, USER, scope


@pytest.fixture
def chat_session():
    working.ensure_session(session_id="s-1", user_id="alice")
    for i in range(30):
        working.append_message(
            session_id="s-1", role="user" if i % 2 == 0 else "assistant", content=f"message {i} " * 20
        )
    working.set_summary(session_id="s-1", summary="Alice talked about her pets and her job.")
    add_memory(text="Alice's dog is a beagle named Rex", scope=scope(), actor=USER)
    add_memory(text="Alice works night shifts as a nurse", scope=scope(), actor=USER)
    add_memory(text="Bob's dog is a poodle", scope=scope(user_id="bob"), actor=USER)


def test_build_prompt_assembles_memories_summary_and_recent_messages_within_budget(chat_session):
    built = build_prompt(
        user_id="alice", session_id="s-1", message="What kind of dog do I have?", budget=1000
    )
    system = built.messages[0]
    assert system["role"] == "system"
    assert MEMORY_HEADER in system["content"]
    assert "beagle named Rex" in system["content"]
    assert "poodle" not in system["content"]
    assert SUMMARY_HEADER in system["content"]
    assert built.messages[-1] == {"role": "user", "content": "What kind of dog do I have?"}
    recent = built.messages[1:-1]
    assert 0 < len(recent) < 30, "only the newest messages that fit the budget"
    assert recent[-1]["content"].startswith("message 29")
    breakdown = built.token_breakdown
    assert breakdown["total"] <= 1000
    assert breakdown["total"] == sum(v for k, v in breakdown.items() if k != "total")
    assert breakdown["user_message"] == tokens.count_message("What kind of dog do I have?")
    assert built.exact_tokens


def test_build_prompt_saves_a_trace_and_bumps_access_stats(chat_session):
    built = build_prompt(user_id="alice", session_id="s-1", message="my beagle Rex", turn_id="t-1")
    trace = working.get_trace(session_id="s-1", turn_id="t-1")
    assert trace is not None
    assert trace["memories"][0]["text"] == "Alice's dog is a beagle named Rex"
    assert set(trace["memories"][0]["scores"]) == {
        "vector",
        "keyword",
        "recency",
        "final",
        "bm25_raw",
        "session",
        "neighbour",
        "topic",
        "importance",
    }
    assert trace["threshold"] == built.trace.threshold
    assert "near_misses" in trace and trace["tokens"]["budget"] == built.budget
    used = get_memory(owner=ANYONE, memory_id=trace["memories"][0]["id"])
    assert used.access_count == 1 and used.last_accessed_at > 0


def test_sandbox_build_writes_nothing(chat_session, redis_client):
    before = redis_client.hlen(keys.session_traces("s-1"))
    built = build_prompt(user_id="alice", session_id="s-1", message="my beagle Rex", save_trace=False)
    assert built.memories
    assert redis_client.hlen(keys.session_traces("s-1")) == before
    assert get_memory(owner=ANYONE, memory_id=built.memories[0].memory.id).access_count == 0


def test_pinned_memories_are_always_included(chat_session):
    pinned = add_memory(text="Alice is allergic to penicillin", scope=scope(), actor=USER)
    set_pinned(owner=ANYONE, memory_id=pinned.id, pinned=True, actor=STAFF)
    built = build_prompt(user_id="alice", session_id="s-1", message="What about my dog?")
    assert built.memories[0].memory.id == pinned.id
    assert built.memories[0].reason == "pinned"


def test_prompt_without_a_session_still_works():
    add_memory(text="Carol likes tennis", scope=scope(user_id="carol"), actor=USER)
    built = build_prompt(user_id="carol", session_id="none-yet", message="Do I like tennis?", save_trace=True)
    assert "tennis" in built.messages[0]["content"]
    assert len(built.messages) == 2


def test_anonymous_memories_and_sessions_move_to_the_account():
    working.ensure_session(session_id="anon-s", user_id="anon:123")
    working.append_message(session_id="anon-s", role="user", content="I love sushi")
    memory = add_memory(text="Loves sushi", scope=scope(user_id="anon:123"), actor=USER)
    gone = add_memory(text="Old fact", scope=scope(user_id="anon:123"), actor=USER)
    delete_memory(owner=ANYONE, memory_id=gone.id, actor=USER)
    moved = move_identity(from_user_id="anon:123", to_user_id="alice", actor=USER)
    assert moved == {"memories": 2, "sessions": 1}
    hits = search_memories(filter=MemoryFilter.build(user_id="alice"), text="sushi", threshold=0).hits
    assert [h.memory.id for h in hits] == [memory.id]
    assert (
        search_memories(filter=MemoryFilter.build(user_id="anon:123"), text="sushi", threshold=0).hits == []
    )
    assert working.session_ids_for_user(user_id="alice") == ["anon-s"]
    assert working.get_session(session_id="anon-s").user_id == "alice"  # type: ignore[union-attr]
    assert memory_history(memory_id=memory.id)[-1].event == "moved"
    assert get_memory(owner=ANYONE, memory_id=gone.id).scope.user_id == "alice"


def test_erase_removes_everything_and_the_receipt_says_what(redis_client):
    working.ensure_session(session_id="s-e", user_id="erin")
    working.append_message(session_id="s-e", role="user", content="Hi, I'm Erin")
    kept = add_memory(text="Erin plays chess", scope=scope(user_id="erin"), actor=USER)
    gone = add_memory(text="Erin played go", scope=scope(user_id="erin"), actor=USER)
    delete_memory(owner=ANYONE, memory_id=gone.id, actor=USER)
    build_prompt(user_id="erin", session_id="s-e", message="chess", turn_id="t-e")
    redis_client.xadd(keys.turn_stream(), {"user_id": "erin", "session_id": "s-e"})
    redis_client.xadd(keys.turn_stream(), {"user_id": "frank", "session_id": "s-f"})
    other = add_memory(text="Frank plays chess", scope=scope(user_id="frank"), actor=USER)

    receipt = erase_user(user_id="erin", actor=STAFF)

    assert receipt.memory_ids == [kept.id]
    assert receipt.deleted_memory_ids == [gone.id]
    assert receipt.session_ids == ["s-e"]
    assert receipt.counts == {
        "memories": 1,
        "deleted_memories": 1,
        "histories": 2,
        "access_stats": 1,
        "sessions": 1,
        "expired_sessions": 0,
        "session_keys": 3,
        "traces": 1,
        "pending_turns": 0,
        "extraction_plans": 0,
        "extraction_state_keys": 0,
        "queued_turns": 1,
        "dead_letters": 0,
        "idempotency_keys": 0,
        "mutation_events": 3,
        "user_index_keys": 3,
    }
    assert counts_by_type(user_id="erin") == {}
    assert not redis_client.keys("*erin*")
    assert not redis_client.exists(keys.history(kept.id), keys.trash(gone.id), keys.session("s-e"))
    for memory_id in (kept.id, gone.id):
        with pytest.raises(MemoryNotFound):
            get_memory(owner=ANYONE, memory_id=memory_id)
    remaining_turns = redis_client.xrange(keys.turn_stream())
    assert [fields[b"user_id"] for _, fields in remaining_turns] == [b"frank"]
    stream_users = [fields[b"user_id"] for _, fields in redis_client.xrange(keys.mutation_stream())]
    assert stream_users.count(b"erin") == 1, "only the erase event itself stays, without content"
    assert get_memory(owner=ANYONE, memory_id=other.id).text == "Frank plays chess"
