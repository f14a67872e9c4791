"""Erase that is complete (issue 12, item 3) and an identity move that loses nothing while an
extraction job runs (item 4). The jobs in flight are held inside the scripted model's answer, so
the races are reproduced deterministically."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devtools.llm_server import DelayReply, Reply
from memory import keys, working
from memory.extraction import dead_letters, queue
from memory.extraction.queue import QueuedTurn
from memory.extraction.types import TurnMessage
from memory.lifecycle import erase_user, move_identity
from memory.prompt import build_prompt
from memory.query import MemoryFilter
from memory.selectors import get_memory, list_memories
from memory.services import add_memory
from memory.types import LeaseLost, Scope
from memory.worker import Worker
from tests.extraction_helpers import adding_plan, drain, facts, said, say
from tests.memory_helpers import ANYONE, STAFF, USER, everything_in_redis

ERASED = "erz-user-7k"
OTHER = "other-user-3q"
SAID_LIVE = "I keep bees named Qwertyuiop in my garden."
SAID_PENDING = "My sister Brunhildexx lives in Oslo now."
SAID_PRUNED = "We talked about the Mnbvcxz festival last week."
SAID_DEAD = "I once lived in the Zyxwvut valley for years."
PLANNED = "User likes Plumbopolis pastries"
ERASED_WORDS = (SAID_LIVE, SAID_PENDING, SAID_PRUNED, SAID_DEAD, PLANNED, "Qwertyuiop", "Brunhildexx")


def _leftovers(client: Any, needles: tuple[str, ...]) -> dict[str, str]:
    """Places (keys, stream entries) where any needle still appears, in the name or the content."""
    return {
        place: value
        for place, value in everything_in_redis(client).items()
        if any(n in place or n in value for n in needles)
    }


def _turn(session_id: str, text: str) -> QueuedTurn:
    at = time.time()
    return QueuedTurn(1, f"{session_id}-t1", ERASED, session_id, "engram", "default", "",
                      [TurnMessage("user", text, at, f"{session_id}-t1")])  # fmt: skip


def test_erase_leaves_no_trace_of_the_user_in_any_key(redis_client, settings):
    settings.EXTRACTION_DEBOUNCE_SECONDS = 0
    say(ERASED, "s-live", SAID_LIVE)
    drain(Worker(worker_id="w1"))
    assert said(ERASED) == [SAID_LIVE]
    build_prompt(user_id=ERASED, session_id="s-live", message="What about my bees?", turn_id="t-live")
    say(ERASED, "s-live", SAID_PENDING)  # queued, not extracted yet
    # A session that expired: pruned from the user's session list, its pending turn still stored.
    say(ERASED, "s-pruned", SAID_PRUNED)
    for redis_key in keys.session_keys("s-pruned"):
        redis_client.pexpire(redis_key, 1)
    time.sleep(0.05)
    assert working.session_ids_for_user(user_id=ERASED) == ["s-live"]
    dead_letters.dead_letter(
        session_id="s-dead",
        user_id=ERASED,
        turns=[_turn("s-dead", SAID_DEAD)],
        error="model down",
        entries=[],
    )
    queue.save_plan("s-plan", 1, adding_plan(PLANNED, user_id=ERASED))
    other = add_memory(text="Other user likes Plumbopolis too", scope=Scope(user_id=OTHER), actor=USER)
    say(OTHER, "s-other", "I collect old maps of Lisbon.")
    assert _leftovers(redis_client, (ERASED, *ERASED_WORDS)), "the setup stored the user's data"

    receipt = erase_user(user_id=ERASED, actor=STAFF)

    left = _leftovers(redis_client, (ERASED, *ERASED_WORDS))
    [audit_place] = list(left)  # the erase's own audit event, nothing else
    assert audit_place.startswith(keys.mutation_stream() + "#")
    audit = json.loads(
        redis_client.xrange(keys.mutation_stream(), min=audit_place.split("#")[1])[0][1][b"data"]
    )
    assert audit["event"] == "user_erased" and audit["old"] is None and audit["new"] is None
    assert not any(word in left[audit_place] for word in ERASED_WORDS)
    # The receipt lists every family it removed something from.
    counts = receipt.counts
    assert receipt.session_ids == ["s-dead", "s-live", "s-plan", "s-pruned"]
    assert counts["sessions"] == 1 and counts["expired_sessions"] == 3
    assert counts["memories"] >= 2 and counts["histories"] == counts["memories"]
    assert counts["pending_turns"] == 2 and counts["extraction_plans"] == 1 and counts["dead_letters"] == 1
    assert counts["queued_turns"] >= 3 and counts["traces"] == 1 and counts["access_stats"] >= 1
    assert counts["idempotency_keys"] >= 1 and counts["mutation_events"] >= 2
    assert (
        counts["extraction_state_keys"] >= 4
        and counts["session_keys"] >= 3
        and counts["user_index_keys"] == 2
    )
    assert audit["details"]["counts"] == counts
    # The other user is untouched, and the queue is not left with entries nobody can finish.
    assert get_memory(owner=ANYONE, memory_id=other.id).text == "Other user likes Plumbopolis too"
    assert queue.pending_turns("s-other", after=0)[0].messages[0].content == "I collect old maps of Lisbon."
    drain(Worker(worker_id="w2"))
    assert said(OTHER) == ["I collect old maps of Lisbon."]
    assert list_memories(filter=MemoryFilter.build(user_id=ERASED)).total == 0


# --- Jobs in flight --------------------------------------------------------------------------------


class HeldAnswer:
    """A scripted model whose first extraction answer waits until the test lets it go."""

    def __init__(self, *texts: str) -> None:
        self.asked = threading.Event()
        self.go = threading.Event()
        self.reply = Reply(json.dumps({"memories": [{"text": t, "type": "semantic"} for t in texts]}))

    def __call__(self, request: dict[str, Any]) -> Reply:
        self.asked.set()
        assert self.go.wait(timeout=20), "the test never let the model answer"
        return self.reply


@pytest.fixture
def held_llm(product_llm: Any, settings: Any) -> Iterator[Callable[..., HeldAnswer]]:
    settings.EXTRACTION_DEBOUNCE_SECONDS = 0
    settings.EXTRACTION_RETRY_BACKOFF_SECONDS = 0.1
    settings.LLM_TIMEOUT_SECONDS = 30
    made: list[HeldAnswer] = []

    def make(*texts: str) -> HeldAnswer:
        held = HeldAnswer(*texts)
        product_llm.default_reply = held
        made.append(held)
        return held

    yield make
    for held in made:
        held.go.set()


def _in_background(worker: Worker) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            drain(worker, timeout=40)
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def test_an_extraction_job_in_flight_cannot_add_memories_after_the_erase(redis_client, held_llm):
    model = held_llm("User grows purple tomatoes called Xanthoria")
    say(ERASED, "s1", "I grow purple tomatoes called Xanthoria.")
    thread, errors = _in_background(Worker(worker_id="w1"))
    assert model.asked.wait(timeout=20), "the job never reached the model"
    assert said(ERASED) == ["I grow purple tomatoes called Xanthoria."], "kept before the model call"

    receipt = erase_user(user_id=ERASED, actor=STAFF)
    model.go.set()  # the job gets its answer after the receipt
    thread.join(timeout=45)

    assert not thread.is_alive() and errors == []
    assert receipt.counts["memories"] == 1  # the raw turn stored before the model call
    assert facts(ERASED) == [] and said(ERASED) == []
    assert list_memories(filter=MemoryFilter.build(user_id=ERASED)).total == 0
    left = _leftovers(redis_client, (ERASED, "Xanthoria"))
    assert [json.loads(v.split("data=", 1)[1])["event"] for v in left.values()] == ["user_erased"]
    health = queue.queue_health()
    assert health["pending"] == 0 and health["dead_letters"] == 0


def test_an_erase_landing_while_a_job_parks_its_turns_leaves_no_dead_letter(redis_client, monkeypatch):
    """The job checked its lock, then the erase took the lock over and scrubbed the dead letters,
    then the job wrote its letter: its fenced commit fails, and it takes the letter back."""
    say(ERASED, "s-parking", SAID_DEAD)
    queue.ensure_group()
    [entry] = queue.read_entries(consumer="w1", block_ms=10)
    turns = queue.pending_turns("s-parking", after=0)
    token = queue.acquire_lock("s-parking", owner="w1", life="1")
    assert token
    real = QueuedTurn.as_json
    erased: list[str] = []

    def erase_lands_here(turn: QueuedTurn) -> str:
        if not erased:  # once: the job is building its letter, its lock check is behind it
            erased.append(turn.session_id)
            erase_user(user_id=ERASED, actor=STAFF)
        return real(turn)

    monkeypatch.setattr(QueuedTurn, "as_json", erase_lands_here)
    with pytest.raises(LeaseLost):
        dead_letters.dead_letter(
            session_id="s-parking",
            user_id=ERASED,
            turns=turns,
            error="model down",
            entries=[entry],
            lease=queue.lease("s-parking", token),
        )
    monkeypatch.undo()

    assert erased == ["s-parking"]
    assert dead_letters.dead_letters() == []
    assert _leftovers(redis_client, (SAID_DEAD, "Zyxwvut")) == {}


def test_logging_in_while_a_job_runs_sends_its_memories_to_the_account(redis_client, held_llm):
    anonymous, account = "anon:visitor-5", "user:42"
    model = held_llm("User plays the theremin every Sunday")
    say(anonymous, "s-anon", "I play the theremin every Sunday.")
    thread, errors = _in_background(Worker(worker_id="w1"))
    assert model.asked.wait(timeout=20), "the job never reached the model"

    # The login: the job chose the visitor as the owner before asking the model.
    moved = move_identity(from_user_id=anonymous, to_user_id=account, actor=USER)
    model.go.set()
    thread.join(timeout=45)

    assert not thread.is_alive() and errors == []
    assert moved == {"memories": 1, "sessions": 1}
    assert [m.text for m in facts(account)] == ["User plays the theremin every Sunday"]
    assert said(account) == ["I play the theremin every Sunday."]
    assert facts(anonymous) == [] and said(anonymous) == []
    assert list_memories(filter=MemoryFilter.build(user_id=anonymous)).total == 0
    assert not redis_client.exists(keys.user_memory_ids(anonymous))
    ids = {m.decode() for m in redis_client.smembers(keys.user_memory_ids(account))}
    assert ids == {m.id for m in facts(account)} | {
        m.id for m in list_memories(filter=MemoryFilter.build(user_id=account, types=["message"])).memories
    }
    assert queue.queue_health()["pending"] == 0


def test_a_memory_added_while_the_move_reads_is_moved_too(redis_client, monkeypatch):
    """The move WATCHes what it read: an add between its read and its write makes it start over."""
    anonymous, account = "anon:visitor-6", "user:43"
    add_memory(text="User likes chess", scope=Scope(user_id=anonymous), actor=USER)
    from memory import lifecycle

    real = lifecycle.from_hash
    added: list[str] = []

    def from_hash_then_add(*args: Any, **kwargs: Any) -> Any:
        if not added:  # once, from inside the move's read phase
            added.append("x")
            add_memory(text="User likes go", scope=Scope(user_id=anonymous), actor=USER)
        return real(*args, **kwargs)

    monkeypatch.setattr(lifecycle, "from_hash", from_hash_then_add)
    moved = move_identity(from_user_id=anonymous, to_user_id=account, actor=USER)

    assert moved["memories"] == 2
    texts = sorted(m.text for m in list_memories(filter=MemoryFilter.build(user_id=account)).memories)
    assert texts == ["User likes chess", "User likes go"]
    assert list_memories(filter=MemoryFilter.build(user_id=anonymous)).total == 0


def test_a_message_written_while_the_move_gives_a_session_away_leaves_it_listed(redis_client, monkeypatch):
    """A login mid-turn: the chat appends a message (the session hash's updated_at) between the
    move's WATCH and its EXEC. The move reads the session again and gives it away; it must never
    stay the visitor's while listed under nobody."""
    anonymous, account = "anon:visitor-7", "user:44"
    working.ensure_session(session_id="s-mid-turn", user_id=anonymous)
    real = working._owner_in
    written: list[str] = []

    def owner_then_a_message(pipe: Any, session_id: str) -> str | None:
        owner = real(pipe, session_id)
        if not written:  # once, from inside the move's WATCH block
            written.append(session_id)
            message = working.new_message(role="user", content="Is my order on its way?")
            working.append_messages(session_id=session_id, messages=[message])
        return owner

    monkeypatch.setattr(working, "_owner_in", owner_then_a_message)
    moved = move_identity(from_user_id=anonymous, to_user_id=account, actor=USER)

    assert written == ["s-mid-turn"]
    assert moved == {"memories": 0, "sessions": 1}
    session = working.get_session(session_id="s-mid-turn")
    assert session is not None and session.user_id == account
    assert working.session_ids_for_user(user_id=account) == ["s-mid-turn"]
    assert [m.content for m in working.get_messages(session_id="s-mid-turn")] == ["Is my order on its way?"]
    assert working.session_ids_for_user(user_id=anonymous, include_expired=True) == []


def test_a_model_call_longer_than_the_lock_still_finishes_its_job(redis_client, product_llm, settings):
    """The lock a job's writes depend on is kept alive while the job runs, so a slow model does
    not make the job lose its own lease (only a takeover does)."""
    settings.EXTRACTION_DEBOUNCE_SECONDS = 0
    settings.EXTRACTION_LOCK_SECONDS = 0.6
    settings.LLM_TIMEOUT_SECONDS = 10
    reply = Reply(json.dumps({"memories": [{"text": "User sails a dinghy", "type": "semantic"}]}))
    product_llm.enqueue(DelayReply(2.0, then=reply))
    say("sailor", "s-slow", "I sail a dinghy on weekends.")
    drain(Worker(worker_id="w1"))
    assert [m.text for m in facts("sailor")] == ["User sails a dinghy"]
    assert len(product_llm.chat_requests()) == 1, "done in one go, not redone after losing its lock"
