"""Long-term memory records: storage layout, mutations, history, TTLs, soft delete, versions."""

import threading
import time

import numpy as np
import pytest

from core.embeddings import get_embedder
from memory import keys
from memory.access import Owner
from memory.query import MemoryFilter
from memory.search import search_memories
from memory.selectors import get_memory, memory_history, memory_ttl
from memory.services import (
    add_memory,
    delete_memory,
    extend_ttl,
    restore_memory,
    restore_version,
    set_locked,
    set_pinned,
    set_ttl,
    update_memory,
)
from memory.types import InvalidInput, MemoryLocked, MemoryNotFound, MemoryType, VersionConflict
from tests.memory_helpers import ANYONE, EXTRACTOR, STAFF, USER, scope


def _texts(result):
    return [hit.memory.text for hit in result.hits]


def test_memory_is_one_hash_with_float32_vector_and_all_fields(redis_client, settings):
    settings.VECTOR_DTYPE = "float32"
    memory = add_memory(
        text="Alice's cat is called Miso",
        scope=scope(session_id="s1"),
        actor=USER,
        topics=["Pets", "cats"],
        entities=["Miso"],
        event_date=1_700_000_000.0,
        source=["turn-1"],
    )
    raw = redis_client.hgetall(keys.memory(memory.id))
    vector = np.frombuffer(raw[b"embedding"], dtype=np.float32)
    assert vector.shape == (384,)
    np.testing.assert_allclose(vector, get_embedder().embed(["Alice's cat is called Miso"])[0], atol=1e-6)
    assert raw[b"type"] == b"semantic"
    assert raw[b"topics"] == b"pets,cats"
    assert raw[b"user_id"] == b"alice" and raw[b"session_id"] == b"s1"
    assert b"version" not in raw  # version 1 is the default: not stored (issue 17)
    stored = get_memory(owner=ANYONE, memory_id=memory.id)
    assert stored.version == 1
    assert stored.entities == ["miso"]
    assert stored.event_date == 1_700_000_000.0
    assert stored.source == ["turn-1"]
    assert stored.created_by == USER
    assert len(memory.id) == 26  # a ULID: sortable by creation time


def test_update_reembeds_bumps_version_and_records_history():
    memory = add_memory(text="I live in Lisbon", scope=scope(), actor=USER)
    updated = update_memory(
        owner=ANYONE, memory_id=memory.id, text="I live in Porto", actor=STAFF, reason="moved"
    )
    assert updated.version == 2
    result = search_memories(filter=MemoryFilter.build(user_id="alice"), text="Porto", threshold=0)
    assert _texts(result) == ["I live in Porto"]
    assert result.hits[0].score.vector > 0.5
    history = memory_history(memory_id=memory.id)
    assert [e.event for e in history] == ["added", "updated"]
    assert history[1].old_text == "I live in Lisbon"
    assert history[1].new_text == "I live in Porto"
    assert history[1].actor == STAFF
    assert history[1].reason == "moved"
    assert history[1].version == 2


def test_mutations_land_in_the_global_stream(redis_client):
    memory = add_memory(text="Likes green tea", scope=scope(), actor=USER)
    set_pinned(owner=ANYONE, memory_id=memory.id, pinned=True, actor=STAFF)
    entries = redis_client.xrange(keys.mutation_stream())
    assert [e[1][b"event"] for e in entries] == [b"added", b"pinned"]
    assert all(e[1][b"user_id"] == b"alice" for e in entries)


def test_stream_entries_point_at_the_history_and_the_feed_resolves_them(redis_client):
    from memory.selectors import recent_events

    memory = add_memory(text="Likes green tea", scope=scope(), actor=USER)
    update_memory(owner=ANYONE, memory_id=memory.id, text="Likes black tea", actor=USER)
    other = add_memory(text="Likes coffee", scope=scope(user_id="bob"), actor=USER)
    entries = [fields for _, fields in redis_client.xrange(keys.mutation_stream())]
    # A pointer (memory id, event, time), not a second copy of the event's JSON.
    assert all(b"data" not in f and f[b"memory_id"] for f in entries)
    assert max(sum(len(k) + len(v) for k, v in f.items()) for f in entries) < 120
    history = [e.as_dict() for e in memory_history(memory_id=memory.id)]
    assert recent_events(user_id="alice", limit=10) == list(reversed(history))
    assert recent_events(user_id="alice", limit=1)[0]["new"]["text"] == "Likes black tea"
    assert [e["memory_id"] for e in recent_events(limit=2)] == [other.id, memory.id]


def test_one_unreadable_history_item_leaves_the_rest_of_the_feed(redis_client, caplog):
    from memory.selectors import recent_events

    memory = add_memory(text="Likes green tea", scope=scope(), actor=USER)
    update_memory(owner=ANYONE, memory_id=memory.id, text="Likes black tea", actor=USER)
    other = add_memory(text="Likes coffee", scope=scope(), actor=USER)
    redis_client.lset(keys.history(memory.id), 0, "{not json")  # the "added" event, unreadable now
    redis_client.rpush(keys.history(memory.id), "42")  # JSON, but not an event

    events = recent_events(user_id="alice", limit=10)

    assert [(e["memory_id"], e["event"]) for e in events] == [
        (other.id, "added"),
        (memory.id, "updated"),
    ]
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and memory.id in r.getMessage()]
    assert len(warnings) == 1


def test_concurrent_updates_lose_nothing():
    memory = add_memory(text="counter", scope=scope(), actor=USER)
    errors = []

    def writer(name: str) -> None:
        try:
            for i in range(10):
                update_memory(owner=ANYONE, memory_id=memory.id, topics=[f"{name}-{i}"], actor=USER)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert get_memory(owner=ANYONE, memory_id=memory.id).version == 21
    versions = [e.version for e in memory_history(memory_id=memory.id)]
    assert versions == list(range(1, 22))


def test_expected_version_refuses_a_stale_write():
    memory = add_memory(text="Prefers email", scope=scope(), actor=USER)
    update_memory(owner=ANYONE, memory_id=memory.id, text="Prefers phone calls", actor=USER)
    with pytest.raises(VersionConflict, match="version 2"):
        update_memory(
            owner=ANYONE, memory_id=memory.id, text="Prefers letters", actor=STAFF, expected_version=1
        )
    assert get_memory(owner=ANYONE, memory_id=memory.id).text == "Prefers phone calls"


def test_soft_delete_hides_from_search_and_restore_brings_it_back(redis_client, settings):
    memory = add_memory(text="Allergic to peanuts", scope=scope(), actor=USER)
    filter_ = MemoryFilter.build(user_id="alice")
    delete_memory(owner=ANYONE, memory_id=memory.id, actor=STAFF, reason="wrong user")
    assert _texts(search_memories(filter=filter_, text="peanuts allergy", threshold=0)) == []
    assert get_memory(owner=ANYONE, memory_id=memory.id).deleted
    assert 0 < redis_client.ttl(keys.trash(memory.id)) <= settings.SOFT_DELETE_GRACE_SECONDS
    restored = restore_memory(owner=ANYONE, memory_id=memory.id, actor=STAFF)
    assert not restored.deleted
    assert _texts(search_memories(filter=filter_, text="peanuts allergy", threshold=0)) == [
        "Allergic to peanuts"
    ]
    assert [e.event for e in memory_history(memory_id=memory.id)] == ["added", "deleted", "restored"]
    with pytest.raises(MemoryNotFound):
        restore_memory(owner=ANYONE, memory_id=memory.id, actor=STAFF)


def test_restore_is_impossible_after_the_grace_period(settings):
    settings.SOFT_DELETE_GRACE_SECONDS = 1
    memory = add_memory(text="Temporary", scope=scope(), actor=USER)
    delete_memory(owner=ANYONE, memory_id=memory.id, actor=USER)
    time.sleep(1.3)
    with pytest.raises(MemoryNotFound):
        restore_memory(owner=ANYONE, memory_id=memory.id, actor=STAFF)
    with pytest.raises(MemoryNotFound):
        get_memory(owner=ANYONE, memory_id=memory.id)


def test_soft_delete_keeps_the_remaining_ttl_for_restore():
    memory = add_memory(
        text="Trip to Rome next week", scope=scope(), actor=USER, type="episodic", ttl_seconds=500
    )
    delete_memory(owner=ANYONE, memory_id=memory.id, actor=USER)
    restored = restore_memory(owner=ANYONE, memory_id=memory.id, actor=USER)
    assert restored.ttl_seconds is not None and 490 <= restored.ttl_seconds <= 500
    assert 490 <= (memory_ttl(owner=ANYONE, memory_id=memory.id) or 0) <= 500


def test_restore_an_earlier_version():
    memory = add_memory(text="Favourite colour: blue", scope=scope(), actor=USER, topics=["colour"])
    update_memory(
        owner=ANYONE, memory_id=memory.id, text="Favourite colour: green", topics=["colours"], actor=USER
    )
    restored = restore_version(owner=ANYONE, memory_id=memory.id, version=1, actor=STAFF)
    assert restored.text == "Favourite colour: blue"
    assert restored.topics == ["colour"]
    assert restored.version == 3
    last = memory_history(memory_id=memory.id)[-1]
    assert last.event == "version_restored"
    assert last.old_text == "Favourite colour: green" and last.new_text == "Favourite colour: blue"
    found = search_memories(
        filter=MemoryFilter.build(user_id="alice"), text="favourite colour blue", threshold=0
    )
    assert found.hits[0].memory.text == "Favourite colour: blue"
    with pytest.raises(InvalidInput, match="no version 9"):
        restore_version(owner=ANYONE, memory_id=memory.id, version=9, actor=STAFF)


def test_ttl_defaults_per_type(settings):
    settings.EPISODIC_TTL_SECONDS = 1000
    settings.SEMANTIC_TTL_SECONDS = None
    episodic = add_memory(text="Went to the dentist", scope=scope(), actor=USER, type=MemoryType.EPISODIC)
    semantic = add_memory(text="Is vegetarian", scope=scope(), actor=USER)
    procedural = add_memory(text="Reply in French", scope=scope(), actor=USER, type="procedural")
    assert 990 <= (memory_ttl(owner=ANYONE, memory_id=episodic.id) or 0) <= 1000
    assert memory_ttl(owner=ANYONE, memory_id=semantic.id) is None
    assert memory_ttl(owner=ANYONE, memory_id=procedural.id) is None


def test_set_extend_and_remove_ttl():
    memory = add_memory(text="Is vegetarian", scope=scope(), actor=USER)
    set_ttl(owner=ANYONE, memory_id=memory.id, ttl_seconds=100, actor=STAFF)
    assert 95 <= (memory_ttl(owner=ANYONE, memory_id=memory.id) or 0) <= 100
    extend_ttl(owner=ANYONE, memory_id=memory.id, seconds=50, actor=STAFF)
    assert 145 <= (memory_ttl(owner=ANYONE, memory_id=memory.id) or 0) <= 150
    set_ttl(owner=ANYONE, memory_id=memory.id, ttl_seconds=None, actor=STAFF)
    assert memory_ttl(owner=ANYONE, memory_id=memory.id) is None
    with pytest.raises(InvalidInput):
        extend_ttl(owner=ANYONE, memory_id=memory.id, seconds=10, actor=STAFF)
    with pytest.raises(InvalidInput):
        set_ttl(owner=ANYONE, memory_id=memory.id, ttl_seconds=-5, actor=STAFF)
    events = [e.event for e in memory_history(memory_id=memory.id)]
    assert events == ["added", "ttl_changed", "ttl_changed", "ttl_changed"]


def test_ttl_expiry_removes_a_memory_from_search():
    filter_ = MemoryFilter.build(user_id="alice")
    add_memory(text="Parking spot 42 today", scope=scope(), actor=USER, type="episodic", ttl_seconds=1)
    add_memory(text="Owns a red bicycle", scope=scope(), actor=USER)
    assert (
        len(search_memories(filter=filter_, text="parking spot", threshold=0, relative_threshold=0).hits) == 2
    )
    time.sleep(1.2)
    assert _texts(
        search_memories(filter=filter_, text="parking spot", threshold=0, relative_threshold=0)
    ) == ["Owns a red bicycle"]


def test_staff_lock_and_pin_stop_the_extractor():
    locked = add_memory(text="Name is Alice", scope=scope(), actor=USER)
    set_locked(owner=ANYONE, memory_id=locked.id, locked=True, actor=STAFF, reason="corrected by support")
    with pytest.raises(MemoryLocked):
        update_memory(owner=ANYONE, memory_id=locked.id, text="Name is Alicia", actor=EXTRACTOR)
    with pytest.raises(MemoryLocked):
        delete_memory(owner=ANYONE, memory_id=locked.id, actor=EXTRACTOR)
    assert (
        update_memory(owner=ANYONE, memory_id=locked.id, text="Name is Alice B.", actor=STAFF).text
        == "Name is Alice B."
    )

    pinned = add_memory(text="Birthday is 3 May", scope=scope(), actor=USER)
    with pytest.raises(MemoryLocked, match="only staff can pin"):
        set_pinned(owner=ANYONE, memory_id=pinned.id, pinned=True, actor=USER)
    set_pinned(owner=ANYONE, memory_id=pinned.id, pinned=True, actor=STAFF)
    with pytest.raises(MemoryLocked, match="pinned by support"):
        delete_memory(owner=ANYONE, memory_id=pinned.id, actor=EXTRACTOR)
    with pytest.raises(MemoryLocked, match="pinned by support"):
        update_memory(owner=ANYONE, memory_id=pinned.id, text="Birthday is 4 May", actor=EXTRACTOR)
    assert (
        update_memory(owner=ANYONE, memory_id=pinned.id, text="Birthday is 4 May", actor=STAFF).version == 3
    )
    with pytest.raises(MemoryLocked, match="only staff"):
        set_locked(owner=ANYONE, memory_id=pinned.id, locked=True, actor=USER)


def test_oversized_and_empty_text_are_refused_with_a_clear_error(settings):
    settings.MEMORY_MAX_TEXT_CHARS = 100
    with pytest.raises(InvalidInput, match="at most 100"):
        add_memory(text="x" * 101, scope=scope(), actor=USER)
    with pytest.raises(InvalidInput, match="empty"):
        add_memory(text="   ", scope=scope(), actor=USER)
    with pytest.raises(InvalidInput, match="unknown memory type"):
        add_memory(text="fine", scope=scope(), actor=USER, type="gossip")
    with pytest.raises(InvalidInput, match="user_id is required"):
        add_memory(text="fine", scope=scope(user_id=""), actor=USER)
    with pytest.raises(MemoryNotFound):
        update_memory(owner=ANYONE, memory_id="01NOTAREALID", text="x", actor=USER)


def test_float16_vectors_halve_the_bytes_and_still_search(redis_client, settings):
    settings.VECTOR_DTYPE = "float16"
    memory = add_memory(text="Alice plays the cello", scope=scope(), actor=USER)
    assert len(redis_client.hget(keys.memory(memory.id), "embedding")) == 384 * 2
    result = search_memories(filter=MemoryFilter.build(user_id="alice"), text="cello music", threshold=0)
    assert result.hits[0].memory.id == memory.id
    assert result.hits[0].score.vector > 0.4


def test_access_stats_live_outside_the_indexed_hash(redis_client):
    from memory.services import record_access

    memory = add_memory(text="Alice likes figs", scope=scope(), actor=USER)
    record_access(memory_ids=[memory.id, memory.id])
    assert get_memory(owner=ANYONE, memory_id=memory.id).access_count == 2
    assert redis_client.hget(keys.memory(memory.id), "access_count") is None


def test_ids_with_the_key_separator_cannot_reach_other_keys(redis_client):
    from memory import working

    working.ensure_session(session_id="a", user_id="alice")
    working.append_message(session_id="a", role="user", content="hello")
    working.ensure_session(session_id="a:msgs", user_id="mallory")
    working.append_message(session_id="a:msgs", role="user", content="injected")
    assert [m.content for m in working.get_messages(session_id="a")] == ["hello"]
    assert [m.content for m in working.get_messages(session_id="a:msgs")] == ["injected"]


def test_concurrent_ttl_extensions_both_count():
    memory = add_memory(text="Visiting Rome", scope=scope(), actor=USER, ttl_seconds=1000)
    threads = [
        threading.Thread(
            target=extend_ttl,
            kwargs={"memory_id": memory.id, "owner": ANYONE, "seconds": 500, "actor": STAFF},
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1990 <= (memory_ttl(owner=ANYONE, memory_id=memory.id) or 0) <= 2000


def test_an_edit_keeps_the_event_date_unless_told_and_none_removes_it(redis_client):
    from memory.mutation import UNCHANGED

    owner = Owner.user("alice")
    memory = add_memory(text="Exam on Friday", scope=scope(), actor=USER, event_date=1.9e9)
    kept = update_memory(memory_id=memory.id, owner=owner, actor=USER, text="Exam on Friday at 9")
    assert kept.event_date == 1.9e9
    kept = update_memory(memory_id=memory.id, owner=owner, actor=USER, type="episodic", event_date=UNCHANGED)
    assert kept.event_date == 1.9e9
    removed = update_memory(memory_id=memory.id, owner=owner, actor=USER, event_date=None)
    assert removed.event_date is None
    assert b"event_date" not in redis_client.hkeys(keys.memory(memory.id))


def test_every_public_name_of_records_is_exported():
    import memory.records as records

    exported: dict[str, object] = {}
    exec("from memory.records import *", exported)  # noqa: S102 - what `import *` sees
    own = {
        name
        for name, value in vars(records).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == records.__name__
    }
    assert own and own | {"RETURN_FIELDS", "vector_bytes"} <= exported.keys()
