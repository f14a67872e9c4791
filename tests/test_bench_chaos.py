"""The chaos bench's bookkeeping (bench/chaos_workers.py, bench/chaos_procs.py), on the real embedded Redis.

The bench itself runs minutes; these check, in about a second, that it tells an applied turn from a
parked and a lost one, counts a memory written twice, and finds redis-server by its port.
"""

from bench.chaos_procs import redis_server_pid
from bench.chaos_workers import account
from bench.extraction import enqueue
from bench.extraction_script import PlannedTurn, Workload
from memory import keys, working
from memory.extraction import dead_letters, queue


def _memory_hash(client, memory_id: str, *, user: str, session: str, type_: str, text: str) -> None:
    # What the worker's writes leave behind, as far as the bench's SCAN reads it.
    client.hset(
        keys.memory(memory_id), mapping={"user_id": user, "session_id": session, "type": type_, "text": text}
    )


def test_account_tells_applied_parked_lost_and_duplicate(redis_client):
    user, session = "chaos-user", "chaos-session"
    texts = ["I like green tea.", "I live in Lyon.", "I work as a baker."]
    turns = [PlannedTurn(user, session, text, None) for text in texts]
    working.ensure_session(session_id=session, user_id=user)
    for turn in turns:
        enqueue(turn)
    queued = [(user, session, seq, text) for seq, text in enumerate(texts, start=1)]
    # Turn 1 applied (its message memory stored), turn 2 parked by the delivery count, turn 3 never done.
    queue.commit(session_id=session, to_seq=1, from_seq=1, entries=[])
    _memory_hash(redis_client, "m1", user=user, session=session, type_="message", text=texts[0])
    parked = queue.pending_turns(session, after=1)[:1]
    error = "failed too many times"
    dead_letters.dead_letter(session_id=session, user_id=user, turns=parked, error=error, entries=[])
    # The same fact written twice (a job re-run without its idempotency key would do this).
    for memory_id in ("f1", "f2"):
        _memory_hash(redis_client, memory_id, user=user, session="", type_="fact", text="Likes green tea")

    out = account(Workload(turns=turns), queued)

    assert out["lost_turns"] == 1
    assert out["dead_letters"] == 1
    assert out["dead_lettered_turns"] == 1
    assert out["dead_letters_caused_by_kills"] == 1
    assert out["turns_parked_twice"] == 0
    assert out["duplicate_memories"] == 1
    assert out["applied_turns_without_their_message_memory"] == 0
    # Before the queue is idle, a turn still queued is slow, not lost.
    waiting = account(Workload(turns=turns), queued, drained=False)
    assert (waiting["lost_turns"], waiting["unfinished_turns"]) == (0, 1)


def test_an_applied_turn_without_its_message_memory_is_reported(redis_client):
    user, session = "chaos-user", "chaos-session-2"
    turn = PlannedTurn(user, session, "I have a cat called Miso.", None)
    working.ensure_session(session_id=session, user_id=user)
    enqueue(turn)
    queue.commit(session_id=session, to_seq=1, from_seq=1, entries=[])

    out = account(Workload(turns=[turn]), [(user, session, 1, turn.text)])

    assert out["lost_turns"] == 0
    assert out["applied_turns_without_their_message_memory"] == 1


def test_redis_server_is_found_by_its_port(redis_server):
    assert redis_server.process is not None
    assert redis_server_pid(redis_server.port) == redis_server.process.pid
    assert redis_server_pid(1) is None
