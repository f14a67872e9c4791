"""Bytes per memory (issue 17): `content_hash` is not indexed (exact duplicates come from the
text's nearest neighbours) and fields holding their default are not stored in the hash."""

from __future__ import annotations

from typing import Any

import pytest
from redisvl.index import SearchIndex

from memory import index, keys
from memory.index import forget_index_cache, index_name, index_state, search_index, versioned_name
from memory.query import MemoryFilter
from memory.records import from_hash
from memory.selectors import find_exact_duplicates, get_memory, list_memories, memory_history
from memory.services import add_memory, delete_memory, set_pinned, update_memory
from tests.memory_helpers import ANYONE, STAFF, USER, scope

pytestmark = pytest.mark.django_db


def _attributes(redis_client: Any) -> set[str]:
    info = redis_client.execute_command("FT.INFO", index_name())
    attributes = dict(zip(info[::2], info[1::2], strict=False))[b"attributes"]
    return {a[a.index(b"attribute") + 1].decode() for a in attributes}


def test_content_hash_is_stored_but_not_indexed(redis_client: Any) -> None:
    memory = add_memory(text="I live in Porto", scope=scope(), actor=USER)
    assert "content_hash" not in _attributes(redis_client)
    assert redis_client.hget(keys.memory(memory.id), "content_hash").decode() == memory.content_hash


def test_exact_duplicates_by_nearest_neighbours_match_the_hash_rule(redis_client: Any) -> None:
    alice = MemoryFilter.build(user_id="alice")
    porto = add_memory(text="I live in Porto", scope=scope(), actor=USER)
    add_memory(text="I live in Porto", scope=scope(user_id="bob"), actor=USER)
    add_memory(text="I lived in Porto", scope=scope(), actor=USER)
    twin = add_memory(text="i live in  porto", scope=scope(), actor=USER)
    found = find_exact_duplicates(filter=alice, text="  I LIVE in porto ")
    assert sorted(m.id for m in found) == sorted([porto.id, twin.id])
    assert find_exact_duplicates(filter=alice, text="I live in Lisbon") == []
    # An edit changes what it duplicates; a deleted memory duplicates nothing.
    update_memory(memory_id=twin.id, owner=ANYONE, actor=USER, text="I live in Lisbon")
    assert [m.id for m in find_exact_duplicates(filter=alice, text="I live in Lisbon")] == [twin.id]
    delete_memory(memory_id=porto.id, owner=ANYONE, actor=USER)
    assert find_exact_duplicates(filter=alice, text="I live in Porto") == []


def test_fields_at_their_default_are_not_stored_and_read_as_before(redis_client: Any) -> None:
    plain = add_memory(text="Alice likes tea", scope=scope(), actor=USER)
    stored = {k.decode() for k in redis_client.hkeys(keys.memory(plain.id))}
    assert not stored & {"session_id", "pinned", "locked", "version", "source", "source_turns"}
    again = get_memory(memory_id=plain.id, owner=ANYONE)
    assert (again.scope.session_id, again.pinned, again.locked, again.version, again.source) == (
        "",
        False,
        False,
        1,
        [],
    )
    full = add_memory(
        text="Alice likes coffee", scope=scope(session_id="s-1"), actor=USER, pinned=True, source=["t-1"]
    )
    raw = redis_client.hgetall(keys.memory(full.id))
    assert (raw[b"session_id"], raw[b"pinned"], raw[b"source_turns"]) == (b"s-1", b"1", b"t-1")
    pinned_only = list_memories(filter=MemoryFilter.build(user_id="alice", pinned_only=True))
    assert [m.id for m in pinned_only.memories] == [full.id]
    set_pinned(memory_id=full.id, owner=ANYONE, pinned=False, actor=STAFF)
    after = update_memory(memory_id=plain.id, owner=ANYONE, actor=USER, text="Alice likes green tea")
    assert after.version == 2 and get_memory(memory_id=plain.id, owner=ANYONE).version == 2
    assert list_memories(filter=MemoryFilter.build(user_id="alice", pinned_only=True)).memories == []


def test_a_hash_written_with_every_field_reads_the_same(redis_client: Any) -> None:
    memory = add_memory(text="Alice plays chess", scope=scope(), actor=USER)
    key = keys.memory(memory.id)
    before = from_hash(redis_client.hgetall(key))
    # As the previous release wrote it: defaults stored.
    redis_client.hset(
        key, mapping={"session_id": "", "pinned": "0", "locked": "0", "version": 1, "source": "[]"}
    )
    assert from_hash(redis_client.hgetall(key)) == before


def test_source_is_read_from_the_turn_ids_unless_they_cannot_say_it(redis_client: Any) -> None:
    plain = add_memory(text="Alice likes tea", scope=scope(), actor=USER, source=["t-1", "t 2"])
    odd = add_memory(text="Alice likes jam", scope=scope(), actor=USER, source=["t,3", "t-4"])
    assert not redis_client.hexists(keys.memory(plain.id), "source")
    assert redis_client.hget(keys.memory(odd.id), "source") == b'["t,3", "t-4"]'
    for memory, source in ((plain, ["t-1", "t 2"]), (odd, ["t,3", "t-4"])):
        assert get_memory(memory_id=memory.id, owner=ANYONE).source == source
    # Search's read (HMGET of the returned fields) decodes it the same way.
    from memory.raw_search import load_memories

    loaded = load_memories([keys.memory(plain.id), keys.memory(odd.id)])
    assert [m.source for m in loaded.values()] == [["t-1", "t 2"], ["t,3", "t-4"]]


def _make_v2_index(redis_client: Any) -> None:
    """The index as version 2 made it: float16, content_hash a case-sensitive TAG."""
    spec = search_index(version=2).schema.to_dict()
    spec["fields"].append({"name": "content_hash", "type": "tag", "attrs": {"case_sensitive": True}})
    SearchIndex.from_dict(spec, redis_client=redis_client, validate_on_load=False).create()
    redis_client.execute_command("FT.ALIASADD", index_name(), spec["index"]["name"])
    forget_index_cache()


def test_rebuild_moves_a_version_2_install_with_nothing_lost(redis_client: Any) -> None:
    from django.core.management import call_command

    _make_v2_index(redis_client)
    assert index_state()["version"] == 2  # type: ignore[index]
    kept = add_memory(text="User plays the cello", scope=scope(), actor=USER)
    edited = add_memory(text="User lives in Porto", scope=scope(), actor=USER)
    update_memory(memory_id=edited.id, owner=ANYONE, actor=USER, text="User lives in Lisbon")
    assert "content_hash" in _attributes(redis_client)

    call_command("memory_index", "rebuild")
    state = index_state()
    assert state is not None and state["version"] == index.INDEX_VERSION and not state["rebuild_needed"]
    assert state["documents"] == 2 and state["name"] == index_name()
    assert redis_client.execute_command("FT._LIST") == [versioned_name().encode()]
    assert "content_hash" not in _attributes(redis_client)
    alice = MemoryFilter.build(user_id="alice")
    assert [m.id for m in find_exact_duplicates(filter=alice, text="user plays the CELLO")] == [kept.id]
    assert [e.event for e in memory_history(memory_id=edited.id)] == ["added", "updated"]
    assert [e.event for e in memory_history(memory_id=kept.id)] == ["added"]
