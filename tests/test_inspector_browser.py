"""The memory inspector in a real browser (daphne subprocess + Debian's chromium): edit with diff,
delete and undo, TTL countdown, the live feed fed by a real background worker, refusal of
non-staff, and screenshots of the main pages at desktop and phone widths."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from memory import working
from memory.extraction import dead_letters, queue
from memory.prompt import build_prompt
from memory.selectors import get_memory, memory_history
from memory.services import add_memory, delete_memory, update_memory
from memory.types import Scope
from memory.worker import Worker
from tests.extraction_helpers import say
from tests.fixtures_browser import log_in, screenshot
from tests.memory_helpers import ANYONE, EXTRACTOR, USER

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.shared_server]

PASSWORD = "pw-support-12345"
CUSTOMER = "user-9001"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def _staff(username: str = "support", *perms: str) -> Any:
    user = get_user_model().objects.create_user(username, password=PASSWORD, is_staff=True)
    for codename in perms or ("view_memories", "change_memories"):
        user.user_permissions.add(Permission.objects.get(content_type__app_label="memory", codename=codename))
    return user


@pytest.fixture
def support(live_url: str, page: Any) -> Any:
    user = _staff()
    log_in(page, live_url, user.username, PASSWORD)
    return user


def _memory(text: str = "User lives in Lisbon.", **kwargs: Any) -> Any:
    return add_memory(text=text, scope=Scope(user_id=CUSTOMER), actor=EXTRACTOR, topics=["home"], **kwargs)


def test_edit_a_memory_and_see_the_diff_in_the_history(live_url: str, page: Any, support: Any) -> None:
    memory = _memory()
    page.goto(f"{live_url}/inspector/memories/{memory.id}/")
    page.fill("#id_text", "User lives in Porto.")
    page.fill("#id_reason", "customer moved")
    page.click("text=Save new version")
    page.wait_for_selector(".flash-success >> text=Saved as version 2")
    newest = page.locator(".timeline-entry").first
    assert newest.locator(".event-tag").text_content() == "Edited"
    assert newest.locator(".diff del").text_content() == "Lisbon"
    assert newest.locator(".diff ins").text_content() == "Porto"
    assert f"staff-{support.pk}:support" in newest.text_content()
    assert "customer moved" in newest.text_content()
    assert page.locator("#memory-title").text_content() == "User lives in Porto."
    assert get_memory(owner=ANYONE, memory_id=memory.id).text == "User lives in Porto."
    screenshot(page, "inspector-edit-diff")

    # A second tab saved meanwhile: this (stale) form is refused and keeps the typed text.
    update_memory(owner=ANYONE, memory_id=memory.id, text="User lives in Faro.", actor=USER)
    page.fill("#id_text", "User lives in Braga.")
    page.click("text=Save new version")
    page.wait_for_selector(".flash-error >> text=changed while you were editing")
    assert page.input_value("#id_text") == "User lives in Braga."
    assert get_memory(owner=ANYONE, memory_id=memory.id).text == "User lives in Faro."


def test_delete_and_undo(live_url: str, page: Any, support: Any) -> None:
    memory = _memory()
    page.goto(f"{live_url}/inspector/memories/{memory.id}/")
    page.fill("#delete-reason", "asked to forget")
    page.click("#delete-button")
    page.wait_for_selector(".notice-deleted")
    assert get_memory(owner=ANYONE, memory_id=memory.id).deleted
    page.click("#undelete-button")
    page.wait_for_selector(".flash-success >> text=Restored")
    assert not get_memory(owner=ANYONE, memory_id=memory.id).deleted
    assert page.locator(".notice-deleted").count() == 0

    # The user page's "Recently deleted" list has its own Undo, and the table refreshes itself.
    delete_memory(owner=ANYONE, memory_id=memory.id, actor=USER)
    page.goto(f"{live_url}/inspector/users/{CUSTOMER}/")
    assert page.locator("#memory-results").text_content().count("User lives in Lisbon.") == 0
    page.click("#deleted-panel button >> text=Undo delete")
    page.wait_for_selector("#deleted-panel >> text=Nothing deleted in the grace period")
    page.wait_for_selector("#memory-results >> text=User lives in Lisbon.")
    assert [e.event for e in memory_history(memory_id=memory.id)][-2:] == ["deleted", "restored"]


def test_change_a_ttl_and_watch_the_countdown(live_url: str, page: Any, support: Any) -> None:
    memory = _memory()
    page.goto(f"{live_url}/inspector/memories/{memory.id}/")
    assert page.locator(".fields .ttl").text_content() == "never expires"
    page.fill("#ttl-amount", "2")
    page.select_option("#ttl-unit", "hours")
    page.click("text=Set TTL")
    page.wait_for_selector(".flash-success >> text=expires in 2 h")
    ttl = page.locator(".fields .ttl")
    page.wait_for_function("document.querySelector('.fields .ttl').textContent.includes(' s')")
    first = ttl.text_content()
    assert first.startswith("expires in 1 h 59 min") or first.startswith("expires in 2 h 0 min")
    page.wait_for_function(
        "prev => document.querySelector('.fields .ttl').textContent !== prev", arg=first, timeout=5000
    )
    assert ttl.text_content() != first  # it counts down without a reload
    screenshot(page, "inspector-ttl-countdown")

    page.click("text=Remove TTL (keep forever)")
    page.wait_for_selector(".fields .ttl-none")


@pytest.fixture
def worker(settings: Any) -> Iterator[Worker]:
    """A real extraction worker in a thread of the test process (it shares Redis with the server)."""
    settings.OPENAI_BASE_URL = ""  # offline mode: the rules extractor
    settings.OPENAI_API_KEY = ""
    settings.EXTRACTION_DEBOUNCE_SECONDS = 0
    instance = Worker(worker_id="browser-test-worker")
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    try:
        yield instance
    finally:
        instance.stop()
        thread.join(timeout=15)
        assert not thread.is_alive()


def test_a_memory_added_by_the_worker_appears_in_the_live_feed(
    live_url: str, page: Any, support: Any, worker: Worker
) -> None:
    working.ensure_session(session_id="s1", user_id=CUSTOMER)
    page.goto(f"{live_url}/inspector/users/{CUSTOMER}/")
    page.wait_for_selector(".feed-status.is-live")
    page.evaluate("window.__sameDocument = true")
    say(CUSTOMER, "s1", "I live in Lisbon.")
    entry = page.wait_for_selector(".feed-list .feed-entry >> text=User lives in Lisbon", timeout=30_000)
    assert entry is not None
    # The memory table refreshed itself too (same filters), still without a reload.
    page.wait_for_selector("#memory-results >> text=User lives in Lisbon")
    assert page.evaluate("window.__sameDocument") is True
    feed_entry = page.locator(".feed-list .feed-entry").first
    assert "Added" in feed_entry.text_content() and "extractor" in feed_entry.text_content()
    link = feed_entry.locator(".feed-text a").get_attribute("href")
    assert link and link.startswith("/inspector/memories/")
    screenshot(page, "inspector-live-feed")

    # The overview's feed shows every user's changes; a memory page only its own.
    page.goto(f"{live_url}/inspector/")
    page.wait_for_selector(".feed-status.is-live")
    other = add_memory(text="Another user likes tea", scope=Scope(user_id="user-2"), actor=USER)
    page.wait_for_selector(".feed-list .feed-entry >> text=Another user likes tea")
    page.goto(f"{live_url}{link}")
    page.wait_for_selector(".feed-status.is-live")
    update_memory(owner=ANYONE, memory_id=other.id, text="Another user likes coffee", actor=USER)
    memory_id = link.rstrip("/").split("/")[-1]
    page.click("button:text-is('Pin')")
    page.wait_for_selector(".feed-list .feed-entry >> text=Pinned")
    assert "coffee" not in page.locator(".feed-list").text_content()
    assert get_memory(owner=ANYONE, memory_id=memory_id).pinned
    # Our own change is not "changed elsewhere"; someone else's is.
    page.wait_for_timeout(2000)
    assert page.locator("[data-stale-notice]").is_hidden()
    update_memory(owner=ANYONE, memory_id=memory_id, text="User lives in Lisbon, Portugal.", actor=USER)
    page.wait_for_selector("[data-stale-notice]", state="visible")
    assert queue.queue_health()["pending"] == 0


def test_non_staff_are_refused(live_url: str, page: Any) -> None:
    get_user_model().objects.create_user("customer", password=PASSWORD)
    log_in(page, live_url, "customer", PASSWORD)
    response = page.goto(f"{live_url}/inspector/")
    assert response.status == 403
    assert "Not allowed" in page.content()
    memory = _memory()
    assert page.goto(f"{live_url}/inspector/memories/{memory.id}/").status == 403
    assert "User lives in Lisbon." not in page.content()
    # The feed socket is refused too, with a code the page can read (a refused handshake is 1006).
    closed = page.evaluate(
        """url => new Promise(resolve => {
            const socket = new WebSocket(url);
            let messages = 0;
            socket.onmessage = () => { messages += 1; };
            socket.onclose = (event) => resolve({code: event.code, messages});
        })""",
        live_url.replace("http://", "ws://") + "/ws/inspector/feed/",
    )
    assert closed == {"code": 4403, "messages": 0}
    screenshot(page, "inspector-refused")


def test_view_only_staff_can_look_but_not_touch(live_url: str, page: Any) -> None:
    user = _staff("viewer", "view_memories")
    memory = _memory()
    log_in(page, live_url, user.username, PASSWORD)
    page.goto(f"{live_url}/inspector/memories/{memory.id}/")
    assert "View access only" in page.content()
    assert page.locator("text=Save new version").count() == 0
    assert page.locator("#memory-title").text_content() == "User lives in Lisbon."


def _seed_everything() -> Any:
    """A realistic customer: memories of every type and state, a session with traces, a dead letter."""
    home = _memory()
    update_memory(
        owner=ANYONE, memory_id=home.id, text="User lives in Porto, near the river.", actor=EXTRACTOR
    )
    add_memory(
        text="User is allergic to peanuts",
        scope=Scope(user_id=CUSTOMER),
        actor=EXTRACTOR,
        topics=["health", "food", "slot:allergy"],
        pinned=True,
    )
    add_memory(
        text="User went hiking in the Alps last summer <and loved it>",
        scope=Scope(user_id=CUSTOMER),
        actor=EXTRACTOR,
        type="episodic",
        topics=["travel"],
        ttl_seconds=3 * 3600 + 12 * 60,
    )
    add_memory(
        text="Answer in short paragraphs",
        scope=Scope(user_id=CUSTOMER),
        actor=USER,
        type="procedural",
        topics=["style"],
    )
    gone = add_memory(text="User has a cat named Biscuit", scope=Scope(user_id=CUSTOMER), actor=EXTRACTOR)
    delete_memory(owner=ANYONE, memory_id=gone.id, actor=USER, reason="wrong user")
    for i in range(3):
        add_memory(text=f"Visitor {i} prefers tea", scope=Scope(user_id=f"anon-{i:04x}beef"), actor=EXTRACTOR)
    working.ensure_session(session_id="s1", user_id=CUSTOMER, title="Planning a trip")
    working.append_message(session_id="s1", role="user", content="Where should I go hiking next?")
    working.append_message(session_id="s1", role="assistant", content="Somewhere without peanuts!")
    build_prompt(user_id=CUSTOMER, session_id="s1", message="Does the user live in Porto?", turn_id="01T1")
    build_prompt(user_id=CUSTOMER, session_id="s1", message="What is the user allergic to?", turn_id="01T2")
    say(CUSTOMER, "s-dead", "I moved to Faro.")
    turns = queue.pending_turns("s-dead", after=0)
    dead_letters.dead_letter(
        session_id="s-dead", user_id=CUSTOMER, turns=turns, error="LLM timed out after 60 s", entries=[]
    )
    return home


def test_screenshots_of_the_main_pages(live_url: str, page: Any, support: Any) -> None:
    home = _seed_everything()
    pages = {
        "overview": "/inspector/",
        "user": f"/inspector/users/{CUSTOMER}/",
        "user-search": f"/inspector/users/{CUSTOMER}/?q=where+does+the+user+live&mode=hybrid",
        "memory": f"/inspector/memories/{home.id}/",
        "session": "/inspector/sessions/s1/",
    }
    for width, viewport in (("1280", DESKTOP), ("390", PHONE)):
        page.set_viewport_size(viewport)
        for name, path in pages.items():
            response = page.goto(f"{live_url}{path}")
            assert response.status == 200, path
            if name != "session":
                page.wait_for_selector(".feed-status.is-live")
            # Nothing may overflow the viewport sideways (tables scroll or stack inside panels).
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, (name, width, overflow)
            # Tables fit their panel at both widths (they may scroll, but should not need to here).
            inner = page.evaluate(
                "Math.max(0, ...[...document.querySelectorAll('.table-wrap')]"
                ".map(w => w.scrollWidth - w.clientWidth))"
            )
            assert inner <= 0, (name, width, inner)
            screenshot(page, f"inspector-{name}-{width}")
        page.goto(f"{live_url}/inspector/users/{CUSTOMER}/sandbox")
        page.fill("#id_message", "Does the user live in Porto?")
        page.fill("#sandbox-session", "s1")
        page.click("text=Run retrieval")
        page.wait_for_selector("text=Assembled messages")
        assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
        screenshot(page, f"inspector-sandbox-{width}")
    # The page actions above saved no trace (the sandbox writes nothing).
    assert [t["turn_id"] for t in working.list_traces(session_id="s1")] == ["01T1", "01T2"]


def test_keyboard_reaches_the_controls(live_url: str, page: Any, support: Any) -> None:
    memory = _memory()
    page.goto(f"{live_url}/inspector/memories/{memory.id}/")
    page.focus("#id_text")
    seen = set()
    for _ in range(40):
        page.keyboard.press("Tab")
        seen.add(page.evaluate("document.activeElement.textContent.trim() || document.activeElement.id"))
    for control in ("Save new version", "Set TTL", "Pin", "Lock", "Delete"):
        assert control in seen, (control, seen)
    # Pin with the keyboard alone.
    page.focus("button:text-is('Pin')")
    page.keyboard.press("Enter")
    page.wait_for_selector("button[aria-pressed=true] >> text=Unpin")
    # The panel was swapped in, and the keyboard focus stayed on the (new) button.
    assert page.evaluate("document.activeElement.id") == "pin-button"
    deadline = time.monotonic() + 5
    while not get_memory(owner=ANYONE, memory_id=memory.id).pinned and time.monotonic() < deadline:
        time.sleep(0.1)
    assert get_memory(owner=ANYONE, memory_id=memory.id).pinned
