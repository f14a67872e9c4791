"""Durability: a worker killed mid-job, exactly-once application, two workers keeping per-session order."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from devtools.llm_server import DelayReply, Reply
from memory import keys
from memory.extraction import pipeline, queue
from memory.extraction.types import Candidate
from memory.selectors import memory_history
from memory.worker import Worker
from tests.extraction_helpers import drain, facts, said, say, texts

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def llm(product_llm, settings):
    settings.EXTRACTION_DEBOUNCE_SECONDS = 0
    settings.EXTRACTION_RETRY_BACKOFF_SECONDS = 0.1
    return product_llm


def memories_reply(*texts_):
    return Reply(json.dumps({"memories": [{"text": t, "type": "semantic"} for t in texts_]}))


@pytest.mark.slow
def test_a_worker_killed_mid_job_is_replaced_and_nothing_is_lost_or_doubled(llm, redis_server, settings):
    settings.EXTRACTION_RECLAIM_IDLE_SECONDS = 1.0
    settings.EXTRACTION_LOCK_SECONDS = 2.0
    llm.enqueue(
        DelayReply(60, then=memories_reply("never used")),
        memories_reply("User has two cats", "User lives in Braga"),
    )
    env = {
        **os.environ,
        "DEBUG": "1",
        "REDIS_URL": redis_server.url,
        "OPENAI_BASE_URL": llm.base_url,
        "OPENAI_API_KEY": "test-key",
        "LLM_MAX_RETRIES": "0",
        "EXTRACTION_DEBOUNCE_SECONDS": "0",
        "EXTRACTION_RECLAIM_IDLE_SECONDS": "1",
        "EXTRACTION_LOCK_SECONDS": "2",
        "WORKER_HEARTBEAT_SECONDS": "1",
    }
    victim = subprocess.Popen(
        [sys.executable, "manage.py", "memory_worker", "--worker-id", "victim"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        say("alice", "s1", "I have two cats and I live in Braga.")
        llm.wait_for_requests(1, timeout=60)  # the victim is now inside the job, waiting on the model
        assert queue.queue_health()["consumers"][0]["name"] == "victim"
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    assert texts("alice") == []
    # What was said is stored before the model is asked: the kill cannot lose it.
    assert said("alice") == ["I have two cats and I live in Braga."]

    rescuer = Worker(worker_id="rescuer")
    time.sleep(1.1)  # the entry has been idle long enough to be reclaimed
    queue.reclaim_stale(consumer="rescuer")
    drain(rescuer, timeout=30)

    assert texts("alice") == ["User has two cats", "User lives in Braga"]
    assert said("alice") == ["I have two cats and I live in Braga."], "the turn is not stored twice"
    assert len(llm.chat_requests()) == 2
    health = queue.queue_health()
    assert health["pending"] == 0 and health["dead_letters"] == 0
    for memory in facts("alice"):
        assert [e.event for e in memory_history(memory_id=memory.id)] == ["added"]
        assert memory_history(memory_id=memory.id)[0].actor.id == "rescuer"


def test_a_plan_half_applied_before_a_crash_is_finished_exactly_once(llm):
    llm.enqueue(memories_reply("User likes chess", "User likes go", "User likes shogi"))
    say("alice", "s1", "I like chess, go and shogi.")
    turns = queue.pending_turns("s1", after=0)
    plan = pipeline.build_plan(turns, llm=pipeline.extraction_llm())
    queue.save_plan("s1", 1, plan)
    # The crash: only the first operation of the plan made it before the process died.
    first_only = replace(plan, ops=plan.ops[:1])
    pipeline.apply_plan(first_only, session_id="s1", worker_id="crashed")
    assert texts("alice") == ["User likes chess"]

    drain(Worker(worker_id="w2"))

    assert texts("alice") == ["User likes chess", "User likes go", "User likes shogi"]
    assert len(llm.chat_requests()) == 1, "the stored plan was reused, the model not asked again"
    for memory in facts("alice"):
        assert [e.event for e in memory_history(memory_id=memory.id)] == ["added"]


def test_duplicate_deliveries_are_acknowledged_without_work(llm):
    llm.enqueue(memories_reply("User likes tea"))
    say("alice", "s1", "I like tea.")
    drain(Worker(worker_id="w1"))
    entries = [
        queue.StreamEntry(
            id="0-1", stream=keys.turn_stream(0), session_id="s1", user_id="alice", seq=1, at=time.time()
        )
    ]
    assert pipeline.process_entries(entries, worker_id="w1") == {}
    assert texts("alice") == ["User likes tea"]
    assert said("alice") == ["I like tea."]
    assert Candidate(text="x").kind == "remember"


_CITY = re.compile(r"I live in (City\w+)")


def _latest_city(request):
    """Emulates the model: extraction returns where the user lives now; decisions update it."""
    system = request["messages"][0]["content"]
    prompt = request["messages"][1]["content"]
    if system.startswith("You maintain"):
        facts = re.findall(r"^(\d+): (.+)$", prompt.split("New facts:")[1], re.MULTILINE)
        decisions = [
            {"fact": int(n), "action": "UPDATE", "id": "m1", "text": t, "reason": "moved"} for n, t in facts
        ]
        return Reply(json.dumps({"decisions": decisions}))
    cities = _CITY.findall(prompt)
    return Reply(json.dumps({"memories": [{"text": f"User lives in {cities[-1]}"}]}))


def test_two_workers_in_parallel_keep_each_sessions_turns_in_order(llm, settings):
    settings.EXTRACTION_RELATED_DISTANCE = 0.9  # every city is "related" to the previous one
    llm.default_reply = _latest_city
    sessions, turns = 6, 5
    workers = [Worker(worker_id=f"w{n}") for n in (1, 2)]
    threads = [threading.Thread(target=w.run) for w in workers]
    for thread in threads:
        thread.start()
    try:
        for k in range(turns):
            for s in range(sessions):
                say(f"user{s}", f"s{s}", f"I live in City{s}x{k}.")
            time.sleep(0.05)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            health = queue.queue_health()
            if health["pending"] == 0 and health["lag"] == 0:
                break
            time.sleep(0.1)
    finally:
        for worker in workers:
            worker.stop()
        for thread in threads:
            thread.join(timeout=10)
    handled_by = set()
    for s in range(sessions):
        assert texts(f"user{s}") == [f"User lives in City{s}x{turns - 1}"]
        assert said(f"user{s}") == [f"I live in City{s}x{k}." for k in range(turns)]
        memory = facts(f"user{s}")[0]
        history = memory_history(memory_id=memory.id)
        order = [int(e.new_text.rsplit("x", 1)[1]) for e in history if e.new_text]
        assert order == sorted(order) and len(set(order)) == len(order), (s, order)
        handled_by |= {e.actor.id for e in history}
    assert handled_by == {"w1", "w2"}, "both workers took part"
