"""A new memory may carry an id its caller chose (an outside client names its memories itself,
agent-memory-client sends a ULID): it is kept, and an id already in use is refused, never
overwritten, whoever owns it."""

from __future__ import annotations

import pytest
import redis

from memory.selectors import get_memory
from memory.services import NewMemory, add_memories, delete_memory
from memory.types import InvalidInput
from tests.memory_helpers import ANYONE, USER, scope


def _new(memory_id: str, text: str, user_id: str = "alice") -> NewMemory:
    return NewMemory(text=text, scope=scope(user_id), id=memory_id)


def test_a_chosen_id_is_kept(redis_client: redis.Redis) -> None:
    [memory] = add_memories(items=[_new("01JCLIENTCHOSEN0000000000A", "User likes green tea")], actor=USER)
    assert memory.id == "01JCLIENTCHOSEN0000000000A"
    assert get_memory(memory_id=memory.id, owner=ANYONE).text == "User likes green tea"


def test_an_id_in_use_is_refused_and_the_memory_is_unchanged(redis_client: redis.Redis) -> None:
    add_memories(items=[_new("taken-1", "User likes green tea")], actor=USER)
    with pytest.raises(InvalidInput, match="already in use"):
        add_memories(items=[_new("taken-1", "Mallory was here", user_id="mallory")], actor=USER)
    kept = get_memory(memory_id="taken-1", owner=ANYONE)
    assert (kept.text, kept.scope.user_id, kept.version) == ("User likes green tea", "alice", 1)


def test_an_id_in_the_trash_is_refused_too(redis_client: redis.Redis) -> None:
    add_memories(items=[_new("trashed-1", "User likes green tea")], actor=USER)
    delete_memory(memory_id="trashed-1", owner=ANYONE, actor=USER)
    with pytest.raises(InvalidInput, match="already in use"):
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
