"""What a user gets back: raw turns kept as `message` memories, facts linked to the turn that said
them, the profile for broad questions, the calibrated cut, and a fact shown once with its turn."""

import json
import time

import pytest

from chat.offline import compose_reply
from chat.phrasing import group_of, second_person
from devtools.llm_server import Reply
from memory import working
from memory.index import forget_index_cache
from memory.lifecycle import erase_user
from memory.prompt import _memory_line, build_prompt
from memory.query import MemoryFilter
from memory.recall import is_profile_question
from memory.selectors import get_memory, list_memories, memories_from_turns
from memory.services import add_memory
from memory.types import ROLE_TOPIC_PREFIX, MemoryType, Scope
from memory.worker import Worker
from tests.extraction_helpers import drain, facts, said, say
from tests.memory_helpers import ANYONE, STAFF, USER, scope


@pytest.fixture
def offline(settings):
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""
    settings.EXTRACTION_DEBOUNCE_SECONDS = 0


def _messages(user_id="alice"):
    page = list_memories(filter=MemoryFilter.build(user_id=user_id, types=["message"]), limit=100)
    return page.memories


# --- raw turns as memories ------------------------------------------------------------------------


def test_a_finished_turn_is_kept_as_a_message_memory_of_its_session(offline, settings):
    say("alice", "s1", "I have been knitting sweaters for twenty years.", reply="Lovely!")
    drain(Worker(worker_id="w1"))
    [message] = _messages()
    assert message.text == "I have been knitting sweaters for twenty years."
    assert message.scope.session_id == "s1" and message.type == MemoryType.MESSAGE
    assert message.topics == [ROLE_TOPIC_PREFIX + "user"] and message.said_by == "user"
    assert message.source and message.source[0].startswith("s1-")
    # Its own TTL setting: 90 days by default.
    assert settings.MESSAGE_TTL_SECONDS == 90 * 24 * 3600
    assert message.ttl_seconds is None or message.ttl_seconds > 89 * 24 * 3600
    assert (get_memory(owner=ANYONE, memory_id=message.id).ttl_seconds or 0) > 89 * 24 * 3600


def test_assistant_turns_are_kept_only_by_setting_and_chit_chat_not_at_all(offline, settings):
    say("alice", "s1", "hi!", reply="Hello there, how can I help?")
    say("alice", "s1", "I play the cello in an orchestra.", reply="That sounds wonderful to play.")
    drain(Worker(worker_id="w1"))
    assert said("alice") == ["I play the cello in an orchestra."]
    settings.MESSAGE_MEMORY_ROLES = ("user", "assistant")
    say("alice", "s2", "I grow tomatoes on my balcony.", reply="Tomatoes love the sun.")
    drain(Worker(worker_id="w1"))
    roles = sorted(m.topics[0] for m in _messages() if m.scope.session_id == "s2")
    assert roles == [ROLE_TOPIC_PREFIX + "assistant", ROLE_TOPIC_PREFIX + "user"]


def test_a_fact_links_to_the_turn_that_said_it_not_every_turn_of_the_batch(offline, settings):
    settings.EXTRACTION_DEBOUNCE_SECONDS = 0
    working.ensure_session(session_id="s1", user_id="alice")
    first = say("alice", "s1", "I live in Porto.")
    second = say("alice", "s1", "My dog Rex is a beagle.")
    assert (first, second) == (1, 2)
    drain(Worker(worker_id="w1"))
    by_text = {f.text: f for f in facts("alice")}
    lives, dog = by_text["User lives in Porto"], by_text["User's dog Rex is a beagle"]
    assert len(lives.source) == 1 and len(dog.source) == 1 and lives.source != dog.source
    [source] = memories_from_turns(user_id="alice", turn_ids=lives.source, types=["message"])
    assert source.text == "I live in Porto."
    learned = memories_from_turns(user_id="alice", turn_ids=source.source, types=["semantic"])
    assert [m.text for m in learned] == ["User lives in Porto"]


def test_the_model_names_the_line_a_memory_comes_from(product_llm, settings):
    settings.EXTRACTION_DEBOUNCE_SECONDS = 0
    settings.EXTRACTION_RETRY_BACKOFF_SECONDS = 0
    product_llm.enqueue(
        Reply(json.dumps({"memories": [{"text": "User lives in Porto", "source": [1]}], "forget": []}))
    )
    say("alice", "s1", "I live in Porto.", reply="Nice city!")
    drain(Worker(worker_id="w1"))
    [fact] = facts("alice")
    [message] = _messages()
    assert fact.source == message.source, "line 1 of the transcript is the user's message"
    assert "#1 [" in product_llm.chat_requests()[0].messages[1]["content"]


def test_a_source_line_that_is_not_in_the_transcript_is_junk(product_llm, settings):
    settings.EXTRACTION_DEBOUNCE_SECONDS = 0
    settings.EXTRACTION_RETRY_BACKOFF_SECONDS = 0
    settings.EXTRACTION_MAX_DELIVERIES = 1
    product_llm.enqueue(Reply(json.dumps({"memories": [{"text": "User lives in Porto", "source": [7]}]})))
    say("alice", "s1", "I live in Porto.")
    drain(Worker(worker_id="w1"))
    assert facts("alice") == []
    assert said("alice") == ["I live in Porto."], "the turn itself is kept although extraction failed"


def test_erase_removes_message_memories_too(offline):
    say("alice", "s1", "I have two cats called Miso and Tofu.")
    drain(Worker(worker_id="w1"))
    assert said("alice") and facts("alice")
    erase_user(user_id="alice", actor=STAFF)
    assert said("alice") == [] and facts("alice") == []


# --- dates ----------------------------------------------------------------------------------------


def test_an_upcoming_event_outlives_the_default_ttl_and_its_date_is_said_once(settings):
    settings.EPISODIC_TTL_SECONDS = 90 * 24 * 3600
    in_120_days = time.time() + 120 * 24 * 3600
    event = add_memory(text="User has a dentist appointment", scope=scope(), actor=USER, type="episodic",
                       event_date=in_120_days)  # fmt: skip
    assert (get_memory(owner=ANYONE, memory_id=event.id).ttl_seconds or 0) > 200 * 24 * 3600
    dated = add_memory(text="User ran a race on 3 March 2026", scope=scope(), actor=USER, type="episodic",
                       event_date=1772496000.0)  # fmt: skip
    assert _memory_line(dated).count("3 March 2026") == 1
    assert _memory_line(event).endswith(")"), "a date the text does not say is added once"


# --- recall ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "question",
    [
        "What do you remember about me?",
        "what do u know about me",
        "Tell me about myself",
        "what have I told you so far about myself?",
        "can you give me a quick rundown of what you know about me?",
        "Who am I?",
    ],
)
def test_broad_questions_are_profile_questions(question):
    assert is_profile_question(question)


@pytest.mark.parametrize(
    "question", ["What do you know about my sister?", "Where do I work?", "Tell me a joke about me", "hi"]
)
def test_other_questions_are_searches(question):
    assert not is_profile_question(question)


def _profile_user():
    for text, topics, type_ in [
        ("User's name is Priya", ["identity"], "semantic"),
        ("User is vegetarian", ["diet"], "semantic"),
        ("User works at St. Mary's", ["work"], "semantic"),
        ("User went to a concert on 3 May 2025", ["events"], "episodic"),
        ("I'm a nurse at St. Mary's, long shifts this week", [ROLE_TOPIC_PREFIX + "user"], "message"),
    ]:
        add_memory(text=text, scope=scope(), actor=USER, topics=topics, type=type_)
    working.ensure_session(session_id="s-new", user_id="alice")


def test_a_profile_question_gets_the_most_important_facts_not_a_threshold(settings):
    _profile_user()
    built = build_prompt(user_id="alice", session_id="s-new", message="What do you remember about me?")
    texts = [h.memory.text for h in built.memories]
    assert built.profile and texts[0] == "User's name is Priya"
    assert set(texts) == {"User's name is Priya", "User is vegetarian", "User works at St. Mary's",
                          "User went to a concert on 3 May 2025"}  # fmt: skip
    assert texts[-1].startswith("User went to a concert"), "a past event matters least"
    assert {h.reason for h in built.memories} == {"profile"}
    assert built.trace.mode == "profile"
    assert all(m.admitted_by.startswith("profile question") for m in built.trace.memories)
    reply = compose_reply(built, "What do you remember about me?", scope=Scope(user_id="alice"))
    assert (
        "I don't remember" not in reply and "Your name is Priya." in reply and "You are vegetarian." in reply
    )


def test_where_do_i_work_finds_the_work_fact_and_the_trace_says_why(settings):
    _profile_user()
    built = build_prompt(user_id="alice", session_id="s-new", message="Where do I work?")
    texts = [h.memory.text for h in built.memories]
    assert "User works at St. Mary's" in texts[:2]
    rule = built.trace.memories[0].admitted_by
    assert rule.startswith("score ") and "cut" in rule and "best" in rule
    assert "St. Mary's" in compose_reply(built, "Where do I work?", scope=Scope(user_id="alice"))


def test_a_fact_and_the_turn_it_came_from_are_shown_once(offline):
    say("alice", "s1", "I work as a nurse at St. Mary's hospital.")
    drain(Worker(worker_id="w1"))
    working.ensure_session(session_id="s-new", user_id="alice")
    built = build_prompt(user_id="alice", session_id="s-new", message="Where do I work as a nurse?")
    texts = [h.memory.text for h in built.memories]
    assert "User works as a nurse at St. Mary's hospital" in texts
    assert "I work as a nurse at St. Mary's hospital." not in texts
    [left_out] = [m for m in built.trace.left_out if m.type == "message"]
    assert left_out.why.startswith(("said as a fact", "its fact is shown"))


def test_turns_of_the_conversation_itself_are_not_recalled_again(offline):
    say("alice", "s1", "I work as a nurse at St. Mary's hospital.")
    say("alice", "s2", "I play the cello as a nurse would.")
    drain(Worker(worker_id="w1"))
    # Still in the same chat: its own turns are in the recent messages already, and searched they
    # would also set the relative cut for the memories that are shown.
    built = build_prompt(user_id="alice", session_id="s1", message="What do I do as a nurse?")
    sessions = {h.memory.scope.session_id for h in built.memories if h.memory.type == MemoryType.MESSAGE}
    assert "s1" not in sessions
    assert any(h.memory.text == "User works as a nurse at St. Mary's hospital" for h in built.memories)
    other = build_prompt(user_id="alice", session_id="s3", message="What do I do as a nurse?")
    assert any(h.memory.type == MemoryType.MESSAGE for h in [*other.memories, *other.near_misses]), (
        "a raw turn of another chat is still found"
    )


def test_the_offline_reply_speaks_to_the_user_and_does_not_contradict_itself(offline):
    working.ensure_session(session_id="s-new", user_id="alice")
    built = build_prompt(user_id="alice", session_id="s-new", message="I'm vegetarian and I play the cello")
    reply = compose_reply(built, "I'm vegetarian and I play the cello", scope=Scope(user_id="alice"))
    assert "I don't remember" not in reply, "not next to what it just learned"
    assert "• You are vegetarian" in reply and "• You play the cello" in reply


@pytest.mark.parametrize(
    ("third", "second"),
    [
        ("User's name is Priya", "Your name is Priya"),
        ("User is allergic to peanuts", "You are allergic to peanuts"),
        ("User works as a nurse at St. Mary's", "You work as a nurse at St. Mary's"),
        ("User has a dog named Rex", "You have a dog named Rex"),
        ("User studies law", "You study law"),
        ("User teaches maths", "You teach maths"),
        ("User went to Lisbon on 3 May 2026", "You went to Lisbon on 3 May 2026"),
        (
            "On 3 May 2026, User's sister and User went hiking",
            "On 3 May 2026, your sister and you went hiking",
        ),
        ("Always reply in French", "Always reply in French"),
    ],
)
def test_second_person(third, second):
    assert second_person(third) == second


def test_facts_are_grouped_in_plain_words():
    memory = add_memory(text="User is vegan", scope=scope(), actor=USER, topics=["diet"])
    assert group_of(memory) == "Health and food"
    rule = add_memory(text="Always reply in French", scope=scope(), actor=USER, type="procedural")
    assert group_of(rule) == "How you want me to answer"


def test_an_index_made_before_source_turns_existed_gets_the_field(redis_client):
    from memory.index import index_name, search_index

    schema = search_index().schema.to_dict()
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "source_turns"]
    schema["index"]["name"] = index_name()  # made before index versions, too
    from redisvl.index import SearchIndex

    SearchIndex.from_dict(schema, redis_client=redis_client, validate_on_load=False).create(overwrite=True)
    forget_index_cache()
    memory = add_memory(text="User lives in Porto", scope=scope(), actor=USER, source=["turn-1"])
    attributes = redis_client.execute_command("FT.INFO", index_name())
    assert b"source_turns" in json.dumps(str(attributes)).encode()
    assert [m.id for m in memories_from_turns(user_id="alice", turn_ids=["turn-1"])] == [memory.id]


# --- forgetting ----------------------------------------------------------------------------------


def test_forgetting_a_fact_also_forgets_the_words_it_was_learned_from(offline):
    from chat.services import forget_own_memory

    say("alice", "s1", "I have type 1 diabetes and I play chess.")
    drain(Worker(worker_id="w1"))
    diabetes = next(f for f in facts("alice") if "diabetes" in f.text)
    forget_own_memory(user_id="alice", memory_id=diabetes.id)
    assert said("alice") == [], "the raw turn went with the fact"
    assert [f.text for f in facts("alice")] == ["User plays chess"], "other facts of that turn stay"


def test_asking_to_forget_forgets_the_fact_and_its_words_and_keeps_no_copy_of_the_request(offline):
    say("alice", "s1", "I have type 1 diabetes.")
    drain(Worker(worker_id="w1"))
    say("alice", "s1", "Please forget that I have type 1 diabetes.")
    drain(Worker(worker_id="w1"))
    assert facts("alice") == [] and said("alice") == []


def test_quitting_retires_the_users_own_fact_and_nobody_elses(offline):
    say("alice", "s1", "I do F45 three times a week. My brother lives in London.")
    drain(Worker(worker_id="w1"))
    say("alice", "s1", "So I quit F45, my knees were wrecked. I left London yesterday after a lovely visit.")
    drain(Worker(worker_id="w1"))
    texts = {f.text for f in facts("alice")}
    assert "User does F45 three times a week" not in texts and "User quit F45" in texts
    assert "User's brother lives in London" in texts, "leaving a city after a visit retires nothing"
