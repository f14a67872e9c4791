"""The extraction queue on a local 3-node Redis Cluster, its turn stream split over shards, and the
cluster key layout itself (every multi-key transaction of a session or a user in one slot)."""

import uuid
from collections.abc import Iterator

import pytest
import redis
from redis.cluster import key_slot

from memory import keys, user_index, working
from memory.extraction import dead_letters, queue
from memory.lease import take_over
from memory.services import add_memory
from memory.types import SYSTEM, Lease, LeaseLost, Scope
from tests.extraction_helpers import say
from tests.fixtures_cluster import LocalCluster, on_cluster
from tests.test_extraction_reliability import (  # noqa: F401  (collected here once more, on the cluster)
    test_a_locks_mirror_never_outlives_the_lock,
    test_entries_from_before_the_shard_count_was_raised_are_acknowledged_where_they_were_read,
)

SHARDS = 6


@pytest.fixture(autouse=True)
def _empty_redis(_empty_redis: redis.Redis, redis_cluster: LocalCluster, settings) -> Iterator[redis.Redis]:
    settings.TURN_STREAM_SHARDS = SHARDS
    with on_cluster(redis_cluster) as client:
        queue.ensure_group()
        yield client


def _node(client: redis.Redis, key: str) -> str:
    return client.get_node_from_key(key).name


def test_turns_of_many_sessions_spread_over_shards_and_nodes_and_all_are_read(redis_client):
    sessions = [f"s{i}" for i in range(24)]
    for session_id in sessions:
        say("alice", session_id, f"I like number {session_id}.")

    used = {keys.turn_stream_of(s) for s in sessions}
    assert len(used) >= 4  # no one stream takes every turn ...
    assert len({_node(redis_client, stream) for stream in used}) >= 2  # ... nor one node
    entries = queue.read_entries(consumer="w1", block_ms=10, count=100)
    assert sorted(e.session_id for e in entries) == sorted(sessions)
    assert queue.queue_health()["pending"] == len(sessions)

    for entry in entries:
        [turn] = queue.pending_turns(entry.session_id, after=0)
        token = queue.acquire_lock(entry.session_id, owner="w1", life="1")
        assert token
        queue.commit(
            session_id=entry.session_id,
            to_seq=turn.seq,
            from_seq=turn.seq,
            entries=[entry],
            lease=queue.lease(entry.session_id, token),
        )
        queue.release_lock(entry.session_id, token)
    health = queue.queue_health()
    assert health["pending"] == 0 and health["stream_length"] == len(sessions)
    assert all(queue.cursor(s) == 1 for s in sessions)


def test_a_dead_workers_entries_are_reclaimed_from_every_shard(redis_client, settings):
    for i in range(12):
        say("bob", f"r{i}", "Hello.")
    held = queue.read_entries(consumer="dead", block_ms=10, count=100)
    assert len({keys.turn_stream_of(e.session_id) for e in held}) >= 3
    settings.EXTRACTION_RECLAIM_IDLE_SECONDS = 0
    claimed = queue.reclaim_stale(consumer="alive")
    assert sorted(e.id for e in claimed) == sorted(e.id for e in held)
    assert queue.remove_idle_consumers(idle_seconds=0, keep="alive") == ["dead"]
    assert {c["name"] for c in queue.queue_health()["consumers"]} == {"alive"}


def test_a_turn_stored_but_never_announced_is_announced_again(redis_client, monkeypatch):
    def died(**kwargs):
        raise ConnectionError("the process died between storing and announcing")

    monkeypatch.setattr(queue, "announce", died)
    with pytest.raises(ConnectionError):
        say("carol", "lost", "My sister is called Ann.")
    monkeypatch.undo()
    assert queue.read_entries(consumer="w1", block_ms=10) == []
    assert [t.seq for t in queue.pending_turns("lost", after=0)] == [1]

    assert queue.announce_stranded(older_than=3600) == 0  # too recent: its announcement may be on its way
    assert queue.announce_stranded(older_than=0) == 1
    [entry] = queue.read_entries(consumer="w1", block_ms=10)
    assert (entry.session_id, entry.user_id, entry.seq) == ("lost", "carol", 1)
    # Announced and pending now: a second sweep leaves it alone only once it is committed.
    queue.commit(session_id="lost", to_seq=1, from_seq=1, entries=[entry])
    assert queue.announce_stranded(older_than=0) == 0


def _stored_not_announced(monkeypatch: pytest.MonkeyPatch, user_id: str, session_id: str, text: str) -> None:
    def died(**kwargs):
        raise ConnectionError("the process died between storing and announcing")

    with monkeypatch.context() as patched:
        patched.setattr(queue, "announce", died)
        with pytest.raises(ConnectionError):
            say(user_id, session_id, text)


def test_a_commit_landing_while_the_sweep_reads_a_stranded_turn_is_skipped(redis_client, monkeypatch):
    """A worker commits the session (its turns hash emptied) between the sweep's read of the
    session and its read of the turn: nothing to announce, and the sweep does not fail."""
    _stored_not_announced(monkeypatch, "carol", "lost", "My sister is called Ann.")
    real = keys.extraction
    parts: list[str] = []

    def commit_lands_here(session_id: str, part: str) -> str:
        if session_id == "lost" and part == "turns" and "failures" in parts and "committed" not in parts:
            parts.append("committed")  # the sweep has read the session; next it reads the turn
            queue.commit(session_id="lost", to_seq=1, from_seq=1, entries=[])
        parts.append(part)
        return real(session_id, part)

    monkeypatch.setattr(keys, "extraction", commit_lands_here)
    assert queue.announce_stranded(older_than=0) == 0
    monkeypatch.undo()
    assert "committed" in parts
    assert queue.read_entries(consumer="w1", block_ms=10) == []


def test_an_unreadable_stranded_turn_does_not_stop_the_sweep(redis_client, monkeypatch, caplog):
    _stored_not_announced(monkeypatch, "carol", "broken", "My sister is called Ann.")
    _stored_not_announced(monkeypatch, "erin", "fine", "My brother is called Bo.")
    redis_client.hset(keys.extraction("broken", "turns"), "1", "{not json")

    assert queue.announce_stranded(older_than=0) == 1
    [entry] = queue.read_entries(consumer="w1", block_ms=10)
    assert (entry.session_id, entry.user_id) == ("fine", "erin")
    assert any("broken" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_a_dead_letter_on_the_cluster(redis_client):
    say("dave", "d1", "I have two cats.")
    [entry] = queue.read_entries(consumer="w1", block_ms=10)
    turns = queue.pending_turns("d1", after=0)
    token = queue.acquire_lock("d1")
    assert token
    dead_letters.dead_letter(
        session_id="d1",
        user_id="dave",
        turns=turns,
        error="boom",
        entries=[entry],
        lease=queue.lease("d1", token),
    )
    health = queue.queue_health()
    assert health["dead_letters"] == 1 and health["pending"] == 0 and queue.cursor("d1") == 1


def test_many_users_touch_many_index_shards_and_read_back_as_one_list(redis_client):
    for i in range(40):
        working.ensure_session(session_id=f"u{i}-s", user_id=f"user-{i}")
    assert not redis_client.exists(keys.legacy_users())
    assert sum(1 for shard in keys.user_shards() if redis_client.exists(shard)) >= 8
    assert user_index.count() == 40
    recent = user_index.most_recent(offset=0, limit=50)
    assert [u for u, _ in recent] == [f"user-{i}" for i in reversed(range(40))]
    assert user_index.most_recent(offset=5, limit=3) == recent[5:8]


@pytest.mark.parametrize("weird", ["plain", "a:b", "}x{", "{", "}", "{}", "%7B", "a}b:c{d"])
def test_every_key_of_a_session_or_of_the_memory_tier_shares_one_slot(weird):
    session_keys = [*keys.session_keys(weird), *keys.extraction_keys(weird), keys.extraction(weird, "plan:3")]
    assert len({key_slot(k.encode()) for k in session_keys}) == 1
    # A user's memory ids and trash belong to the memory tier (one slot for all of it); the
    # session list stays with the user's other keys.
    memory_tier = [
        keys.memory(weird),
        keys.trash(weird),
        keys.history(weird),
        keys.memory_stats(weird),
        keys.memory_id_claim(weird),
        keys.idempotency(weird),
        keys.user_memory_ids(weird),
        keys.user_trash(weird),
        keys.extraction_lock_mirror(weird),
        keys.mutation_stream(),
    ]
    assert len({key_slot(k.encode()) for k in memory_tier}) == 1
    assert keys.lock_mirror(keys.extraction_lock(weird)) == keys.extraction_lock_mirror(weird)
    assert keys.split_family_key(keys.session_messages(weird), "wm") == (weird, "msgs")
    assert keys.split_family_key(keys.extraction_lock(weird), "extract") == (weird, "lock")


def test_a_take_over_between_the_lock_and_its_mirror_leaves_the_job_nothing(redis_client, monkeypatch):
    """The lock and its mirror (memory slot) are two steps: an erase landing between them wins."""
    real_mirror = keys.extraction_lock_mirror
    taken: list[str] = []
    calls: list[str] = []

    def erase_lands_here(session_id: str) -> str:
        calls.append(session_id)
        if len(calls) == 1:  # the job's first step is done, its mirror not yet set
            taken.append(take_over([keys.extraction_lock(session_id)], seconds=60))
        return real_mirror(session_id)

    monkeypatch.setattr(keys, "extraction_lock_mirror", erase_lands_here)
    monkeypatch.setattr(queue.uuid, "uuid4", lambda: uuid.UUID(int=7))
    assert queue.acquire_lock("e1", owner="w1", life="1") is None
    monkeypatch.undo()
    [eraser] = taken
    job_token = f"w1|1|{uuid.UUID(int=7).hex}"
    assert redis_client.get(keys.extraction_lock("e1")) == eraser.encode()
    # The job set its mirror after the eraser's, saw the lock was not its own and took it back.
    assert redis_client.get(keys.extraction_lock_mirror("e1")) != job_token.encode()
    with pytest.raises(LeaseLost):
        add_memory(
            text="written after the erase",
            scope=Scope(user_id="erin"),
            actor=SYSTEM,
            lease=Lease(keys.extraction_lock("e1"), job_token),
        )
    assert not redis_client.exists(keys.user_memory_ids("erin"))


def test_a_job_holding_the_lock_writes_memories_until_it_is_taken_over(redis_client):
    token = queue.acquire_lock("e2", owner="w1", life="1")
    assert token
    lease = queue.lease("e2", token)
    add_memory(text="I have a bike", scope=Scope(user_id="erin"), actor=SYSTEM, lease=lease)
    take_over([keys.extraction_lock("e2")], seconds=60)
    with pytest.raises(LeaseLost):
        add_memory(text="I have a car", scope=Scope(user_id="erin"), actor=SYSTEM, lease=lease)
    assert redis_client.scard(keys.user_memory_ids("erin")) == 1
