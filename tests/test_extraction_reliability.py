"""Reliability of the extraction queue (issue 13): take-overs are not failures, dead letters are
atomic, workers keep their names across restarts, dead consumers go, and a worker outlives Redis."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from core.embedded_redis import EmbeddedRedis, free_port
from core.redis_client import get_redis, pointed_at
from core.workers import last_outages, worker_heartbeats
from devtools.llm_server import DelayReply, Reply
from memory import keys
from memory.extraction import dead_letters, queue
from memory.lease import kept_alive, take_over
from memory.types import LeaseLost
from memory.worker import Worker, default_worker_id
from tests.extraction_helpers import drain, said, say, texts

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fast_queue(settings):
    settings.EXTRACTION_DEBOUNCE_SECONDS = 0
    settings.EXTRACTION_RETRY_BACKOFF_SECONDS = 0


def memories_reply(*texts_):
    return Reply(json.dumps({"memories": [{"text": t, "type": "semantic"} for t in texts_]}))


def _failure_counts(session_id):
    return {
        k.decode(): int(v) for k, v in get_redis().hgetall(keys.extraction(session_id, "failures")).items()
    }


def _wait(condition, *, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# --- Failure accounting ---------------------------------------------------------------------------


def test_taking_over_an_abandoned_entry_again_and_again_is_not_a_failure(settings):
    settings.EXTRACTION_MAX_DELIVERIES = 2
    settings.EXTRACTION_RECLAIM_IDLE_SECONDS = 0.1
    say("alice", "s1", "I have two cats and I live in Braga.")
    queue.ensure_group()
    assert len(queue.read_entries(consumer="killed-0", block_ms=10)) == 1
    # Five workers in a row take the entry over and die before doing anything with it.
    for n in range(1, 6):
        time.sleep(0.15)
        assert len(queue.reclaim_stale(consumer=f"killed-{n}")) == 1
    assert _failure_counts("s1") == {}

    time.sleep(0.15)
    rescuer = Worker(worker_id="rescuer")
    rescuer.take_over_abandoned()
    drain(rescuer)

    health = queue.queue_health()
    assert health["dead_letters"] == 0 and "dead_letters" not in health["counters"]
    assert health["counters"]["reclaimed"] == 6
    assert said("alice") == ["I have two cats and I live in Braga."]
    assert texts("alice"), "the turn was extracted, not parked"


def test_attempts_that_ran_and_failed_still_end_in_a_dead_letter(product_llm, settings):
    settings.EXTRACTION_MAX_DELIVERIES = 2
    product_llm.enqueue(Reply("not json"), Reply("still not json"))
    say("alice", "s1", "I have two cats.")
    drain(Worker(worker_id="w1"))
    assert len(product_llm.chat_requests()) == 2
    [letter] = dead_letters.dead_letters()
    assert letter.turns[0].messages[0].content == "I have two cats."
    assert queue.queue_health()["counters"]["dead_letters"] == 1


# --- Dead letters in one step ----------------------------------------------------------------------


def _monitored(action):
    """The commands Redis executed while `action` ran (MONITOR), up to a marker."""
    seen: list[str] = []
    ready = threading.Event()
    client = redis.Redis.from_url(_url(), protocol=2)

    def listen():
        with client.monitor() as monitor:
            ready.set()
            while True:
                command = monitor.next_command()["command"]
                if "end-of-monitored-action" in command:
                    return
                seen.append(command)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    ready.wait(5)
    time.sleep(0.1)  # MONITOR is registered once the server has the command
    action()
    get_redis().echo("end-of-monitored-action")
    thread.join(timeout=10)
    client.close()
    return seen


def _url():
    from django.conf import settings

    return settings.REDIS_URL


def _claimed_turn():
    """One queued turn of session s1, read by worker w1 and locked: what a job holds before parking it."""
    say("alice", "s1", "I have two cats.")
    queue.ensure_group()
    [entry] = queue.read_entries(consumer="w1", block_ms=10)
    turns = queue.pending_turns("s1", after=0)
    token = queue.acquire_lock("s1")
    assert token
    return entry, turns, queue.lease("s1", token)


def test_a_dead_letter_parks_before_it_commits_so_a_kill_loses_no_turn(monkeypatch):
    # Cluster layout: the letter, the session's state and the turn stream sit in different slots,
    # so they cannot share one MULTI. The order makes a kill at any point safe: the letter is
    # written first, the session's commit (cursor, turns) is its own fenced MULTI, the
    # acknowledgement and the counter follow.
    entry, turns, lease = _claimed_turn()

    commands = _monitored(
        lambda: dead_letters.dead_letter(
            session_id="s1", user_id="alice", turns=turns, error="boom", entries=[entry], lease=lease
        )
    )

    letter = next(i for i, c in enumerate(commands) if c.startswith("XADD") and "turns:dead" in c)
    start = next(i for i, c in enumerate(commands) if c.upper() == "MULTI")
    end = next(i for i, c in enumerate(commands) if c.upper() == "EXEC")
    inside = commands[start + 1 : end]
    assert letter < start
    assert any(c.startswith("SET") and ":cursor 1" in c for c in inside), inside
    assert any(c.startswith("HDEL") and c.endswith(":turns 1") for c in inside), inside
    ack = next(i for i, c in enumerate(commands) if c.startswith("XACK"))
    assert ack > end
    assert any(c.startswith("HINCRBY") and c.endswith("dead_letters 1") for c in commands[end:]), commands
    # And the effects agree: parked once, counted once, acknowledged, cursor past the turn.
    health = queue.queue_health()
    assert health["dead_letters"] == 1 and health["counters"]["dead_letters"] == 1 and health["pending"] == 0
    assert queue.cursor("s1") == 1


def test_a_kill_between_the_letter_and_the_commit_keeps_the_turns(monkeypatch):
    entry, turns, lease = _claimed_turn()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed after the letter")

    monkeypatch.setattr(queue, "commit_on", killed)
    with pytest.raises(KeyboardInterrupt):
        dead_letters.dead_letter(
            session_id="s1", user_id="alice", turns=turns, error="boom", entries=[entry], lease=lease
        )
    monkeypatch.undo()
    # Nothing lost: the turn is still the session's, still pending on the stream, and parked.
    assert [t.seq for t in queue.pending_turns("s1", after=queue.cursor("s1"))] == [1]
    assert queue.queue_health()["pending"] == 1
    # The next attempt parks it again (a duplicate letter, never a lost turn) and moves on.
    dead_letters.dead_letter(
        session_id="s1", user_id="alice", turns=turns, error="boom", entries=[entry], lease=lease
    )
    assert queue.cursor("s1") == 1 and queue.queue_health()["pending"] == 0
    assert {t.turn_id for d in dead_letters.dead_letters() for t in d.turns} == {turns[0].turn_id}


def test_a_dead_letter_whose_job_lost_its_lock_writes_nothing_at_all():
    """The second half made impossible (the lock taken over before EXEC): no letter, no count."""
    entry, turns, lease = _claimed_turn()
    get_redis().set(keys.extraction_lock("s1"), "someone-else")
    with pytest.raises(LeaseLost):
        dead_letters.dead_letter(
            session_id="s1", user_id="alice", turns=turns, error="x", entries=[entry], lease=lease
        )
    health = queue.queue_health()
    assert health["dead_letters"] == 0 and "dead_letters" not in health["counters"] and health["pending"] == 1
    assert queue.cursor("s1") == 0


def test_entries_from_before_the_shard_count_was_raised_are_acknowledged_where_they_were_read(settings):
    """The README lets TURN_STREAM_SHARDS be raised: entries announced before then sit on the
    stream their session mapped to then, and are acknowledged there, not on the one it maps to now
    (they came back every round, for ever). One job here holds entries of both streams."""
    settings.EXTRACTION_DEBOUNCE_SECONDS = 0
    settings.TURN_STREAM_SHARDS = 1
    queue.ensure_group()
    sessions = [f"reshard-{n}" for n in range(6)]
    for n, session_id in enumerate(sessions):
        say("alice", session_id, f"I have {n + 2} bicycles in shed {n}.")
    assert len(queue.read_entries(consumer="w1", block_ms=10, count=100)) == len(sessions)

    settings.TURN_STREAM_SHARDS = 4
    queue.ensure_group()
    assert {keys.turn_stream_of(s) for s in sessions} - {keys.turn_stream(0)}, "no session moved"
    say("alice", sessions[1], "My shed is painted green.")  # announced on the session's new stream
    drain(Worker(worker_id="w1"), timeout=10)

    assert queue.queue_health()["pending"] == 0
    assert queue.read_entries(consumer="w1", block_ms=10) == []
    assert len(said("alice")) == len(sessions) + 1


def test_a_locks_mirror_never_outlives_the_lock(settings):
    """Memory writes check the mirror: were it to outlive its lock by the few ms it is set after
    it, a job whose lock lapsed could still write once another worker holds the session."""
    settings.EXTRACTION_LOCK_SECONDS = 60
    lock, mirror = keys.extraction_lock("s1"), keys.extraction_lock_mirror("s1")
    client = get_redis()

    def shorter_by() -> int:
        return int(client.pttl(lock)) - int(client.pttl(mirror))

    token = queue.acquire_lock("s1", owner="w1", life="1")
    assert token and shorter_by() >= 200
    with kept_alive(queue.lease("s1", token), seconds=1.5):  # extended to 1.5 s every 0.5 s
        _wait(lambda: client.pttl(lock) <= 1500, timeout=5, what="the lock to be extended")
        assert shorter_by() >= 200
    take_over([lock], seconds=60)
    assert shorter_by() >= 200


# --- Stable names ----------------------------------------------------------------------------------


def test_worker_names_are_stable_per_host_and_slot():
    assert default_worker_id(slot=2) == default_worker_id(slot=2) != default_worker_id(slot=1)
    assert str(os.getpid()) not in default_worker_id(slot=1).rsplit("-", 1)[0].rsplit("-", 1)[-1]
    assert Worker(slot=3).worker_id == default_worker_id(slot=3)


def test_a_lock_left_by_a_workers_earlier_life_is_taken_back_only_by_that_name():
    first = queue.acquire_lock("s1", owner="host-worker-1")
    assert first
    assert queue.acquire_lock("s1", owner="host-worker-2") is None
    assert queue.acquire_lock("s1", owner="host-worker") is None, "a prefix of the name is not the name"
    assert queue.acquire_lock("s1") is None
    again = queue.acquire_lock("s1", owner="host-worker-1")
    assert again and again != first
    # Another worker's lock is taken only once that worker has started a new life (its holder died).
    queue.register_life(worker_id="host-worker-2", life="life1")
    held = queue.acquire_lock("s3", owner="host-worker-2", life="life1")
    assert held and queue.acquire_lock("s3", owner="host-worker-1", life="x") is None
    queue.register_life(worker_id="host-worker-2", life="life2")
    assert queue.acquire_lock("s3", owner="host-worker-1", life="x")
    # An erase or a login holds the lock under a plain token: nobody takes that.
    get_redis().set(keys.extraction_lock("s2"), "erase-token")
    assert queue.acquire_lock("s2", owner="host-worker-1") is None


@pytest.mark.slow
def test_a_worker_killed_mid_job_and_restarted_under_its_name_resumes_its_own_entries(
    product_llm, redis_server, settings
):
    # Neither the lock (120 s) nor the reclaim time (60 s) would free the job soon.
    settings.EXTRACTION_RECLAIM_IDLE_SECONDS = 60
    settings.EXTRACTION_LOCK_SECONDS = 120
    product_llm.enqueue(
        DelayReply(60, then=memories_reply("never used")), memories_reply("User has two cats")
    )
    env = {
        **os.environ,
        "DEBUG": "1",
        "REDIS_URL": redis_server.url,
        "OPENAI_BASE_URL": product_llm.base_url,
        "OPENAI_API_KEY": "test-key",
        "LLM_MAX_RETRIES": "0",
        "EXTRACTION_DEBOUNCE_SECONDS": "0",
    }
    victim = subprocess.Popen(
        [sys.executable, "manage.py", "memory_worker", "--worker-id", "box-worker-1"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        say("alice", "s1", "I have two cats.")
        product_llm.wait_for_requests(1, timeout=60)  # inside the job, holding the lock and the entry
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    assert get_redis().get(keys.extraction_lock("s1")).startswith(b"box-worker-1|")

    drain(Worker(worker_id="box-worker-1"), timeout=10)

    assert texts("alice") == ["User has two cats"]
    assert len(product_llm.chat_requests()) == 2
    assert _failure_counts("s1") == {} and queue.queue_health()["dead_letters"] == 0
    assert [c["name"] for c in queue.queue_health()["consumers"]] == ["box-worker-1"]


# --- Dead consumers --------------------------------------------------------------------------------


def test_dead_consumers_are_removed_after_their_entries_are_taken_over(settings):
    settings.EXTRACTION_RECLAIM_IDLE_SECONDS = 0.2
    queue.ensure_group()
    for name in ("dead-1", "dead-2"):
        queue.read_entries(consumer=name, block_ms=10)  # seen once, holding nothing
    say("alice", "s1", "I have two cats.")
    assert len(queue.read_entries(consumer="dead-3", block_ms=10)) == 1
    live = Worker(worker_id="live")
    queue.read_entries(consumer="live", block_ms=10)
    assert len(queue.queue_health()["consumers"]) == 4
    time.sleep(0.3)

    live.take_over_abandoned()

    consumers = {c["name"]: c["pending"] for c in queue.queue_health()["consumers"]}
    assert consumers == {"live": 1}, "dead-3's entry is now the live worker's, and the dead are gone"
    assert queue.queue_health()["counters"]["consumers_removed"] == 3
    drain(live)
    assert said("alice") == ["I have two cats."]


def test_a_consumer_holding_entries_is_never_removed():
    queue.ensure_group()
    say("alice", "s1", "I have two cats.")
    queue.read_entries(consumer="busy", block_ms=10)
    time.sleep(0.05)
    assert queue.remove_idle_consumers(idle_seconds=0, keep="other") == []
    assert [(c["name"], c["pending"]) for c in queue.queue_health()["consumers"]] == [("busy", 1)]


# --- Redis outages ---------------------------------------------------------------------------------


def test_a_worker_survives_a_redis_restart_and_its_interrupted_job_is_not_a_failure(
    product_llm, settings, tmp_path, caplog
):
    settings.EXTRACTION_RELATED_DISTANCE = 0.0  # every fact is new: no decision calls to script
    settings.WORKER_HEARTBEAT_SECONDS = 1

    def facts_of(request):
        prompt = request["messages"][-1]["content"]
        return memories_reply("User lives in Braga" if "Braga" in prompt else "User has two cats")

    product_llm.default_reply = facts_of
    # The first model call is slow: Redis dies while the job waits for it.
    product_llm.enqueue(DelayReply(1.0))
    port = free_port()
    server = EmbeddedRedis(port=port, data_dir=tmp_path).start()
    restarted = EmbeddedRedis(port=port, data_dir=tmp_path)
    worker = Worker(worker_id="survivor")
    thread = threading.Thread(target=worker.run, daemon=True)
    try:
        with pointed_at(server.url, channel_prefix="test:asgi"):
            thread.start()
            try:
                say("alice", "s1", "I have two cats.")
                product_llm.wait_for_requests(1, timeout=30)
                assert server.process is not None
                server.process.kill()
                server.process.wait(timeout=10)
                _wait(lambda: "Redis is unreachable" in caplog.text, timeout=15, what="the worker to notice")
                time.sleep(0.5)
                restarted.start()
                _wait(
                    lambda: texts("alice") == ["User has two cats"], timeout=20, what="the interrupted turn"
                )
                say("alice", "s1", "I live in Braga.")
                _wait(lambda: len(texts("alice")) == 2, timeout=20, what="a turn queued after the restart")
            finally:
                worker.stop()
                thread.join(timeout=10)
            assert worker.outage_since is None and worker.outages == 1
            assert texts("alice") == ["User has two cats", "User lives in Braga"]
            assert len(product_llm.chat_requests()) == 3, "the interrupted job asked the model again"
            assert _failure_counts("s1") == {}
            health = queue.queue_health()
            assert health["dead_letters"] == 0 and "jobs_failed" not in health["counters"]
            # Written when Redis was back, for the status page.
            assert last_outages()["survivor"]["seconds"] > 0.4
    finally:
        server.stop()
        restarted.stop()
    lost = [r.getMessage() for r in caplog.records if "Redis is unreachable" in r.getMessage()]
    back = [r.getMessage() for r in caplog.records if "Redis answers again" in r.getMessage()]
    assert len(lost) == 1 and len(back) == 1, "the outage is logged once, and once when it is over"


def test_the_status_page_sees_a_workers_last_redis_outage():
    from core.workers import record_heartbeat, record_outage

    record_heartbeat(worker_id="w1")
    record_heartbeat(worker_id="w2")
    record_outage(worker_id="w1", started_at=100.0, ended_at=112.5)
    beats = {b["id"]: b for b in worker_heartbeats()}
    assert beats["w1"]["last_redis_outage"] == {"started_at": 100.0, "ended_at": 112.5, "seconds": 12.5}
    assert "last_redis_outage" not in beats["w2"]


def test_a_dead_workers_job_is_finished_by_another_once_the_dead_one_restarted(settings):
    settings.EXTRACTION_RECLAIM_IDLE_SECONDS = 0.1
    settings.EXTRACTION_LOCK_SECONDS = 120
    say("alice", "s1", "I have two cats.")
    queue.ensure_group()
    # w1, first life: read the entry, took the session's lock, then was killed.
    queue.register_life(worker_id="w1", life="first")
    assert len(queue.read_entries(consumer="w1", block_ms=10)) == 1
    assert queue.acquire_lock("s1", owner="w1", life="first")
    other = Worker(worker_id="w2")
    time.sleep(0.15)
    other.take_over_abandoned()
    other.step()
    assert said("alice") == [], "w1's first life may still be running: its lock holds"

    queue.register_life(worker_id="w1", life="second")  # w1 is back (its first heartbeat)
    drain(other)
    assert said("alice") == ["I have two cats."]
    assert _failure_counts("s1") == {} and queue.queue_health()["dead_letters"] == 0
