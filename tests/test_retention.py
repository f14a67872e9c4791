"""Retention (issue 12, item 2): once a memory expired or was purged, its words are gone from every
key (history, audit stream, traces, plans, pending turns, dead letters, export), on a schedule the
worker keeps, with one text-free audit event left per memory."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from inspector.presenters import feed_entry
from memory import keys, working
from memory.export import export_user
from memory.extraction import dead_letters, queue
from memory.extraction.queue import QueuedTurn
from memory.extraction.types import TurnMessage
from memory.prompt import build_prompt
from memory.retention import run_retention
from memory.selectors import audit_events, get_memory, memory_history, recent_events
from memory.services import add_memory, delete_memory, update_memory
from memory.types import MemoryNotFound, MemoryType, Scope
from memory.worker import Worker
from tests.extraction_helpers import adding_plan
from tests.memory_helpers import ANYONE, USER, everything_in_redis

OWNER = "keeper-9"
KEPT = "User keeps a tortoise called Zorblax"
EPISODE_V1 = "User has a dentist appointment at the Quixotel clinic"
EPISODE_V2 = "User has a dentist appointment at the Quixotel clinic on Friday"
SAID = "I told my boss about the Vantablack project yesterday"
OTHER_LETTER = "A failed turn about Glimmerfen marshes"


def _add(text: str, **kwargs: Any) -> Any:
    return add_memory(text=text, scope=Scope(user_id=OWNER), actor=USER, **kwargs)


def _letter(session_id: str, text: str) -> None:
    turn = QueuedTurn(
        seq=1,
        turn_id=f"{session_id}-t1",
        user_id=OWNER,
        session_id=session_id,
        agent_id="engram",
        namespace="default",
        strategy="",
        messages=[TurnMessage("user", text, time.time(), f"{session_id}-t1")],
    )
    dead_letters.dead_letter(
        session_id=session_id, user_id=OWNER, turns=[turn], error="model down", entries=[]
    )


def _wait_until_gone(client: Any, redis_key: str) -> None:
    deadline = time.monotonic() + 5
    while client.exists(redis_key):
        assert time.monotonic() < deadline, f"{redis_key} did not expire"
        time.sleep(0.01)


def _places_with(text: str, client: Any) -> list[str]:
    return sorted(k for k, v in everything_in_redis(client).items() if text in v or text in k)


@pytest.fixture
def short_grace(settings: Any) -> Any:
    settings.SOFT_DELETE_GRACE_SECONDS = 50
    return settings


def test_expired_and_purged_memories_leave_no_words_in_any_key(redis_client, short_grace):
    working.ensure_session(session_id="s-ret", user_id=OWNER)
    kept = _add(KEPT)
    episode = _add(EPISODE_V1, type=MemoryType.EPISODIC, ttl_seconds=100)
    update_memory(owner=ANYONE, memory_id=episode.id, text=EPISODE_V2, actor=USER)
    said = _add(SAID, type=MemoryType.MESSAGE)
    # Traces that show both memories, and a turn whose message was SAID.
    build_prompt(user_id=OWNER, session_id="s-ret", message="What do you remember about me?", turn_id="t1")
    build_prompt(user_id=OWNER, session_id="s-ret", message=SAID, turn_id="t2")
    first = working.get_trace(session_id="s-ret", turn_id="t1")
    assert first is not None and episode.id in {m["id"] for m in first["memories"]}
    delete_memory(owner=ANYONE, memory_id=said.id, actor=USER)  # purged once the (50 s) grace period ends
    # Where else the words sit: a saved plan, a pending turn, a dead letter.
    queue.save_plan("s-plan", 1, adding_plan(EPISODE_V2, user_id=OWNER))
    queue.save_plan("s-other", 1, adding_plan("Unrelated plan", user_id=OWNER))
    queue.enqueue_turn(
        user_id=OWNER, session_id="s-pending", turn_id="p1", messages=[TurnMessage("user", SAID, time.time())]
    )
    _letter("s-dead", SAID)
    _letter("s-dead-2", OTHER_LETTER)
    for text in (EPISODE_V1, EPISODE_V2, SAID):
        assert _places_with(text, redis_client), f"the setup should have stored {text!r}"

    # Not due yet: nothing is touched.
    early = run_retention(now=time.time() + 10)
    assert early.memory_ids == [] and memory_history(memory_id=episode.id)

    report = run_retention(now=time.time() + 200)

    assert sorted(report.memory_ids) == sorted([episode.id, said.id])
    assert (report.expired, report.purged) == (1, 1)
    assert report.histories == 2 and report.extraction_plans == 1 and report.pending_turns == 1
    assert report.dead_letters == 1 and report.traces == 2 and report.mutation_events >= 4
    for text in (EPISODE_V1, EPISODE_V2, SAID):
        assert _places_with(text, redis_client) == [], f"{text!r} is still stored"
    for memory_id in (episode.id, said.id):
        with pytest.raises(MemoryNotFound):
            get_memory(owner=ANYONE, memory_id=memory_id)
        assert memory_history(memory_id=memory_id) == []
    # The audit keeps that they went (ids, kind, time, actor), without a word of them.
    audit = audit_events([f for _, f in redis_client.xrange(keys.mutation_stream())])
    about = {e["memory_id"]: e for e in audit if e["memory_id"] in (episode.id, said.id)}
    assert {m: e["event"] for m, e in about.items()} == {episode.id: "expired", said.id: "purged"}
    assert all(
        e["old"] is None and e["new"] is None and e["actor"]["id"] == "retention" for e in about.values()
    )
    assert about[episode.id]["details"] == {"type": "episodic"}
    # What was not forgotten is untouched.
    assert get_memory(owner=ANYONE, memory_id=kept.id).text == KEPT
    assert [e.event for e in memory_history(memory_id=kept.id)] == ["added"]
    ids = {m.decode() for m in redis_client.smembers(keys.user_memory_ids(OWNER))}
    assert ids == {kept.id}
    assert redis_client.exists(keys.extraction("s-other", "plan:1"))
    assert [d.turns[0].messages[0].content for d in dead_letters.dead_letters()] == [OTHER_LETTER]
    # Traces keep their shape (ids, scores), with the words blanked.
    first = working.get_trace(session_id="s-ret", turn_id="t1")
    second = working.get_trace(session_id="s-ret", turn_id="t2")
    assert first is not None and second is not None
    hit = next(m for m in first["memories"] if m["id"] == episode.id)
    assert hit["text"] == "" and hit["forgotten"] is True
    assert next(m for m in first["memories"] if m["id"] == kept.id)["text"] == KEPT
    assert second["query"] == "" and second["query_forgotten"] is True
    # A second sweep has nothing left to do and adds no second audit event.
    again = run_retention(now=time.time() + 300)
    assert again.memory_ids == [] and again.mutation_events == 0
    assert redis_client.xlen(keys.mutation_stream()) == len(audit)


def test_a_memory_redis_expired_by_itself_is_cleaned_up_and_never_exported(redis_client):
    working.ensure_session(session_id="s-exp", user_id=OWNER)
    _add(KEPT)
    episode = _add(EPISODE_V1, type=MemoryType.EPISODIC, ttl_seconds=3600)
    build_prompt(user_id=OWNER, session_id="s-exp", message="What do you remember about me?", turn_id="t1")
    redis_client.pexpire(keys.memory(episode.id), 1)  # Redis's own expiry, as after an hour
    _wait_until_gone(redis_client, keys.memory(episode.id))

    # Before any sweep: the export ships neither its history nor its words in a trace.
    export = json.dumps(export_user(user_id=OWNER, exported_by="support"))
    assert EPISODE_V1 not in export and KEPT in export
    assert memory_history(memory_id=episode.id), "history is left behind until the sweep"

    report = run_retention()

    assert report.memory_ids == [episode.id] and report.expired == 1
    assert _places_with(EPISODE_V1, redis_client) == []


def test_the_worker_runs_the_sweep_once_per_interval(redis_client, settings):
    settings.RETENTION_SWEEP_SECONDS = 600
    worker = Worker(worker_id="sweeper")
    t0 = time.time()

    def expired_memory(text: str) -> str:
        memory = _add(text, type=MemoryType.EPISODIC, ttl_seconds=3600)
        redis_client.pexpire(keys.memory(memory.id), 1)
        _wait_until_gone(redis_client, keys.memory(memory.id))
        return memory.id

    first = expired_memory("User visited the Ploughmoor fair")
    report = worker.housekeeping(now=t0)
    assert report is not None and report.memory_ids == [first]

    second = expired_memory("User visited the Snowlark museum")
    assert worker.housekeeping(now=t0 + 10) is None, "not due: the last sweep was 10 s ago"
    assert Worker(worker_id="another").housekeeping(now=t0 + 20) is None, "one sweep for all workers"
    assert memory_history(memory_id=second)

    later = worker.housekeeping(now=t0 + 600)
    assert later is not None and later.memory_ids == [second]
    assert memory_history(memory_id=second) == []


def test_a_running_worker_sweeps_by_itself(redis_client, settings):
    settings.RETENTION_SWEEP_SECONDS = 1
    settings.WORKER_HEARTBEAT_SECONDS = 1
    memory = _add("User visited the Ploughmoor fair", type=MemoryType.EPISODIC, ttl_seconds=3600)
    redis_client.pexpire(keys.memory(memory.id), 1)
    worker = Worker(worker_id="looping")
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while memory_history(memory_id=memory.id):
            assert time.monotonic() < deadline, "the worker never ran the retention sweep"
            time.sleep(0.1)
    finally:
        worker.stop()
        thread.join(timeout=10)
    assert _places_with("Ploughmoor", redis_client) == []


def test_dead_letters_are_dropped_after_their_retention(redis_client, settings):
    settings.DEAD_LETTER_RETENTION_SECONDS = 3600
    _letter("s-dead", OTHER_LETTER)
    assert run_retention(now=time.time() + 60).dead_letters == 0
    assert len(dead_letters.dead_letters()) == 1
    assert run_retention(now=time.time() + 3601).dead_letters == 1
    assert dead_letters.dead_letters() == []


# --- The inspector still shows what is left -----------------------------------------------------


@pytest.fixture
def as_viewer(client: Client, db: Any) -> Client:
    user = get_user_model().objects.create_user("vera", password="pw-vera-12345", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="memory", codename="view_memories")
    )
    client.force_login(user)
    return client


def test_the_inspector_shows_forgotten_memories_without_their_words(as_viewer, redis_client, short_grace):
    working.ensure_session(session_id="s-ins", user_id=OWNER)
    kept = _add(KEPT)
    episode = _add(EPISODE_V1, type=MemoryType.EPISODIC, ttl_seconds=100)
    build_prompt(user_id=OWNER, session_id="s-ins", message="What do you remember about me?", turn_id="t1")
    run_retention(now=time.time() + 200)

    session_page = as_viewer.get(reverse("inspector:session", kwargs={"session_id": "s-ins"}))
    assert session_page.status_code == 200
    body = session_page.content.decode()
    assert EPISODE_V1 not in body and KEPT in body and "Forgotten: this memory expired" in body
    user_page = as_viewer.get(reverse("inspector:user", kwargs={"user_id": OWNER}))
    assert user_page.status_code == 200 and "Expired (words removed)" in user_page.content.decode()
    assert as_viewer.get(reverse("inspector:memory", kwargs={"memory_id": kept.id})).status_code == 200
    assert as_viewer.get(reverse("inspector:memory", kwargs={"memory_id": episode.id})).status_code == 404
    [tombstone] = [e for e in recent_events(user_id=OWNER) if e["event"] == "expired"]
    entry = feed_entry(tombstone)
    assert entry.memory_id == episode.id and entry.text == "" and entry.memory_url == ""
