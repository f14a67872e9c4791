"""Offline mode: the rules extractor runs the same scenarios as the LLM path, through real workers."""

import pytest

from memory.extraction import queue
from memory.extraction.rules import RULES_VERSION
from memory.query import MemoryFilter
from memory.selectors import list_memories, memory_history
from memory.services import set_pinned
from memory.types import ActorKind
from memory.worker import Worker
from tests.extraction_helpers import drain, facts, say, texts
from tests.memory_helpers import ANYONE, STAFF


@pytest.fixture(autouse=True)
def offline(settings):
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""
    settings.EXTRACTION_DEBOUNCE_SECONDS = 0


def _memory(user_id, text):
    return next(
        m
        for m in list_memories(filter=MemoryFilter.build(user_id=user_id), limit=100).memories
        if m.text == text
    )


def test_explicit_statements_become_memories_written_by_the_rules_extractor():
    say("alice", "s1", "Hi, my name is Alice. I live in Lisbon and I work as a nurse. I love hiking.")
    drain(Worker(worker_id="w1"))
    assert texts("alice") == [
        "User likes hiking",
        "User lives in Lisbon",
        "User works as a nurse",
        "User's name is Alice",
    ]
    added = memory_history(memory_id=_memory("alice", "User lives in Lisbon").id)[0]
    assert added.actor.kind == ActorKind.EXTRACTOR
    assert added.actor.model == "rules" and added.actor.prompt_version == RULES_VERSION


def test_a_move_updates_the_location_with_history():
    say("alice", "s1", "I live in Lisbon.")
    drain(Worker(worker_id="w1"))
    say("alice", "s1", "Big news: I moved from Lisbon to Porto.")
    drain(Worker(worker_id="w1"))
    assert texts("alice") == ["User lives in Porto"]
    history = memory_history(memory_id=_memory("alice", "User lives in Porto").id)
    assert [(e.event, e.old_text, e.new_text) for e in history[1:]] == [
        ("updated", "User lives in Lisbon", "User lives in Porto")
    ]


def test_a_later_preference_replaces_the_earlier_one():
    say("alice", "s1", "I prefer Python.")
    drain(Worker(worker_id="w1"))
    say("alice", "s1", "I now prefer Rust.")
    drain(Worker(worker_id="w1"))
    assert texts("alice") == ["User prefers Rust"]
    history = memory_history(memory_id=_memory("alice", "User prefers Rust").id)
    assert history[-1].old_text == "User prefers Python"


def test_a_repeated_statement_is_a_noop():
    say("alice", "s1", "I have a dog named Rex.")
    drain(Worker(worker_id="w1"))
    say("alice", "s2", "As I said, I have a dog named Rex.")
    drain(Worker(worker_id="w1"))
    assert texts("alice") == ["User has a dog named Rex"]
    assert queue.queue_health()["counters"]["outcome_noop"] >= 1


def test_remember_and_forget_requests():
    say("alice", "s1", "Please remember that my locker code is 4521.")
    drain(Worker(worker_id="w1"))
    assert texts("alice") == ["User's locker code is 4521"]
    say("alice", "s1", "Forget my locker code.")
    drain(Worker(worker_id="w1"))
    assert texts("alice") == []
    history = memory_history(memory_id=_memory_any_deleted())
    assert history[-1].event == "deleted" and history[-1].actor.kind == ActorKind.EXTRACTOR


def _memory_any_deleted() -> str:
    from memory.selectors import deleted_memories

    return deleted_memories(user_id="alice")[0].id


def test_pinned_memories_survive_a_forget_request():
    say("alice", "s1", "Remember that I am allergic to penicillin.")
    drain(Worker(worker_id="w1"))
    memory = facts("alice")[0]
    set_pinned(owner=ANYONE, memory_id=memory.id, pinned=True, actor=STAFF)
    say("alice", "s1", "Forget that I am allergic to penicillin.")
    drain(Worker(worker_id="w1"))
    assert texts("alice") == [memory.text]


def test_dated_events_resolve_relative_dates_against_the_turn():
    # 2026-11-24 12:00 UTC
    say("alice", "s1", "I went to the Lisbon aquarium yesterday.", at=1795521600.0)
    drain(Worker(worker_id="w1"))
    [memory] = facts("alice")
    assert memory.type == "episodic"
    assert "23 November 2026" in memory.text
    assert memory.event_date == 1795392000.0


def test_compaction_folds_old_messages_into_the_summary(settings):
    from memory import working

    settings.WORKING_MEMORY_TOKEN_LIMIT = 150
    settings.WORKING_MEMORY_KEEP_MESSAGES = 4
    for n in range(8):
        say("alice", "s1", f"Message number {n} is about topic {n}. More words to take up tokens here.")
    drain(Worker(worker_id="w1"))
    session = working.get_session(session_id="s1")
    assert session is not None
    assert session.message_count == 4
    assert "Message number 0 is about topic 0." in session.summary
    assert [m.content for m in working.get_messages(session_id="s1")][-1] == "Noted."
