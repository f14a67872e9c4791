"""An install from before the cluster layout keeps its data: `migrate_keys` moves its session,
extraction and user keys to their tagged names and its users set into the index shards."""

import json

from django.core.management import call_command

from core.redis_client import key
from memory import key_layout, keys, user_index, working
from memory.extraction import queue


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
