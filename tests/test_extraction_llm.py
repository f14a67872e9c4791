"""Background extraction through a real OpenAI-compatible server on loopback, scripted per test."""

import json

import pytest

from devtools.llm_server import ErrorReply, RawReply, Reply
from memory import keys
from memory.extraction import dead_letters, queue
from memory.extraction.prompts import PROMPT_VERSION
from memory.query import MemoryFilter
from memory.selectors import audit_events, list_memories, memory_history
from memory.services import set_locked
from memory.types import ActorKind
from memory.worker import Worker
from tests.extraction_helpers import drain, say, texts
from tests.memory_helpers import ANYONE, STAFF


@pytest.fixture
def llm(product_llm, settings):
    settings.EXTRACTION_MODEL = "extractor-model"
    settings.EXTRACTION_DEBOUNCE_SECONDS = 0
    settings.EXTRACTION_RETRY_BACKOFF_SECONDS = 0.2
    return product_llm


def memories_reply(*items, forget=()):
    return Reply(json.dumps({"memories": list(items), "forget": list(forget)}))


def fact(text, **extra):
    return {"text": text, "type": "semantic", "topics": [], "entities": [], "event_date": None, **extra}


def decision_for(action, *, text=None):
    """Answers the decision call by pointing at the first memory shown (m1)."""

    def respond(request):
        prompt = request["messages"][1]["content"]
        assert "m1:" in prompt, prompt
        return Reply(
            json.dumps(
                {"decisions": [{"fact": 0, "action": action, "id": "m1", "text": text, "reason": "r"}]}
            )
        )

    return respond


def test_a_conversation_yields_the_expected_memories(llm):
    llm.enqueue(
        memories_reply(
            fact("User lives in Lisbon", topics=["location"], entities=["Lisbon"]),
            fact("User has a dog named Rex", topics=["pets"], entities=["Rex"]),
            fact("User ran a marathon", type="episodic", event_date="2026-11-23"),
        )
    )
    say("alice", "s1", "Hi! I live in Lisbon with my dog Rex. I ran a marathon yesterday.", at=1795526400.0)
    drain(Worker(worker_id="w1"))

    assert texts("alice") == ["User has a dog named Rex", "User lives in Lisbon", "User ran a marathon"]
    request = llm.chat_requests()[0]
    assert request.model == "extractor-model"
    assert request.response_format == {"type": "json_object"}
    assert "I live in Lisbon" in request.messages[1]["content"]
    assert "2026-11-24" in request.messages[1]["content"], "the turn's date is shown to resolve 'yesterday'"
    episodic = next(
        m for m in list_memories(filter=MemoryFilter.build(user_id="alice")).memories if m.type == "episodic"
    )
    assert episodic.event_date == 1795392000.0  # 2026-11-23 00:00 UTC
    added = memory_history(memory_id=episodic.id)[0]
    assert added.actor.kind == ActorKind.EXTRACTOR
    assert added.actor.model == "extractor-model" and added.actor.prompt_version == PROMPT_VERSION
    assert queue.queue_health()["counters"]["outcome_add"] == 3


def test_a_contradiction_becomes_an_update_with_history(llm):
    llm.enqueue(memories_reply(fact("User lives in Lisbon")))
    say("alice", "s1", "I live in Lisbon.")
    drain(Worker(worker_id="w1"))
    llm.enqueue(
        memories_reply(fact("User lives in Porto")), decision_for("UPDATE", text="User lives in Porto")
    )
    say("alice", "s1", "I moved from Lisbon to Porto last month.")
    drain(Worker(worker_id="w1"))

    assert texts("alice") == ["User lives in Porto"]
    decision_request = llm.chat_requests()[-1]
    assert "m1: User lives in Lisbon" in decision_request.messages[1]["content"]
    assert "01" not in decision_request.messages[1]["content"].split("New facts")[0], "no raw ids shown"
    memory = list_memories(filter=MemoryFilter.build(user_id="alice")).memories[0]
    history = memory_history(memory_id=memory.id)
    assert [e.event for e in history] == ["added", "updated"]
    assert history[1].old_text == "User lives in Lisbon" and history[1].new_text == "User lives in Porto"
    assert history[1].actor.kind == ActorKind.EXTRACTOR


def test_a_duplicate_is_a_noop(llm):
    llm.enqueue(memories_reply(fact("User likes green tea")), memories_reply(fact("user likes  green tea")))
    say("alice", "s1", "I like green tea.")
    drain(Worker(worker_id="w1"))
    say("alice", "s1", "Did I mention I like green tea?")
    drain(Worker(worker_id="w1"))
    assert texts("alice") == ["User likes green tea"]
    assert len(llm.chat_requests()) == 2, "no decision call for an exact duplicate"
    assert queue.queue_health()["counters"]["outcome_noop"] == 1


def test_an_invented_memory_id_is_rejected_as_junk(llm, settings):
    settings.EXTRACTION_MAX_DELIVERIES = 1
    llm.enqueue(memories_reply(fact("User lives in Lisbon")))
    say("alice", "s1", "I live in Lisbon.")
    drain(Worker(worker_id="w1"))
    invented = Reply(
        json.dumps({"decisions": [{"fact": 0, "action": "DELETE", "id": "01HXYZ", "reason": "x"}]})
    )
    llm.enqueue(memories_reply(fact("User lives in Porto")), invented)
    say("alice", "s1", "I live in Porto now.")
    drain(Worker(worker_id="w1"))
    assert texts("alice") == ["User lives in Lisbon"], "nothing half-applied"
    assert "not shown" in dead_letters.dead_letters()[0].error


def test_malformed_json_is_retried_then_dead_lettered_with_the_turn_kept(llm, settings, redis_client):
    settings.EXTRACTION_MAX_DELIVERIES = 3
    settings.EXTRACTION_RETRY_BACKOFF_SECONDS = 0
    llm.enqueue(RawReply('{"memories": [oops'), Reply("not json at all"), Reply('{"memories": "nope"}'))
    say("alice", "s1", "I live in Lisbon.")
    drain(Worker(worker_id="w1"))

    assert len(llm.chat_requests()) == 3
    assert texts("alice") == []
    letters = dead_letters.dead_letters()
    assert len(letters) == 1
    assert letters[0].turns[0].messages[0].content == "I live in Lisbon."
    assert letters[0].session_id == "s1" and letters[0].user_id == "alice"
    assert queue.queue_health()["counters"]["dead_letters"] == 1

    # The session is not stuck: the next turn is extracted, and the letter can be retried.
    llm.enqueue(memories_reply(fact("User has a cat")))
    say("alice", "s1", "I have a cat.")
    drain(Worker(worker_id="w1"))
    assert texts("alice") == ["User has a cat"]
    llm.enqueue(memories_reply(fact("User lives in Lisbon")))
    assert dead_letters.retry_dead_letter(letters[0].id, actor=STAFF) == 1
    audit = audit_events([f for _, f in redis_client.xrange(keys.mutation_stream())])
    retried = [e for e in audit if e["event"] == "dead_letter_retried"]
    assert retried and retried[0]["actor"]["id"] == STAFF.id and retried[0]["details"]["turns"] == 1
    drain(Worker(worker_id="w1"))
    assert texts("alice") == ["User has a cat", "User lives in Lisbon"]
    assert dead_letters.dead_letters() == []


def test_server_errors_and_timeouts_are_retried_with_backoff(llm, settings):
    settings.LLM_TIMEOUT_SECONDS = 0.5
    llm.enqueue(
        ErrorReply(status=500),
        Reply("{}", delay=2.0),  # longer than the client timeout
        memories_reply(fact("User speaks Portuguese")),
    )
    say("alice", "s1", "Falo português.")
    drain(Worker(worker_id="w1"))
    assert texts("alice") == ["User speaks Portuguese"]
    first, second, third = llm.chat_requests()
    assert second.received_at - first.received_at >= 0.2, "waited the first backoff"
    assert third.received_at - second.received_at >= 0.4 + 0.5, "backoff doubled (after the 0.5 s timeout)"
    assert queue.queue_health()["counters"]["jobs_failed"] == 2


def test_locked_memories_are_never_changed_by_the_extractor(llm):
    llm.enqueue(memories_reply(fact("User's name is Alice")))
    say("alice", "s1", "My name is Alice.")
    drain(Worker(worker_id="w1"))
    memory = list_memories(filter=MemoryFilter.build(user_id="alice")).memories[0]
    set_locked(owner=ANYONE, memory_id=memory.id, locked=True, actor=STAFF, reason="corrected by support")
    llm.enqueue(
        memories_reply(fact("User's name is Alicia")), decision_for("UPDATE", text="User's name is Alicia")
    )
    say("alice", "s1", "Call me Alicia.")
    drain(Worker(worker_id="w1"))
    assert texts("alice") == ["User's name is Alice"]


def test_a_burst_of_turns_is_extracted_once(llm, settings, redis_client):
    settings.EXTRACTION_DEBOUNCE_SECONDS = 0.5
    llm.enqueue(memories_reply(fact("User likes jazz"), fact("User plays the piano")))
    worker = Worker(worker_id="w1")
    say("alice", "s1", "I like jazz.")
    worker.step()
    say("alice", "s1", "And I play the piano.")
    worker.step()
    assert llm.chat_requests() == [], "still inside the debounce window"
    drain(worker)
    assert len(llm.chat_requests()) == 1
    transcript = llm.chat_requests()[0].messages[1]["content"]
    assert "I like jazz." in transcript and "I play the piano." in transcript
    assert texts("alice") == ["User likes jazz", "User plays the piano"]
    assert redis_client.hlen(keys.extraction("s1", "turns")) == 0
