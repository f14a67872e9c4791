"""Retrieval traces are typed and versioned (issue 15, item 3): traces already in Redis (no
`version`) read as version 1 and write back unchanged; odd fields read as empty, as the panels
always read them; a trace this code cannot read is a TraceError, or left out of a session's list."""

from __future__ import annotations

import json
from typing import Any

import pytest

from memory import keys, working
from memory.prompt import build_prompt
from memory.services import add_memory
from memory.traces import TRACE_VERSION, RetrievalTrace, TraceError, session_traces, turn_trace
from memory.types import Scope
from tests.memory_helpers import USER

SCORES = {
    "vector": 0.8123,
    "keyword": 0.4,
    "recency": 0.99,
    "final": 0.7012,
    "bm25_raw": 3.2,
    "session": 0.0,
    "neighbour": 0.0,
    "topic": 1.0,
    "importance": 0.0,
}


def _hit(memory_id: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": memory_id,
        "text": text,
        "type": "semantic",
        "reason": "match",
        "pinned": False,
        "scores": dict(SCORES),
        "source": ["t0"],
        **extra,
    }


# A trace exactly as memory.prompt saved it before traces were typed (no "version").
OLD_TRACE: dict[str, Any] = {
    "turn_id": "01TURN",
    "session_id": "s1",
    "user_id": "alice",
    "at": 1764547200.5,
    "query": "Where do I live?",
    "mode": "hybrid",
    "threshold": 0.3,
    "relative_threshold": 0.5,
    "cut": 0.3506,
    "weights": {"vector": 0.6, "keyword": 0.3, "recency": 0.1, "recency_half_life_days": 30.0},
    "memories": [_hit("01A", "User lives in Porto", admitted_by="score 0.701 >= cut 0.351")],
    "dropped_for_budget": [],
    "near_misses": [_hit("01B", "User likes port wine")],
    "left_out": [_hit("01C", "I live in Porto.", why="said as a fact: its fact is shown")],
    "tokens": {
        "system_instructions": 50,
        "memories": 12,
        "summary": 0,
        "recent_messages": 30,
        "user_message": 6,
        "total": 98,
        "budget": 2000,
        "exact": True,
        "recent_message_count": 2,
    },
    "search_ms": 4.2,
    "took_ms": 9.81,
}


def test_an_old_trace_without_a_version_reads_as_version_1_and_writes_back_the_same() -> None:
    trace = RetrievalTrace.from_dict(OLD_TRACE)
    assert trace.version == 1 == TRACE_VERSION
    assert trace.memories[0].admitted_by.startswith("score 0.701")
    assert trace.left_out[0].why.startswith("said as a fact")
    assert trace.tokens.budget == 2000 and trace.tokens.exact is True
    assert trace.as_dict() == {"version": 1, **OLD_TRACE}
    assert RetrievalTrace.from_dict(json.loads(json.dumps(trace.as_dict()))) == trace


def test_a_redacted_trace_keeps_its_forgotten_marks() -> None:
    redacted = json.loads(json.dumps(OLD_TRACE))
    redacted["memories"][0].update(text="", forgotten=True)
    redacted.update(query="", query_forgotten=True)
    trace = RetrievalTrace.from_dict(redacted)
    assert trace.memories[0].forgotten and trace.query_forgotten
    assert trace.as_dict() == {"version": 1, **redacted}


def test_fields_of_the_wrong_shape_read_as_empty() -> None:
    odd = {**OLD_TRACE, "memories": ["not a hit", {"id": "01A", "scores": "high"}], "tokens": None}
    trace = RetrievalTrace.from_dict({**odd, "cut": "high", "near_misses": {"id": "x"}})
    [hit] = trace.memories
    assert hit.id == "01A" and hit.scores == {} and hit.reason == "match" and hit.text == ""
    assert trace.cut == 0.0 and trace.near_misses == [] and trace.tokens.total == 0


@pytest.mark.parametrize(
    ("junk", "message"),
    [
        (["a", "list"], "a trace must be an object, not list"),
        ({**OLD_TRACE, "version": 2}, "trace version 2 is not one this code reads"),
        ({**OLD_TRACE, "version": "1"}, "trace version '1' is not one this code reads"),
    ],
)
def test_what_is_not_a_trace_is_a_trace_error(junk: Any, message: str) -> None:
    with pytest.raises(TraceError) as raised:
        RetrievalTrace.from_dict(junk)
    assert message in str(raised.value)


def test_a_saved_trace_carries_its_version_and_reads_back_typed(redis_client: Any) -> None:
    add_memory(text="User lives in Porto", scope=Scope(user_id="alice"), actor=USER)
    working.ensure_session(session_id="s1", user_id="alice")
    built = build_prompt(user_id="alice", session_id="s1", message="Where do I live?", turn_id="t1")
    stored = json.loads(redis_client.hget(keys.session_traces("s1"), "t1"))
    assert stored["version"] == TRACE_VERSION
    assert turn_trace(session_id="s1", turn_id="t1") == built.trace
    assert built.trace.memories[0].text == "User lives in Porto"
    # A stored trace that is not one (an old bug, a hand edit) is left out of the session's list.
    redis_client.hset(keys.session_traces("s1"), "t0", json.dumps(["junk"]))
    assert [t.turn_id for t in session_traces(session_id="s1")] == ["t1"]
