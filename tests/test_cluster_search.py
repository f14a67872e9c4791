"""Search on a local 3-node Redis Cluster. The open-source search module indexes and searches only
its own shard, so the whole memory tier (hashes, index, history) lives in one hash-tag slot: every
memory of every user is on one node, and a search sent there sees all of them."""

import pytest
import redis
from redis.cluster import key_slot

from core.redis_client import MEMORY_TAG, get_memory_redis
from memory import keys
from memory.index import index_name, index_state, versioned_name
from memory.query import MemoryFilter
from memory.search import search_memories
from memory.selectors import counts_by_type
from memory.services import NewMemory, add_memories
from tests.fixtures_cluster import every_test_on_the_cluster  # noqa: F401  (overrides _empty_redis)
from tests.memory_helpers import USER, scope

USERS = [f"user-{i}" for i in range(12)]
FACTS = ["My cat is called Miso", "I work as a baker in Porto", "I am allergic to peanuts"]


def _add_everyones_facts() -> dict[str, list[str]]:
    items = [NewMemory(text=f"{fact} ({user})", scope=scope(user)) for user in USERS for fact in FACTS]
    added = add_memories(items=items, actor=USER)
    ids: dict[str, list[str]] = {}
    for memory in added:
        ids.setdefault(memory.scope.user_id, []).append(memory.id)
    return ids


def _node_of(client: redis.RedisCluster, key: str) -> str:
    return client.get_node_from_key(key).name


@pytest.mark.parametrize("mode", ["hybrid", "semantic", "keyword"])
def test_a_search_on_the_cluster_finds_the_users_memories_with_their_scores(redis_client, mode):
    ids = _add_everyones_facts()
    # The users' other keys spread over the nodes; their memories all sit with the index.
    assert len({_node_of(redis_client, keys.user_sessions(u)) for u in USERS}) == 3
    memory_nodes = {_node_of(redis_client, keys.memory(m)) for user_ids in ids.values() for m in user_ids}
    assert memory_nodes == {_node_of(redis_client, MEMORY_TAG)}

    for user in ("user-0", "user-7", "user-11"):
        result = search_memories(
            filter=MemoryFilter.build(user_id=user), text="cat Miso", mode=mode, threshold=0
        )
        assert result.hits, (user, mode)
        best = result.hits[0]
        assert best.memory.text == f"My cat is called Miso ({user})"
        assert {h.memory.scope.user_id for h in result.hits} == {user}
        assert best.score.final > 0
        if mode != "keyword":
            assert best.score.vector > 0.5
        if mode != "semantic":
            assert best.score.keyword > 0
    # Every node is still up and answering (some query shapes crash the module).
    assert redis_client.ping(target_nodes=redis.RedisCluster.ALL_NODES)


def test_the_index_counts_every_memory_and_lives_on_the_memory_node_only(redis_client):
    ids = _add_everyones_facts()
    total = sum(len(v) for v in ids.values())
    state = index_state()
    assert state is not None and state["documents"] == total
    assert counts_by_type(user_id=None) == {"semantic": total}
    assert counts_by_type(user_id="user-3") == {"semantic": len(FACTS)}
    memory_node = _node_of(redis_client, MEMORY_TAG)
    for node in redis_client.get_primaries():
        listed = [bytes(n) for n in redis_client.get_redis_connection(node).execute_command("FT._LIST")]
        assert listed == ([versioned_name().encode()] if node.name == memory_node else [])
    assert key_slot(index_name().encode()) == key_slot(MEMORY_TAG.encode())


def test_a_search_after_the_memory_slot_moved_finds_the_new_node(redis_client):
    """The slot map the client holds is out of date (the slot moved, a failover): the node it names
    answers MOVED, the map is read again and the search runs where the memories now are."""
    _add_everyones_facts()
    slot = key_slot(MEMORY_TAG.encode())
    right = redis_client.get_node_from_key(MEMORY_TAG)
    wrong = next(n for n in redis_client.get_primaries() if n.name != right.name)
    redis_client.nodes_manager.slots_cache[slot] = [wrong]
    assert get_memory_redis() is redis_client.get_redis_connection(wrong)

    result = search_memories(filter=MemoryFilter.build(user_id="user-5"), text="peanuts allergy", threshold=0)

    assert result.hits[0].memory.text == "I am allergic to peanuts (user-5)"
    assert redis_client.get_node_from_key(MEMORY_TAG).name == right.name
