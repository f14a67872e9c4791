"""An install from before the cluster layout keeps its data: `migrate_keys` moves its session,
extraction and user keys to their tagged names, its users set into the index shards, and its
memory tier under the memory slot's tag (with the index rebuilt for the new key prefix)."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from redisvl.index import SearchIndex

from core.embedded_redis import free_port
from core.embeddings import get_embedder
from core.redis_client import key
from core.startup import startup_problems
from memory import index, key_layout, keys, user_index, working
from memory.extraction import queue
from memory.query import MemoryFilter
from memory.search import search_memories
from memory.selectors import access_stats, get_memory, memory_history
from memory.services import add_memory, delete_memory, record_access, restore_memory, update_memory
from memory.types import MemoryNotFound
from tests.memory_helpers import ANYONE, USER, scope

ROOT = Path(__file__).resolve().parent.parent


def _legacy_install(client, session_id="chat:1", user_id="alice"):
    """Keys as the layout before the hash tags wrote them."""
    s, u = keys.safe(session_id), keys.safe(user_id)
    client.hset(
        key("wm", s), mapping={"id": session_id, "user_id": user_id, "agent_id": "engram", "durable": "0"}
    )
    client.rpush(
        key("wm", s, "msgs"),
        json.dumps({"id": "m1", "role": "user", "content": "I have a dog.", "at": 1.0, "tokens": 9}),
    )
    for name in (key("wm", s), key("wm", s, "msgs")):
        client.expire(name, 5000)
    client.set(key("extract", s, "cursor"), 3)
    client.set(key("extract", s, "seq"), 4)
    client.zadd(key("user", u, "sessions"), {session_id: 10.0})
    client.sadd(key("user", u, "mids"), "mem-1")
    client.zadd(key("users"), {user_id: 10.0, "bob": 5.0})
    client.hset(key("extract", "stats"), "reclaimed", 2)


def test_an_old_install_keeps_its_sessions_queue_state_and_users(redis_client):
    _legacy_install(redis_client)
    assert working.get_session(session_id="chat:1") is None  # before: the new layout sees nothing

    call_command("migrate_keys", verbosity=0)

    session, messages = working.get_session_with_messages(session_id="chat:1")
    assert (
        session is not None
        and session.user_id == "alice"
        and [m.content for m in messages] == ["I have a dog."]
    )
    assert 4900 < redis_client.ttl(keys.session_messages("chat:1")) <= 5000  # TTLs kept
    assert queue.cursor("chat:1") == 3
    assert working.session_ids_for_user(user_id="alice") == ["chat:1"]
    assert redis_client.smembers(keys.user_memory_ids("alice")) == {b"mem-1"}
    assert user_index.most_recent() == [("alice", 10.0), ("bob", 5.0)]
    assert not redis_client.exists(keys.legacy_users())
    assert redis_client.hget(keys.extraction_stats(), "reclaimed") == b"2"  # a global key stays
    # The next turn continues the session's sequence instead of starting it over.
    seq, _ = queue.enqueue_turn(user_id="alice", session_id="chat:1", turn_id="t5", messages=[])
    assert seq == 5


def test_a_second_run_moves_nothing_and_a_taken_name_is_never_overwritten(redis_client):
    _legacy_install(redis_client)
    redis_client.set(keys.extraction("chat:1", "cursor"), 7)  # already written under the new name
    first = key_layout.migrate()
    assert first.left == [key("extract", keys.safe("chat:1"), "cursor")]
    assert queue.cursor("chat:1") == 7 and redis_client.get(first.left[0]) == b"3"  # both kept
    redis_client.delete(first.left[0])
    assert key_layout.migrate().renamed == 0
    assert redis_client.get(keys.layout_marker()) == key_layout.LAYOUT.encode()


# --- The memory tier (layout 3: one hash-tag slot) ------------------------------------------------


def _age_memory_tier(client, *, dtype: str = "float16") -> None:
    """Turn what today's code wrote into an install from before the memory slot's tag: every key
    `<prefix>:{m}:<rest>` was `<prefix>:<rest>`, and the index covered `<prefix>:mem:` (with
    float32 vectors in releases before float16)."""
    if dtype != "float16":
        index.convert_vectors(to_dtype=dtype)
    head = keys.memory_key("")
    for raw in list(client.scan_iter(match=keys.memory_key("*"), count=1000)):
        name = raw.decode()
        client.rename(name, key(name[len(head) :]))  # RENAME keeps the TTL
    for name in client.execute_command("FT._LIST"):
        client.execute_command("FT.DROPINDEX", name)
    old = index.schema(get_embedder().dims)
    old["index"] |= {"name": key("idx", "memories", "v1"), "prefix": key("mem") + ":"}
    for spec in old["fields"]:
        if spec["type"] == "vector":
            spec["attrs"]["datatype"] = dtype
    SearchIndex.from_dict(old, redis_client=client, validate_on_load=False).create()
    client.execute_command("FT.ALIASADD", key("idx", "memories"), key("idx", "memories", "v1"))
    index.forget_index_cache()


def _memory_install():
    kept = add_memory(text="My dog is called Rex", scope=scope(), actor=USER, ttl_seconds=5000)
    update_memory(memory_id=kept.id, owner=ANYONE, actor=USER, text="My dog is called Rexy")
    binned = add_memory(text="I used to smoke", scope=scope(), actor=USER)
    delete_memory(memory_id=binned.id, owner=ANYONE, actor=USER)
    marked = add_memory(text="I like tea", scope=scope(), actor=USER, idempotency_key="op-1")
    record_access(memory_ids=[kept.id])
    return kept, binned, marked


def test_an_old_install_keeps_its_memories_history_trash_and_search(redis_client):
    kept, binned, marked = _memory_install()
    history = [(e.event, e.version, e.new_text) for e in memory_history(memory_id=kept.id)]
    _age_memory_tier(redis_client)
    with pytest.raises(MemoryNotFound):  # before: the new layout sees nothing
        get_memory(memory_id=kept.id, owner=ANYONE)

    out = io.StringIO()
    call_command("migrate_keys", verbosity=1, stdout=out)

    assert "memory index: built, 2 memories" in out.getvalue()
    assert get_memory(memory_id=kept.id, owner=ANYONE).text == "My dog is called Rexy"
    assert 4900 < redis_client.ttl(keys.memory(kept.id)) <= 5000  # TTLs kept
    assert [(e.event, e.version, e.new_text) for e in memory_history(memory_id=kept.id)] == history
    assert redis_client.smembers(keys.user_memory_ids("alice")) == {
        m.id.encode() for m in (kept, binned, marked)
    }
    assert [e[1][b"event"] for e in redis_client.xrange(keys.mutation_stream())] == [
        b"added",
        b"updated",
        b"added",
        b"deleted",
        b"added",
    ]
    assert access_stats(memory_ids=[kept.id])[kept.id][0] == 1
    # Found by search (the index was rebuilt over the new prefix), restorable from the trash,
    # and an operation applied before is still applied once only.
    result = search_memories(filter=MemoryFilter.build(user_id="alice"), text="dog Rexy", threshold=0)
    assert result.hits[0].memory.id == kept.id
    assert restore_memory(memory_id=binned.id, owner=ANYONE, actor=USER).text == "I used to smoke"
    again = add_memory(text="I like tea", scope=scope(), actor=USER, idempotency_key="op-1")
    assert again.id == marked.id
    assert [n.decode() for n in redis_client.execute_command("FT._LIST")] == [index.versioned_name()]
    assert not [k for k in redis_client.scan_iter(match=key("mem", "*"))]
    # Done once: the next start scans nothing and drops nothing.
    assert key_layout.migrate() == key_layout.LayoutReport()


def _migrate_and_check_converted(client, *, kept, binned) -> None:
    """`migrate_keys` on an install whose 3 vectors (2 live, 1 trashed) are float32: all converted
    before the index is built, so it holds both live memories."""
    out = io.StringIO()
    call_command("migrate_keys", verbosity=1, stdout=out)

    assert "converted the vectors of 3 memories to float16" in out.getvalue()
    assert "memory index: built, 2 memories" in out.getvalue()
    assert len(client.hget(keys.memory(kept.id), "embedding")) == 384 * 2
    assert len(client.hget(keys.trash(binned.id), "embedding")) == 384 * 2


def test_an_old_float32_install_is_searchable_after_the_move(redis_client):
    """Releases before float16 stored float32 vectors: the move converts them before the new index
    is built, else those memories would be left out of the index without a word."""
    kept, binned, _ = _memory_install()
    _age_memory_tier(redis_client, dtype="float32")
    assert len(redis_client.hget(key("mem", kept.id), "embedding")) == 384 * 4

    _migrate_and_check_converted(redis_client, kept=kept, binned=binned)
    result = search_memories(filter=MemoryFilter.build(user_id="alice"), text="dog Rexy", threshold=0)
    assert result.hits[0].memory.id == kept.id
    assert restore_memory(memory_id=binned.id, owner=ANYONE, actor=USER).text == "I used to smoke"
    assert search_memories(filter=MemoryFilter.build(user_id="alice"), text="smoking", threshold=0).hits


def test_a_taken_memory_name_is_left_in_place_and_reported(redis_client):
    kept, _, _ = _memory_install()
    _age_memory_tier(redis_client)
    redis_client.rpush(keys.history(kept.id), "written under the new name meanwhile")

    report = key_layout.migrate()

    assert report.left == [key("hist", kept.id)]
    assert redis_client.lrange(keys.history(kept.id), 0, -1) == [b"written under the new name meanwhile"]
    assert redis_client.llen(key("hist", kept.id)) == 2  # both kept, nothing overwritten
    assert redis_client.get(keys.layout_marker()) != key_layout.LAYOUT.encode()  # tried again next start


# --- Interrupted and concurrent moves; processes started without the launcher (issue 17) ----------


def _first_start_died_after_dropping_the_old_index(client) -> None:
    """What a first start of the previous release left when it died right after FT.DROPINDEX: the
    keys moved, the old index gone, the vectors not converted yet, no layout marker."""
    key_layout._rename_all(client, key_layout.LayoutReport(), lambda message: None)
    for name in key_layout._old_indexes(client):
        client.execute_command("FT.DROPINDEX", name)
    index.forget_index_cache()


def test_a_first_start_that_died_after_dropping_the_old_index_still_converts_the_vectors(redis_client):
    kept, binned, _ = _memory_install()
    _age_memory_tier(redis_client, dtype="float32")
    _first_start_died_after_dropping_the_old_index(redis_client)

    _migrate_and_check_converted(redis_client, kept=kept, binned=binned)
    state = index.index_state()
    assert state is not None and state["documents"] == 2 and not state["vectors_to_convert"]
    assert int(redis_client.ft(index.versioned_name()).info()["hash_indexing_failures"]) == 0
    result = search_memories(filter=MemoryFilter.build(user_id="alice"), text="dog Rexy", threshold=0)
    assert result.hits[0].memory.id == kept.id


def test_an_index_another_launcher_dropped_meanwhile_is_no_error(redis_client, monkeypatch):
    kept, _, _ = _memory_install()
    _age_memory_tier(redis_client)
    listed = key_layout._old_indexes

    def listed_then_dropped_by_the_other_launcher(client):
        names = listed(client)
        for name in names:
            client.execute_command("FT.DROPINDEX", name)
        return names

    monkeypatch.setattr(key_layout, "_old_indexes", listed_then_dropped_by_the_other_launcher)

    report = key_layout.migrate()

    assert report.dropped_indexes == [key("idx", "memories", "v1")]
    assert redis_client.get(keys.layout_marker()) == key_layout.LAYOUT.encode()
    result = search_memories(filter=MemoryFilter.build(user_id="alice"), text="dog Rexy", threshold=0)
    assert result.hits[0].memory.id == kept.id


def test_migrate_keys_refuses_while_a_worker_is_alive_unless_forced(redis_client):
    from core.workers import record_heartbeat

    _legacy_install(redis_client)
    record_heartbeat(worker_id="box-worker-1")

    with pytest.raises(CommandError) as refused:
        call_command("migrate_keys", verbosity=0)

    assert "Nothing was moved: a memory worker is running on this Redis" in str(refused.value)
    assert "box-worker-1" in str(refused.value) and "--force" in str(refused.value)
    assert working.get_session(session_id="chat:1") is None  # nothing moved
    assert redis_client.exists(keys.legacy_users())
    call_command("migrate_keys", "--force", verbosity=0)
    assert working.get_session(session_id="chat:1") is not None
    call_command("migrate_keys", verbosity=0)  # moved: a live worker is no reason to refuse now


def _started(args, redis_url):
    """A process as systemd or a container would start it (no launcher), stopped after 90 s."""
    env = {**os.environ, "DEBUG": "1", "REDIS_URL": redis_url}
    try:
        return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(args)} started on the previous key layout")


def test_a_worker_refuses_to_start_on_the_previous_layout(redis_client, redis_server):
    _legacy_install(redis_client)

    result = _started([sys.executable, "manage.py", "memory_worker"], redis_server.url)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"CommandError: {key_layout.OLD_LAYOUT}"
    call_command("migrate_keys", verbosity=0)
    assert startup_problems() == []


def test_a_memory_tier_of_the_previous_layout_refuses_a_start_too(redis_client):
    _memory_install()
    _age_memory_tier(redis_client)  # layout 2: sessions tagged, the memory tier not yet
    redis_client.set(keys.layout_marker(), "2")
    assert startup_problems() == [key_layout.OLD_LAYOUT]


def test_an_empty_redis_and_one_this_layout_wrote_start_without_the_marker(redis_client):
    assert startup_problems() == []
    _memory_install()
    working.ensure_session(session_id="chat:1", user_id="alice", title="")
    assert not redis_client.exists(keys.layout_marker())  # nothing ran migrate_keys
    assert startup_problems() == []


def test_a_server_started_without_the_launcher_refuses_the_previous_layout(redis_client, redis_server):
    _legacy_install(redis_client)
    command = [sys.executable, "-m", "core.serve", "-b", "127.0.0.1", "-p", str(free_port())]

    result = _started([*command, "config.asgi:application"], redis_server.url)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == key_layout.OLD_LAYOUT
