"""Issue 14, support staff: one score, one rounding. The grid, "Included because", the formula and
the trace header show the same stored number; the chat's "Memories used" (staff) says which number
ranks each memory and lists them best first."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.template.defaultfilters import floatformat
from django.test import Client

from chat.turns import memories_used
from memory import working
from memory.prompt import admission_rule, build_prompt
from memory.query import MemoryFilter
from memory.scoring import explain_score
from memory.search import search_memories
from memory.services import add_memory
from memory.types import Scope, ScoreBreakdown, SearchHit, SearchResult, score_text
from tests.memory_helpers import EXTRACTOR

pytestmark = pytest.mark.django_db

OWNER = "user-scores"


def _add(text: str) -> Any:
    return add_memory(text=text, scope=Scope(user_id=OWNER), actor=EXTRACTOR)


@pytest.mark.parametrize("value", [0.35449999, 0.3545, 0.12345, 0.9995, 0.0, 0.24668088922597156])
def test_score_text_is_the_templates_rounding_of_the_stored_value(value: float) -> None:
    stored = ScoreBreakdown(vector=0.0, keyword=0.0, recency=0.0, final=value).as_dict()["final"]
    assert score_text(value) == floatformat(stored, 3)


def test_included_because_says_the_number_the_grid_shows() -> None:
    memory = _add("User lives in Lisbon")
    # Stored as 0.3545: the grid (floatformat:3) shows 0.355; the rule said 0.354 from the raw value.
    hit = SearchHit(memory, ScoreBreakdown(vector=0.35, keyword=0.0, recency=0.0, final=0.35449999))
    result = SearchResult(
        hits=[hit], near_misses=[], threshold=0.2, mode="hybrid", took_ms=1.0, cut=0.24668088922597156
    )
    grid = floatformat(hit.score.as_dict()["final"], 3)
    assert grid == "0.355"
    rule = admission_rule(hit, result)
    assert rule.startswith(f"score {grid} >= cut 0.247 "), rule


def test_the_formula_ends_in_the_stored_final() -> None:
    _add("User lives in Lisbon")
    [hit] = search_memories(
        filter=MemoryFilter.build(user_id=OWNER), text="where do I live", threshold=0.0
    ).hits
    stored = hit.score.as_dict()
    # A sum of rounded parts can miss the rounded final by a unit of the last stored digit.
    stored["final"] = round(stored["final"] + 0.0002, 4)
    explained = explain_score(score=stored, mode="hybrid")
    assert explained.reproduces
    assert explained.steps[-1].result == stored["final"]


def test_the_trace_header_rounds_the_cut(client: Client) -> None:
    user = get_user_model().objects.create_user("vera", password="pw-vera-12345", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="memory", codename="view_memories")
    )
    client.force_login(user)
    _add("User lives in Lisbon")
    working.ensure_session(session_id="s-cut", user_id=OWNER)
    build_prompt(user_id=OWNER, session_id="s-cut", message="Where do I live?")
    [trace] = working.list_traces(session_id="s-cut")
    trace["cut"] = 0.24668088922597156
    working.save_trace(session_id="s-cut", turn_id=trace["turn_id"], trace=trace)
    html = client.get("/inspector/sessions/s-cut/").content.decode()
    assert "cut 0.247 (floor" in html
    assert "0.24668088922597156" not in html


def test_memories_used_say_what_ranks_them_and_list_the_best_first() -> None:
    low, high = _add("User likes tea"), _add("User likes coffee")
    pinned, profile = _add("User's name is Priya"), _add("User lives in Porto")
    none = {"vector": 0.0, "keyword": 0.0, "recency": 0.0}
    hits = [
        SearchHit(low, ScoreBreakdown(vector=0.5, keyword=0.1, recency=0.2, final=0.45)),
        SearchHit(profile, ScoreBreakdown(**none, final=0.77, importance=0.77), reason="profile"),
        SearchHit(high, ScoreBreakdown(vector=0.5, keyword=0.1, recency=0.2, final=0.46)),
        SearchHit(pinned, ScoreBreakdown(**none, final=0.0), reason="pinned"),
    ]
    used = memories_used(hits, staff=True)
    assert [m["id"] for m in used] == [pinned.id, profile.id, high.id, low.id]
    assert [(m["ranked_by"], m["rank"]) for m in used] == [
        ("pinned", None),
        ("profile", 0.77),
        ("score", 0.46),
        ("score", 0.45),
    ]
    assert used[0]["why"] == "pinned by staff: always included"
    assert used[1]["why"] == "profile question: importance 0.770"
    assert used[2]["why"] == "score 0.460"
    # A user's list has the same order, without any of it.
    mine = memories_used(hits, staff=False)
    assert [m["id"] for m in mine] == [pinned.id, profile.id, high.id, low.id]
    assert all("ranked_by" not in m and "why" not in m for m in mine)


def test_a_staff_chat_page_says_why_a_pinned_or_profile_memory_was_used(client: Client) -> None:
    from chat.identity import account_memory_id

    user = get_user_model().objects.create_user("stan", password="pw-stan-12345", is_staff=True)
    client.force_login(user)
    owner = account_memory_id(user.pk)
    pinned = add_memory(text="User's name is Stan", scope=Scope(user_id=owner), actor=EXTRACTOR)
    liked = add_memory(text="User likes tea", scope=Scope(user_id=owner), actor=EXTRACTOR)
    none = {"vector": 0.0, "keyword": 0.0, "recency": 0.0}
    hits = [
        SearchHit(pinned, ScoreBreakdown(**none, final=0.0), reason="pinned"),
        SearchHit(liked, ScoreBreakdown(vector=0.5, keyword=0.1, recency=0.2, final=0.45)),
    ]
    working.ensure_session(session_id="s-staff-used", user_id=owner)
    meta = {"turn_id": "t1", "memories": memories_used(hits, staff=True)}
    working.append_message(session_id="s-staff-used", role="assistant", content="Hello Stan", meta=meta)
    html = client.get("/chat/s-staff-used/").content.decode()
    # The pinned memory says why it is there instead of scores of 0.00; the searched one has scores.
    assert "pinned by staff: always included" in html
    assert html.count("final 0.00") == 0
    assert "final 0.45" in html
