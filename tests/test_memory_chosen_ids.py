"""A new memory may carry an id its caller chose (an outside client names its memories itself,
agent-memory-client sends a ULID): it is kept, and an id already in use is refused, never
overwritten, whoever owns it. An id is given once, ever: a memory that expired leaves its history
(and its user's index entry) until the retention sweep, and a new memory under its id would take
them over. `save_memories` is the create-by-id upsert; `delete_memories` a delete all or none."""

from __future__ import annotations

import json
import time

import pytest
import redis

from memory import keys
from memory.access import Owner
from memory.lifecycle import erase_user
from memory.retention import run_retention
from memory.selectors import get_memory, memory_history
from memory.services import (
    NewMemory,
    add_memories,
    delete_memories,
    delete_memory,
    save_memories,
    set_pinned,
)
from memory.types import (
    Actor,
    ActorKind,
    IdUnavailable,
    InvalidInput,
    MemoryGone,
    MemoryLocked,
    MemoryNotFound,
)
from tests.memory_helpers import ANYONE, STAFF, USER, scope


def _new(memory_id: str, text: str, user_id: str = "alice") -> NewMemory:
    return NewMemory(text=text, scope=scope(user_id), id=memory_id)


def test_a_chosen_id_is_kept(redis_client: redis.Redis) -> None:
    [memory] = add_memories(items=[_new("01JCLIENTCHOSEN0000000000A", "User likes green tea")], actor=USER)
    assert memory.id == "01JCLIENTCHOSEN0000000000A"
    assert get_memory(memory_id=memory.id, owner=ANYONE).text == "User likes green tea"


def test_an_id_in_use_is_refused_and_the_memory_is_unchanged(redis_client: redis.Redis) -> None:
    add_memories(items=[_new("taken-1", "User likes green tea")], actor=USER)
    with pytest.raises(InvalidInput, match="cannot be used"):
        add_memories(items=[_new("taken-1", "Mallory was here", user_id="mallory")], actor=USER)
    kept = get_memory(memory_id="taken-1", owner=ANYONE)
    assert (kept.text, kept.scope.user_id, kept.version) == ("User likes green tea", "alice", 1)


def test_an_id_in_the_trash_is_refused_too(redis_client: redis.Redis) -> None:
    add_memories(items=[_new("trashed-1", "User likes green tea")], actor=USER)
    delete_memory(memory_id="trashed-1", owner=ANYONE, actor=USER)
    with pytest.raises(InvalidInput, match="cannot be used"):
        add_memories(items=[_new("trashed-1", "Something else")], actor=USER)


@pytest.mark.parametrize("bad", ["", "a" * 65, "a b", "x|y", "-lead", "a:b", "é"])
def test_an_id_of_the_wrong_shape_is_refused_and_nothing_is_added(
    redis_client: redis.Redis, bad: str
) -> None:
    items = [_new("fine-1", "User likes green tea"), NewMemory(text="x", scope=scope(), id=bad)]
    if bad == "":
        assert add_memories(items=items, actor=USER)[1].id != ""  # "" means: pick one
        return
    with pytest.raises(InvalidInput, match="id must be"):
        add_memories(items=items, actor=USER)
    assert not redis_client.keys("*mem*fine-1*")


def test_the_same_chosen_id_twice_in_one_batch_is_refused(redis_client: redis.Redis) -> None:
    with pytest.raises(InvalidInput, match="same id"):
        add_memories(items=[_new("twice", "one"), _new("twice", "two")], actor=USER)
    assert not redis_client.keys("*twice*")


# --- An id is given once -----------------------------------------------------------------------


def _expire(redis_client: redis.Redis, memory_id: str) -> None:
    """What Redis does when a memory's TTL runs out: the hash goes, nothing else (until the sweep)."""
    redis_client.delete(keys.memory(memory_id))


def test_an_expired_id_is_not_given_to_a_new_memory_before_or_after_the_sweep(
    redis_client: redis.Redis,
) -> None:
    add_memories(items=[_new("pref-9", "Alice's PIN is 4321", user_id="alice")], actor=USER)
    _expire(redis_client, "pref-9")
    with pytest.raises(IdUnavailable, match="cannot be used"):
        add_memories(items=[_new("pref-9", "Bob likes tea", user_id="bob")], actor=USER)
    run_retention(now=time.time())
    assert not redis_client.exists(keys.history("pref-9")), "the sweep took the old words"
    with pytest.raises(IdUnavailable):
        add_memories(items=[_new("pref-9", "Bob likes tea", user_id="bob")], actor=USER)
    assert not redis_client.sismember(keys.user_memory_ids("bob"), "pref-9")
    with pytest.raises(MemoryNotFound):
        get_memory(memory_id="pref-9", owner=ANYONE)


def test_a_used_id_is_refused_while_only_its_history_or_stats_are_left(redis_client: redis.Redis) -> None:
    # A memory made before claims (or with an engine id) leaves history and stats behind it.
    redis_client.rpush(keys.history("old-1"), json.dumps({"event": "added"}))
    redis_client.hset(keys.memory_stats("old-2"), "access_count", 1)
    for memory_id in ("old-1", "old-2"):
        with pytest.raises(IdUnavailable):
            add_memories(items=[_new(memory_id, "Bob likes tea", user_id="bob")], actor=USER)


def test_the_claim_says_which_agent_took_the_id_and_nothing_of_the_user(redis_client: redis.Redis) -> None:
    add_memories(items=[NewMemory(text="x y z", scope=scope("alice", agent_id="bot"), id="c-1")], actor=STAFF)
    claim = json.loads(redis_client.get(keys.memory_id_claim("c-1")))
    assert claim["agent_id"] == "bot" and claim["by"] == "support-1"
    assert "alice" not in json.dumps(claim)
    assert redis_client.ttl(keys.memory_id_claim("c-1")) == -1, "claimed for good"


def test_an_erase_never_removes_a_memory_that_is_now_another_users(redis_client: redis.Redis) -> None:
    [bobs] = add_memories(items=[_new("shared-1", "Bob likes tea", user_id="bob")], actor=USER)
    add_memories(items=[_new("alices-1", "Alice likes jazz", user_id="alice")], actor=USER)
    # However it came about, alice's index lists bob's memory: the erase must leave it alone.
    redis_client.sadd(keys.user_memory_ids("alice"), "shared-1")
    receipt = erase_user(user_id="alice", actor=STAFF)
    assert receipt.memory_ids == ["alices-1"]
    kept = get_memory(memory_id=bobs.id, owner=ANYONE)
    assert (kept.text, kept.scope.user_id) == ("Bob likes tea", "bob")
    assert [e.event for e in memory_history(memory_id=bobs.id)] == ["added"]


# --- save_memories: create by id is an upsert --------------------------------------------------


APP = Owner.app(agent_id="engram", namespaces=["default"])
APP_KEY = Actor(ActorKind.APP, "api-key:notes")  # may not change what staff pinned


def test_the_same_content_again_is_left_unchanged(redis_client: redis.Redis) -> None:
    item = NewMemory(text="User likes tea", scope=scope(), id="u-1", topics=["Drinks"], event_date=1.5e9)
    [first] = save_memories(items=[item], owner=APP, actor=USER)
    [again] = save_memories(items=[item], owner=APP, actor=USER)
    assert (first.outcome, again.outcome) == ("added", "unchanged")
    assert again.memory.version == 1
    assert [e.event for e in memory_history(memory_id="u-1")] == ["added"]


def test_other_content_for_an_own_id_is_an_edit_in_history(redis_client: redis.Redis) -> None:
    save_memories(items=[NewMemory(text="User likes tea", scope=scope(), id="u-1")], owner=APP, actor=USER)
    [saved] = save_memories(
        items=[NewMemory(text="User likes coffee", scope=scope(), id="u-1", topics=["drinks"])],
        owner=APP,
        actor=USER,
    )
    assert saved.outcome == "updated"
    stored = get_memory(memory_id="u-1", owner=ANYONE)
    assert (stored.text, stored.topics, stored.version) == ("User likes coffee", ["drinks"], 2)
    assert [e.event for e in memory_history(memory_id="u-1")] == ["added", "updated"]


def test_a_deleted_own_id_is_gone_and_another_callers_id_unavailable(redis_client: redis.Redis) -> None:
    save_memories(items=[NewMemory(text="User likes tea", scope=scope(), id="u-1")], owner=APP, actor=USER)
    delete_memory(memory_id="u-1", owner=APP, actor=USER)
    with pytest.raises(MemoryGone, match="deleted"):
        save_memories(
            items=[NewMemory(text="User likes tea", scope=scope(), id="u-1")], owner=APP, actor=USER
        )
    other = Owner.app(agent_id="other", namespaces=["default"])
    add_memories(items=[_new("theirs", "Alice likes jazz")], actor=USER)
    with pytest.raises(IdUnavailable):
        save_memories(
            items=[NewMemory(text="x", scope=scope(agent_id="other"), id="theirs")], owner=other, actor=USER
        )


def test_one_refused_item_saves_none_of_the_batch(redis_client: redis.Redis) -> None:
    save_memories(items=[NewMemory(text="User likes tea", scope=scope(), id="u-1")], owner=APP, actor=USER)
    new = NewMemory(text="User has a cat", scope=scope(), id="u-2")
    moved = NewMemory(text="User likes tea", scope=scope("bob"), id="u-1")
    with pytest.raises(InvalidInput, match="user_id cannot be changed"):
        save_memories(items=[new, moved], owner=APP, actor=USER)
    assert not redis_client.exists(keys.memory("u-2"))
    assert get_memory(memory_id="u-1", owner=ANYONE).version == 1


# --- delete_memories: all or none ---------------------------------------------------------------


def test_a_bulk_delete_with_one_pinned_memory_deletes_none(redis_client: redis.Redis) -> None:
    add_memories(items=[_new(i, f"Fact {i} about llamas") for i in ("m1", "m2", "m3")], actor=USER)
    set_pinned(memory_id="m2", owner=ANYONE, pinned=True, actor=STAFF)
    with pytest.raises(MemoryLocked):
        delete_memories(memory_ids=["m1", "m2", "m3"], owner=APP, actor=APP_KEY)
    for memory_id in ("m1", "m2", "m3"):
        assert not get_memory(memory_id=memory_id, owner=ANYONE).deleted, memory_id


def test_a_bulk_delete_skips_what_the_owner_cannot_see_and_deletes_the_rest(
    redis_client: redis.Redis,
) -> None:
    add_memories(items=[_new("m1", "Fact one"), _new("m2", "Fact two", user_id="bob")], actor=USER)
    deleted = delete_memories(
        memory_ids=["m1", "nope", "m1", "x" * 300, "m2"], owner=Owner.user("alice"), actor=USER
    )
    assert [m.id for m in deleted] == ["m1"]
    assert get_memory(memory_id="m1", owner=ANYONE).deleted
    assert not get_memory(memory_id="m2", owner=ANYONE).deleted
    assert [e.event for e in memory_history(memory_id="m1")] == ["added", "deleted"]
