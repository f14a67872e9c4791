"""Issue 14, support staff, in a real browser: counts that follow the live feed without a reload,
the feed naming a memory by its text, the score formula, the memory page's feed panel, the edit
form without internal topics, and a busy user's sessions sidebar."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from memory import working
from memory.selectors import get_memory
from memory.services import add_memory, delete_memory, set_locked, set_pinned, set_ttl, update_memory
from memory.types import Scope
from tests.fixtures_browser import log_in, screenshot
from tests.memory_helpers import ANYONE, EXTRACTOR, STAFF, USER

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.shared_server]

PASSWORD = "pw-support-12345"
CUSTOMER = "user-314"


@pytest.fixture
def support(live_url: str, page: Any) -> Any:
    user = get_user_model().objects.create_user("support", password=PASSWORD, is_staff=True)
    for codename in ("view_memories", "change_memories"):
        user.user_permissions.add(Permission.objects.get(content_type__app_label="memory", codename=codename))
    log_in(page, live_url, user.username, PASSWORD)
    return user


def _memory(text: str, user_id: str = CUSTOMER, **kwargs: Any) -> Any:
    scope = Scope(user_id=user_id, **kwargs.pop("scope", {}))
    return add_memory(text=text, scope=scope, actor=EXTRACTOR, **kwargs)


def test_counts_follow_the_live_feed_without_a_reload(live_url: str, page: Any, support: Any) -> None:
    _memory("User lives in Lisbon")
    page.goto(f"{live_url}/inspector/users/{CUSTOMER}/")
    page.wait_for_selector(".feed-status.is-live")
    page.evaluate("window.__sameDocument = true")
    assert "1 live memory" in page.locator("[data-user-summary]").text_content()
    # A change made elsewhere (the engine, from this test): header and chips update by themselves.
    _memory("User has a dog called Rex")
    _memory("User is going to Japan in May", type="episodic")
    page.wait_for_selector("[data-user-summary] >> text=3 live memories", timeout=15_000)
    chips = page.locator("[data-type-counts]")
    page.wait_for_function(
        "() => /semantic\\s*2/.test(document.querySelector('[data-type-counts]').textContent)", timeout=15_000
    )
    assert "episodic 1" in " ".join(chips.text_content().split())
    assert page.evaluate("window.__sameDocument") is True
    screenshot(page, "staff-live-user-counts")

    page.goto(f"{live_url}/inspector/")
    page.wait_for_selector(".feed-status.is-live")
    page.evaluate("window.__sameDocument = true")
    users = page.locator("#totals .stats li").first
    assert (users.locator(".stat-value").text_content(), users.locator(".stat-label").text_content()) == (
        "1",
        "user",
    )
    _memory("Another user likes tea", user_id="user-2")
    page.wait_for_function(
        "() => document.querySelector('#totals .stats li .stat-label').textContent === 'users'",
        timeout=15_000,
    )
    assert users.locator(".stat-value").text_content() == "2"
    page.wait_for_selector("#totals >> text=4")  # memories total
    page.wait_for_selector("#users-panel >> text=user-2")
    assert page.evaluate("window.__sameDocument") is True
    screenshot(page, "staff-live-overview")


def test_the_feed_names_the_memory_of_a_ttl_change(live_url: str, page: Any, support: Any) -> None:
    memory = _memory("User <i>likes</i> green tea")
    page.goto(f"{live_url}/inspector/")
    page.wait_for_selector(".feed-status.is-live")
    set_ttl(owner=ANYONE, memory_id=memory.id, ttl_seconds=7200, actor=STAFF)
    entry = page.wait_for_selector(".feed-list .feed-entry.feed-ttl_changed", timeout=15_000)
    text = entry.text_content()
    assert "User <i>likes</i> green tea" in text and "expires in 2 h" in text
    assert memory.id not in text
    screenshot(page, "staff-feed-ttl-text")


def test_search_hits_show_the_legend_and_the_formula(live_url: str, page: Any, support: Any) -> None:
    _memory("User lives in Lisbon")
    _memory("User likes green tea")
    page.goto(f"{live_url}/inspector/users/{CUSTOMER}/?q=where+do+I+live")
    page.click(".score-legend summary")
    assert page.locator(".score-legend").text_content().count("neighbour") >= 1
    formula = page.locator(".hit [data-score-formula]").first.text_content()
    assert "final" in formula and "\u00d7vector" in formula and "÷" in formula
    screenshot(page, "staff-score-formula")


def test_the_memory_page_edit_form_and_feed_panel(live_url: str, page: Any, support: Any) -> None:
    memory = _memory("User lives in Lisbon", topics=["location", "slot:location"], entities=["lisbon"])
    update_memory(owner=ANYONE, memory_id=memory.id, text="User lives in Lisbon, Portugal", actor=STAFF)
    page.goto(f"{live_url}/inspector/memories/{memory.id}/")
    assert page.input_value("#id_topics") == "location"
    assert page.locator("[data-feed-empty]").is_hidden()
    assert page.locator(".feed .feed-entry").count() == 2
    page.fill("#id_text", "User lives in Porto")
    page.fill("#id_topics", "location, home")
    page.click("text=Save new version")
    page.wait_for_selector(".flash-success >> text=Saved as version 3")
    after = get_memory(owner=ANYONE, memory_id=memory.id)
    assert after.topics == ["location", "home", "slot:location"] and after.entities == ["porto"]
    assert "porto" in page.locator(".fields").text_content()
    screenshot(page, "staff-memory-page")


def test_a_busy_user_s_sessions_sidebar_is_paged(live_url: str, page: Any, support: Any) -> None:
    _memory("User lives in Lisbon")
    for n in range(60):
        working.ensure_session(session_id=f"s-{n:03d}", user_id=CUSTOMER, title=f"Chat about topic {n}")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{live_url}/inspector/users/{CUSTOMER}/")
    sidebar = page.locator("section[aria-labelledby='sessions-title']")
    assert sidebar.locator(".plain-list li").count() == 20
    assert sidebar.bounding_box()["height"] < 2500
    screenshot(page, "staff-sessions-sidebar")
    sidebar.locator("text=Older →").click()
    page.wait_for_selector("#sessions-range >> text=page 2 of 3")
    assert page.locator("section[aria-labelledby='sessions-title'] .plain-list li").count() == 20


def test_recently_deleted_follows_the_live_feed(live_url: str, page: Any, support: Any) -> None:
    kept = _memory("User lives in Lisbon")
    forgotten = _memory("User has a dog called Rex")
    page.goto(f"{live_url}/inspector/users/{CUSTOMER}/")
    page.wait_for_selector(".feed-status.is-live")
    page.evaluate("window.__sameDocument = true")
    assert "Nothing deleted" in page.locator("#deleted-panel").text_content()
    # The user forgets a memory in their chat (the engine, from this test): the panel lists it.
    delete_memory(owner=ANYONE, memory_id=forgotten.id, actor=USER, reason="forget")
    page.wait_for_selector("#deleted-items >> text=User has a dog called Rex", timeout=15_000)
    assert "User lives in Lisbon" not in page.locator("#deleted-items").text_content()
    assert page.evaluate("window.__sameDocument") is True
    assert kept.id


def test_the_ttl_column_fits_at_laptop_width(live_url: str, page: Any, support: Any) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    for n in range(3):
        memory = _memory(
            f"User went to a concert number {n} in a long hall near the river and liked it a lot",
            topics=["hobbies", "events", "favouriteconcerthallsinlisbonandporto"],
            scope={"session_id": f"chat-01JD8X7QH{n}ZKM4PQRSTVWXYZ0123456789ABCDEFGH"},
        )
        set_ttl(owner=ANYONE, memory_id=memory.id, ttl_seconds=89 * 86400 + 3600, actor=STAFF)
        set_pinned(owner=ANYONE, memory_id=memory.id, pinned=True, actor=STAFF)
        set_locked(owner=ANYONE, memory_id=memory.id, locked=True, actor=STAFF)
    page.goto(f"{live_url}/inspector/users/{CUSTOMER}/")
    page.wait_for_selector("table.memories")
    screenshot(page, "staff-user-table-1280")
    clipped = page.evaluate(
        """() => [...document.querySelectorAll('table.memories th, table.memories td')].filter(
             (cell) => cell.scrollWidth > cell.clientWidth + 1).map((cell) => cell.textContent.trim())"""
    )
    assert clipped == []
    wrap = page.evaluate(
        "() => { const w = document.querySelector('.table-wrap'); return [w.scrollWidth, w.clientWidth]; }"
    )
    assert wrap[0] <= wrap[1] + 1, f"the table scrolls sideways at 1280: {wrap}"
    ttl = page.locator("table.memories td.ttl-cell").first.text_content()
    assert "expires in 89 d 1 h" in " ".join(ttl.split())
