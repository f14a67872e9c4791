"""Issue 14, support staff: the score formula, live count fragments, the feed naming memories by
their text, internal topics kept through an edit, entities recomputed with the text, the memory
page's feed panel, the paged sessions sidebar, plurals and the word diff's apostrophes."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from inspector.consumers import render_feed_entry
from inspector.diff import reconstruct, tokens, word_diff
from memory import keys, working
from memory.extraction import queue
from memory.lifecycle import move_identity
from memory.query import MemoryFilter
from memory.search import search_memories
from memory.selectors import get_memory, list_memories, memory_history
from memory.services import add_memory, set_ttl, update_memory
from memory.types import Scope
from memory.worker import Worker
from tests.extraction_helpers import drain, say
from tests.memory_helpers import EXTRACTOR, STAFF

pytestmark = pytest.mark.django_db

OWNER = "user-7"
HX = {"HX-Request": "true"}
TIMES = "\u00d7"  # the formula's multiplication sign


@pytest.fixture
def as_editor(client: Client) -> Client:
    user = get_user_model().objects.create_user("eddie", password="pw-eddie-12345", is_staff=True)
    for codename in ("view_memories", "change_memories"):
        user.user_permissions.add(Permission.objects.get(content_type__app_label="memory", codename=codename))
    client.force_login(user)
    return client


def _add(text: str, user_id: str = OWNER, **kwargs: Any) -> Any:
    return add_memory(
        text=text, scope=Scope(user_id=user_id, **kwargs.pop("scope", {})), actor=EXTRACTOR, **kwargs
    )


def _html(response: Any) -> str:
    return response.content.decode()


# --- 1. The final score, explained ----------------------------------------------------------------


def test_each_hit_shows_the_sum_that_made_its_final_score(as_editor: Client, settings: Any) -> None:
    settings.HYBRID_VECTOR_WEIGHT = 0.7
    settings.HYBRID_KEYWORD_WEIGHT = 0.3
    settings.RECENCY_WEIGHT = 0.1
    _add("User lives in Lisbon")
    _add("User has a dog called Rex")
    response = as_editor.get(f"/inspector/users/{OWNER}/", {"q": "where does the user live in Lisbon"})
    html = _html(response)
    assert response.status_code == 200
    assert "What the scores mean" in html  # the legend
    formulas = re.findall(r"<div class=\"score-formula\" data-score-formula>(.*?)</div>", html, re.S)
    assert formulas, "every hit explains its final score"
    # The weights the engine used (settings), with this hit's own numbers.
    assert (
        f"0.7{TIMES}vector" in formulas[0]
        and f"0.3{TIMES}keyword" in formulas[0]
        and f"0.1{TIMES}recency" in formulas[0]
    )
    assert "÷ 1.1" in formulas[0]
    # Memories said outside a conversation: session and neighbour are folded, not repeated.
    assert "= match" in html and "No conversation context added" in formulas[0]


def test_the_explanation_reproduces_the_engine_score_with_context_and_topic(settings: Any) -> None:
    from memory.scoring import explain_score

    # Two turns of one conversation: the second gets the first's match as session context.
    session = {"session_id": "s-ctx"}
    _add("User lives in Lisbon near the river", scope=session, topics=["location"])
    _add("The flat has a view of the bridge", scope=session)
    _add("User likes green tea")
    result = search_memories(
        filter=MemoryFilter.build(user_id=OWNER),
        text="where do I live",
        threshold=0.0,
        relative_threshold=0.0,
        near_misses=5,
    )
    hits = result.hits + result.near_misses
    assert len(hits) == 3
    explained = [explain_score(score=hit.score, mode=result.mode) for hit in hits]
    for hit, explanation in zip(hits, explained, strict=True):
        assert explanation.kind == "formula" and explanation.reproduces, hit.memory.text
        assert explanation.steps[-1].result == pytest.approx(hit.score.final, abs=1e-6)
    by_text = {hit.memory.text: e for hit, e in zip(hits, explained, strict=True)}
    assert by_text["The flat has a view of the bridge"].context_added
    assert not by_text["User likes green tea"].context_added
    # "where do I live" names the location topic: the last step adds it.
    assert by_text["User lives in Lisbon near the river"].topical
    assert by_text["User lives in Lisbon near the river"].steps[-1].terms[-1].name == "topic"
    # A trace's saved scores (rounded) give the same sum.
    rounded = explain_score(score=hits[0].score.as_dict(), weights=None, mode="hybrid")
    assert rounded.reproduces


def test_a_trace_explains_its_hits_from_the_weights_it_saved(as_editor: Client) -> None:
    from memory.prompt import build_prompt

    _add("User lives in Lisbon")
    working.ensure_session(session_id="s-trace", user_id=OWNER)
    build_prompt(user_id=OWNER, session_id="s-trace", message="Do you know where I live in Lisbon?")
    html = _html(as_editor.get("/inspector/sessions/s-trace/"))
    assert "What the scores mean" in html
    assert "data-score-formula" in html and f"{TIMES}vector" in html


# --- 2. Live counts: the fragments the feed refreshes ---------------------------------------------


def test_the_user_page_header_counts_come_as_a_fragment(as_editor: Client) -> None:
    _add("User lives in Lisbon")
    html = _html(as_editor.get(f"/inspector/users/{OWNER}/", {"part": "counts"}, headers=HX))
    assert 'id="user-counts"' in html and "1 live memory" in html
    assert "memory-results" not in html  # only the counts, not the table
    _add("User has a dog called Rex")
    html = _html(as_editor.get(f"/inspector/users/{OWNER}/", {"part": "counts"}, headers=HX))
    assert "2 live memories" in html
    assert re.search(r'<span class="chip-label">semantic</span> 2', html)


def test_the_overview_totals_and_queue_come_as_fragments(as_editor: Client) -> None:
    _add("User lives in Lisbon")
    totals = _html(as_editor.get("/inspector/", {"part": "totals"}, headers=HX))
    assert 'id="totals"' in totals and "users-panel" not in totals
    assert re.search(r'stat-value">1</span><span class="stat-label">user</span>', totals)
    queue_html = _html(as_editor.get("/inspector/", {"part": "queue"}, headers=HX))
    assert 'id="queue"' in queue_html and "users-panel" not in queue_html
    page = _html(as_editor.get("/inspector/"))
    # Each panel with counts listens for the feed's refresh event.
    for panel in ('id="totals"', 'id="queue"', 'id="users-panel"'):
        tag = page[page.index(panel) - 200 : page.index(panel) + 300]
        assert "memories-changed" in tag, panel


# --- 3. The feed names memories by their text -----------------------------------------------------


def test_ttl_changes_and_moves_show_the_memory_text_or_say_it_is_gone(client: Client) -> None:
    memory = _add("User <b>lives</b> in Lisbon", user_id="anon-1")
    set_ttl(memory_id=memory.id, ttl_seconds=3600, actor=STAFF)
    ttl_event = memory_history(memory_id=memory.id)[-1].as_dict()
    html = render_feed_entry(ttl_event)
    assert "User &lt;b&gt;lives&lt;/b&gt; in Lisbon" in html  # the text, escaped
    assert f"memory {memory.id}" not in html and "expires in 1 h" in html
    move_identity(from_user_id="anon-1", to_user_id="user-2", actor=STAFF)
    moved = memory_history(memory_id=memory.id)[-1].as_dict()
    assert moved["event"] == "moved"
    assert "User &lt;b&gt;lives&lt;/b&gt; in Lisbon" in render_feed_entry(moved)
    # Gone for good: plain words, no id.
    from core.redis_client import get_redis

    get_redis().delete(keys.memory(memory.id))
    gone = render_feed_entry(ttl_event)
    assert "This memory is gone" in gone and memory.id not in gone.split("data-memory-id")[1].split(">", 1)[1]


# --- 4. Internal topics are not the staff's to edit -----------------------------------------------


def test_the_edit_form_hides_the_slot_topic_and_saving_keeps_it(as_editor: Client) -> None:
    memory = _add("User lives in Lisbon", topics=["location", "slot:location"])
    html = _html(as_editor.get(f"/inspector/memories/{memory.id}/"))
    found = re.search(r'<input type="text" name="topics"[^>]*>', html)
    assert found is not None
    field = found.group()
    assert 'value="location"' in field and "slot:" not in field
    assert "slot:location" in html.split('id="internal-topics"')[1][:200]  # shown read-only
    response = as_editor.post(
        f"/inspector/memories/{memory.id}/edit",
        {
            "text": "User lives in Lisbon",
            "type": "semantic",
            "topics": "location, travel",
            "reason": "",
            "expected_version": memory.version,
        },
    )
    assert response.status_code == 302
    after = get_memory(memory_id=memory.id)
    # The memory's own marker is kept.
    assert after.topics == ["location", "travel", "slot:location"]
    # And the extractor still finds the memory by its slot.
    say(OWNER, "s1", "I live in Porto now.")
    drain(Worker(worker_id="w1"))
    assert get_memory(memory_id=memory.id).text == "User lives in Porto"


@pytest.mark.parametrize("typed", ["slot:name", "#slot:location", "Slot:Pets", "said-by:user", " #Said-By:x"])
def test_a_typed_internal_topic_is_refused_with_a_form_error(as_editor: Client, typed: str) -> None:
    memory = _add("User lives in Lisbon", topics=["location", "slot:location"])
    response = as_editor.post(
        f"/inspector/memories/{memory.id}/edit",
        {
            "text": "User lives in Lisbon",
            "type": "semantic",
            "topics": f"home, {typed}",
            "reason": "",
            "expected_version": memory.version,
        },
    )
    assert response.status_code == 400
    html = _html(response)
    assert html.count("slot: and said-by: topics are set by Engram") == 1
    assert 'value="home, ' in html, "what was typed stays in the form"
    after = get_memory(memory_id=memory.id)
    assert (after.version, after.topics) == (memory.version, ["location", "slot:location"])


def test_a_leading_hash_and_case_make_no_new_topic(as_editor: Client) -> None:
    memory = _add("User lives in Lisbon", topics=["location"])
    as_editor.post(
        f"/inspector/memories/{memory.id}/edit",
        {
            "text": "User lives in Lisbon",
            "type": "semantic",
            "topics": "#Location, ##Travel",
            "reason": "",
            "expected_version": memory.version,
        },
    )
    assert get_memory(memory_id=memory.id).topics == ["location", "travel"]


@pytest.mark.parametrize("hx", [True, False])
def test_a_topics_error_is_said_once(as_editor: Client, hx: bool) -> None:
    memory = _add("User lives in Lisbon", topics=["location"])
    response = as_editor.post(
        f"/inspector/memories/{memory.id}/edit",
        {
            "text": "User lives in Lisbon",
            "type": "semantic",
            "topics": "location, " + "x" * 200,
            "reason": "",
            "expected_version": memory.version,
        },
        headers=HX if hx else {},
    )
    assert response.status_code == (200 if hx else 400)  # htmx swaps only a 200
    assert _html(response).count("is too long or has control characters") == 1
    assert get_memory(memory_id=memory.id).version == memory.version


def test_saving_an_unchanged_form_changes_nothing(as_editor: Client) -> None:
    memory = _add("User lives in Lisbon", topics=["location", "slot:location"])
    as_editor.post(
        f"/inspector/memories/{memory.id}/edit",
        {
            "text": memory.text,
            "type": "semantic",
            "topics": "location",
            "reason": "",
            "expected_version": memory.version,
        },
    )
    assert get_memory(memory_id=memory.id).version == memory.version


# --- 5. Entities follow the text ------------------------------------------------------------------


def test_a_staff_edit_recomputes_the_entities(as_editor: Client) -> None:
    memory = _add("User lives in Lisbon", entities=["Lisbon"])
    as_editor.post(
        f"/inspector/memories/{memory.id}/edit",
        {
            "text": "User lives in Porto",
            "type": "semantic",
            "topics": "",
            "reason": "moved",
            "expected_version": memory.version,
        },
    )
    assert get_memory(memory_id=memory.id).entities == ["porto"]


def test_an_edit_keeps_the_entities_the_new_text_still_names() -> None:
    memory = _add("User's sister Ana lives in Lisbon", entities=["ana", "lisbon"])
    updated = update_memory(memory_id=memory.id, text="User's sister Ana lives in New York", actor=STAFF)
    assert updated.entities == ["ana", "new york"]
    # Without a new text the entities are left alone.
    assert update_memory(memory_id=memory.id, topics=["family"], actor=STAFF).entities == ["ana", "new york"]


def test_the_extractor_s_slot_update_recomputes_the_entities(settings: Any) -> None:
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""
    settings.EXTRACTION_DEBOUNCE_SECONDS = 0
    say(OWNER, "s1", "I live in Lisbon.")
    drain(Worker(worker_id="w1"))
    say(OWNER, "s1", "Big news: I moved from Lisbon to Porto.")
    drain(Worker(worker_id="w1"))
    facts = [
        m
        for m in list_memories(filter=MemoryFilter.build(user_id=OWNER), limit=50).memories
        if m.type != "message"
    ]
    assert [(m.text, m.entities) for m in facts] == [("User lives in Porto", ["porto"])]


# --- 6. The memory page's feed panel --------------------------------------------------------------


def test_the_memory_page_feed_starts_with_the_memory_s_changes(as_editor: Client) -> None:
    memory = _add("User lives in Lisbon")
    update_memory(memory_id=memory.id, text="User lives in Porto", actor=STAFF)
    html = _html(as_editor.get(f"/inspector/memories/{memory.id}/"))
    feed = html[html.index('class="panel feed"') :]
    assert feed.count('class="feed-entry') == 2
    assert re.search(r"<p class=\"muted feed-empty\" data-feed-empty hidden>", feed)


# --- 7. A busy user's sessions sidebar ------------------------------------------------------------


def test_the_sessions_sidebar_shows_a_page_of_the_newest(as_editor: Client) -> None:
    for n in range(27):
        working.ensure_session(session_id=f"s-{n:03d}", user_id=OWNER, title=f"Chat number {n}")
    html = _html(as_editor.get(f"/inspector/users/{OWNER}/"))
    sidebar = html[html.index('id="sessions-title"') : html.index('id="deleted-panel"')]
    assert sidebar.count("/inspector/sessions/") == 20
    assert "27 sessions" in html and "Older →" in sidebar
    link = re.search(r'href="([^"]*sessions=2[^"]*)"', sidebar)
    assert link is not None
    older = link.group(1).replace("&amp;", "&")
    html = _html(as_editor.get(f"/inspector/users/{OWNER}/{older.split('#')[0]}"))
    sidebar = html[html.index('id="sessions-title"') : html.index('id="deleted-panel"')]
    assert sidebar.count("/inspector/sessions/") == 7 and "← Newer" in sidebar
    assert as_editor.get(f"/inspector/users/{OWNER}/", {"sessions": "nonsense"}).status_code == 200


# --- 8. Grammar and the word diff -----------------------------------------------------------------


def test_counts_of_one_are_singular(as_editor: Client) -> None:
    _add("User lives in Lisbon")
    queue.ensure_group()
    from core.redis_client import get_redis

    get_redis().xgroup_createconsumer(keys.turn_stream(), queue.GROUP, "w-1")
    html = _html(as_editor.get("/inspector/"))
    assert re.search(r'stat-value">1</span><span class="stat-label">user</span>', html)
    assert re.search(r'stat-value">1</span><span class="stat-label">memory</span>', html)
    assert not re.search(r'stat-value">1</span><span class="stat-label">[a-z ]+s\b', html)
    assert re.search(r'stat-value">1</span><span class="stat-label">consumer</span>', html)


def test_the_word_diff_keeps_apostrophes_inside_words() -> None:
    assert "user's" in tokens("the user's dog")
    assert tokens("don\u2019t stop") == ["don\u2019t", " ", "stop"]
    segments = word_diff("User's dog is Rex", "Users' dog is Rex")
    assert segments[0] == ("delete", "User's") and segments[1][0] == "insert"
    assert reconstruct(segments, side="old") == "User's dog is Rex"
    assert reconstruct(segments, side="new") == "Users' dog is Rex"
    assert word_diff("the user's cat", "the user's dog") == [
        ("equal", "the user's "),
        ("delete", "cat"),
        ("insert", "dog"),
    ]


def test_recently_deleted_comes_as_a_fragment_the_feed_refreshes(as_editor: Client) -> None:
    from memory.services import delete_memory
    from tests.memory_helpers import USER

    memory = _add("User has a dog called Rex")
    page = _html(as_editor.get(f"/inspector/users/{OWNER}/"))
    items = re.search(r'<div id="deleted-items"[^>]*>', page)
    assert items is not None and 'hx-trigger="memories-changed from:body"' in items.group()
    assert "?part=deleted" in items.group()
    delete_memory(memory_id=memory.id, actor=USER, reason="forget")
    fragment = _html(as_editor.get(f"/inspector/users/{OWNER}/", {"part": "deleted"}, headers=HX))
    assert fragment.lstrip().startswith('<div id="deleted-items"')
    assert "User has a dog called Rex" in fragment and "Undo delete" in fragment


# --- Support finds a user by the account's username or email ---------------------------------------


def test_the_lookup_takes_a_username_or_email_and_the_page_names_the_account(as_editor: Client) -> None:
    from core.accounts import account_memory_id

    priya = get_user_model().objects.create_user(
        "priya", email="Priya@Example.com", password="pw-priya-12345"
    )
    memory_id = account_memory_id(priya.pk)
    _add("User's name is Priya", user_id=memory_id)
    for typed in ("priya", "PRIYA", "priya@example.com", " Priya@Example.com"):
        response = as_editor.get("/inspector/users/", {"user_id": typed})
        assert response.status_code == 302, typed
        assert response["Location"] == f"/inspector/users/{memory_id}/", typed
    page = _html(as_editor.get(f"/inspector/users/{memory_id}/"))
    header = page.split('<h1 class="user-title">')[1].split("</h1>")[0]
    assert memory_id in header and "<span data-account-username>priya</span>" in header
    # An id Engram holds wins over a username; an unknown name is a clear 404.
    _add("Someone filed under the bare id", user_id="eddie")
    assert as_editor.get("/inspector/users/", {"user_id": "eddie"})["Location"] == "/inspector/users/eddie/"
    missing = as_editor.get("/inspector/users/", {"user_id": "nobody"})
    assert missing.status_code == 404
    assert "no account has this username or email" in _html(missing)


def test_an_id_that_is_no_account_names_none() -> None:
    from core.accounts import account_by_login, account_for_memory_id

    get_user_model().objects.create_user("sam", email="shared@example.com")
    get_user_model().objects.create_user("sue", email="SHARED@example.com")
    assert account_by_login("shared@example.com") is None, "two accounts share it: ambiguous"
    for memory_user_id in ("anon-3fa2", "user-", "user-x1", "user-999999", "alice"):
        assert account_for_memory_id(memory_user_id) is None
