"""Driving the extraction pipeline from tests: queue turns, run workers until the queue is empty."""

import time

from memory import working
from memory.extraction import queue
from memory.extraction.types import Candidate, ExtractionPlan, Op, PlanExtractor, TurnMessage
from memory.query import MemoryFilter
from memory.selectors import list_memories
from memory.types import Memory, MemoryType, Scope
from memory.worker import Worker


def say(user_id: str, session_id: str, text: str, *, reply: str = "Noted.", at: float | None = None) -> int:
    """A finished chat turn: saved to working memory and queued for extraction."""
    at = at or time.time()
    working.ensure_session(session_id=session_id, user_id=user_id)
    turn_id = f"{session_id}-{int(at * 1000)}-{len(working.get_messages(session_id=session_id))}"
    # As the chat does: each message of working memory knows its turn.
    meta = {"turn_id": turn_id}
    working.append_message(session_id=session_id, role="user", content=text, at=at, meta=meta)
    working.append_message(session_id=session_id, role="assistant", content=reply, at=at, meta=meta)
    seq, _ = queue.enqueue_turn(
        user_id=user_id,
        session_id=session_id,
        turn_id=turn_id,
        messages=[TurnMessage("user", text, at, turn_id), TurnMessage("assistant", reply, at, turn_id)],
    )
    return seq


def adding_plan(*texts: str, user_id: str, from_seq: int = 1) -> ExtractionPlan:
    """A saved plan (as a worker makes it) that adds `texts` for `user_id`."""
    return ExtractionPlan(
        from_seq=from_seq,
        to_seq=from_seq,
        scope=Scope(user_id=user_id),
        extractor=PlanExtractor(model="rules", prompt_version="rules-test"),
        ops=[Op("add", Candidate(text=text)) for text in texts],
    )


def drain(*workers: Worker, timeout: float = 30.0) -> None:
    """Step the workers until every queued entry is acknowledged."""
    queue.ensure_group()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            worker.step()
        if queue.queue_health()["pending"] == 0 and queue.queue_health()["lag"] == 0:
            return
    raise AssertionError(f"queue not drained in {timeout}s: {queue.queue_health()}")


FACT_TYPES = [t for t in MemoryType if t != MemoryType.MESSAGE]


def facts(user_id: str) -> list[Memory]:
    """The user's extracted memories (raw turns, stored as `message` memories, left out)."""
    return list_memories(filter=MemoryFilter.build(user_id=user_id, types=FACT_TYPES), limit=500).memories


def texts(user_id: str) -> list[str]:
    return sorted(m.text for m in facts(user_id))


def said(user_id: str) -> list[str]:
    """The texts of the user's `message` memories (what they said, kept verbatim)."""
    page = list_memories(filter=MemoryFilter.build(user_id=user_id, types=["message"]), limit=500)
    return sorted(m.text for m in page.memories)
