"""One serialisation of a search hit (issue 15, item 3), with a view per client. Each view keeps
the keys its reader uses: static/js/chat.js (the "Memories used" of a done frame), the model (the
search_memory tool result), static/js/demo.js (a recall frame) and stored traces."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chat.demo import recall_frame
from chat.tools import ToolContext, run_tool
from chat.turns import memories_used
from memory.hits import hit_as_dict
from memory.services import add_memory
from memory.traces import RetrievalTrace, TraceHit
from memory.types import Memory, Scope, ScoreBreakdown, SearchHit
from tests.memory_helpers import USER

pytestmark = pytest.mark.django_db

SCORE = ScoreBreakdown(vector=0.81234, keyword=0.4, recency=0.99, final=0.70126, topic=1.0)


def _hit(redis_client: Any, text: str = "User's dog is called Rex") -> SearchHit:
    memory: Memory = add_memory(text=text, scope=Scope(user_id="alice"), actor=USER)
    return SearchHit(memory, SCORE)


def test_the_staff_view_has_what_chat_js_reads_for_staff(redis_client: Any) -> None:
    hit = _hit(redis_client)
    [shown] = memories_used([hit], staff=True)
    assert list(shown) == ["id", "text", "type", "reason", "scores", "ranked_by", "rank", "why", "link"]
    assert shown["text"] == "User's dog is called Rex" and shown["type"] == "semantic"
    # chat.js: scores.final/.vector/.keyword/.recency with toFixed, and why/ranked_by.
    assert {"final", "vector", "keyword", "recency"} <= set(shown["scores"])
    assert (
        shown["scores"]["final"] == 0.7013 and shown["ranked_by"] == "score" and shown["why"] == "score 0.701"
    )
    assert shown["link"] == f"/inspector/memories/{hit.memory.id}/"


def test_the_user_view_has_the_phrased_text_and_the_link_only(redis_client: Any) -> None:
    hit = _hit(redis_client)
    [shown] = memories_used([hit], staff=False)
    assert list(shown) == ["id", "text", "link"]
    assert shown["text"] == "Your dog is called Rex."
    assert hit_as_dict(hit, view="user") == {"id": hit.memory.id, "text": "User's dog is called Rex"}


def test_the_tool_view_gives_the_model_the_final_score_to_three_digits(redis_client: Any) -> None:
    hit = _hit(redis_client)
    assert hit_as_dict(hit, view="tool") == {
        "id": hit.memory.id,
        "text": "User's dog is called Rex",
        "type": "semantic",
        "score": 0.701,
    }
    outcome = run_tool(
        ToolContext(user_id="alice", session_id="s1", model="m"),
        name="search_memory",
        raw_arguments='{"query": "dog Rex"}',
    )
    [found] = json.loads(json.dumps(outcome.result))["memories"]
    assert list(found) == ["id", "text", "type", "score"] and found["id"] == hit.memory.id


def test_the_trace_and_demo_views_keep_the_stored_and_demo_js_keys(redis_client: Any) -> None:
    hit = _hit(redis_client)
    stored = TraceHit.from_hit(hit, admitted_by="score 0.701 >= cut 0.300").as_dict()
    assert list(stored) == ["id", "text", "type", "reason", "pinned", "scores", "source", "admitted_by"]
    # The staff view is the stored record's fields plus the ranking: one serialisation.
    staff = hit_as_dict(hit, view="staff")
    assert {k: staff[k] for k in ("id", "text", "type", "reason", "scores")} == {
        k: stored[k] for k in ("id", "text", "type", "reason", "scores")
    }
    trace = RetrievalTrace.from_dict(
        {"turn_id": "t1", "session_id": "s1", "user_id": "alice", "at": 1.0, "query": "q", "mode": "hybrid",
         "cut": 0.3, "memories": [stored], "near_misses": [TraceHit.from_hit(hit).as_dict()]}
    )  # fmt: skip
    frame = recall_frame(trace)
    # demo.js: text, forgotten, type, score, rule of each hit.
    for shown in (frame["memories"][0], frame["near_misses"][0]):
        assert list(shown) == ["id", "text", "type", "score", "rule", "forgotten"]
        assert shown["score"] == 0.7013 and shown["text"] == "User's dog is called Rex"
    assert frame["memories"][0]["rule"] == "score 0.701 >= cut 0.300"
    assert frame["near_misses"][0]["rule"] == "below the cut 0.300"
