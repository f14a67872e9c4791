"""Accessibility and layout of the main pages in a real browser (daphne subprocess + Debian's
chromium): each page, opened as the person who uses it with realistic data, passes axe-core with no
serious or critical violation at laptop and phone widths, fits a 390 px phone without sideways
scrolling, and is saved as screenshots at 1280x800 and 390x844 (test-artifacts/).

One chromium and one server per test, so the pages are grouped by who looks at them."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from chat.identity import account_memory_id
from chat.turns import memories_used
from memory import working
from memory.prompt import build_prompt
from memory.services import add_memory, delete_memory, update_memory
from memory.types import Actor, ActorKind, Memory, Scope
from tests.fixtures_browser import (
    PHONE_SIZE,
    assert_accessible,
    assert_focus_visible,
    assert_unique_ids,
    axe_violations,
    log_in,
    screenshots_at_sizes,
)
from tests.memory_helpers import ANYONE, EXTRACTOR, USER

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.shared_server]

PASSWORD = "pw-priya-12345"
STAFF_PASSWORD = "pw-support-12345"
# A scrollbar or a rounding pixel is not a layout that overflows.
OVERFLOW_TOLERANCE = 2
TRIP = "s-trip"
TRIP_TURN = "01JTRIPTURN0000000000000001"


def check_page(page: Any, name: str) -> None:
    """Screenshots at both sizes; no serious axe violation at either; unique ids; a visible focus
    ring on every keyboard stop; no sideways scroll at 390 px."""
    screenshots_at_sizes(page, name)
    assert_accessible(page, name=f"{name}-1280")
    assert_unique_ids(page, name=name)
    assert assert_focus_visible(page, name=name) > 0, f"{name}: nothing to reach with the keyboard"
    before = page.viewport_size
    page.set_viewport_size(PHONE_SIZE)
    try:
        assert_fits_phone(page, name=name)
        assert_accessible(page, name=f"{name}-390")
    finally:
        page.set_viewport_size(before)


def assert_fits_phone(page: Any, *, name: str) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE_SIZE["width"] + OVERFLOW_TOLERANCE, (
        f"{name}: the page is {width} px wide at 390 px; sticking out: {_sticking_out(page)}"
    )


def _sticking_out(page: Any) -> list[str]:
    """The innermost elements past the right edge, to make an overflow failure readable."""
    return page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 2)
            .slice(-5)
            .map(e => `${e.tagName.toLowerCase()}.${[...e.classList].join('.')}: `
                + `${Math.round(e.getBoundingClientRect().right)} px`)"""
    )


def test_the_checks_find_problems_on_a_bad_page(page: Any) -> None:
    """The checks cannot pass silently: a page with an unlabelled field, a nameless button, faint
    text, no lang attribute, a repeated id, a control without a focus ring and a block wider than
    a phone fails each of them, naming the rule and the element."""
    page.set_viewport_size(PHONE_SIZE)
    page.set_content(
        "<html><body><main><h1>Bad</h1>"
        '<input id="nameless" type="text">'
        '<button id="empty"></button>'
        '<p id="faint" style="color:#ddd;background:#fff">Hard to read</p>'
        '<a id="ringless" href="#x" style="outline:none">No ring</a>'
        '<a id="away" href="#y" style="position:absolute;top:-5rem">Away</a>'
        '<p id="twice">one</p><p id="twice">two</p>'
        '<div id="wide" style="width:600px">Too wide</div>'
        "</main></body></html>"
    )
    found = {v["id"]: v for v in axe_violations(page, name="self-check-bad")}
    assert {"label", "button-name", "color-contrast", "html-has-lang"} <= set(found), found.keys()
    assert found["label"]["nodes"][0]["target"] == ["#nameless"]
    with pytest.raises(AssertionError) as failure:
        assert_accessible(page, name="self-check-bad")
    message = str(failure.value)
    assert "color-contrast (serious)" in message and "#faint" in message
    assert "button-name (critical)" in message and "#empty" in message
    with pytest.raises(AssertionError, match="twice"):
        assert_unique_ids(page, name="self-check-bad")
    with pytest.raises(AssertionError, match=r'a#ringless "No ring": no focus ring') as failure:
        assert_focus_visible(page, name="self-check-bad")
    assert 'a#away "Away": focus is off screen' in str(failure.value)
    with pytest.raises(AssertionError, match=r"div\.: 6"):
        assert_fits_phone(page, name="self-check-bad")

    page.set_content(
        '<html lang="en"><head><title>Fine</title></head><body><main><h1>Fine</h1>'
        '<label for="name">Name</label><input id="name"><button>Send</button></main></body></html>'
    )
    assert axe_violations(page, name="self-check-good") == []
    assert_unique_ids(page, name="self-check-good")
    assert assert_focus_visible(page, name="self-check-good") == 2
    assert_fits_phone(page, name="self-check-good")


def _seed_user_data(memory_id: str) -> Memory:
    """A user with memories of every kind (a fact with the words it came from, a pinned fact, an
    event with a TTL, a preference for answers, a deleted fact) and a chat whose reply used some."""
    add_memory(
        text="I moved to Porto last spring and I love the river",
        scope=Scope(user_id=memory_id, session_id=TRIP),
        actor=EXTRACTOR,
        type="message",
        topics=["said-by:user"],
        source=[TRIP_TURN],
    )
    home = add_memory(
        text="User lives in Lisbon",
        scope=Scope(user_id=memory_id),
        actor=EXTRACTOR,
        topics=["home", "slot:location"],
        source=[TRIP_TURN],
    )
    update_memory(
        owner=ANYONE, memory_id=home.id, text="User lives in Porto", actor=EXTRACTOR, reason="moved"
    )
    update_memory(owner=ANYONE, memory_id=home.id, text="User lives in Porto, near the river", actor=USER)
    add_memory(
        text="User is allergic to peanuts",
        scope=Scope(user_id=memory_id),
        actor=EXTRACTOR,
        topics=["health", "food"],
        pinned=True,
    )
    add_memory(
        text="User went hiking in the Alps last summer",
        scope=Scope(user_id=memory_id),
        actor=EXTRACTOR,
        type="episodic",
        topics=["travel"],
        ttl_seconds=3 * 3600,
    )
    add_memory(
        text="Answer in short paragraphs",
        scope=Scope(user_id=memory_id),
        actor=USER,
        type="procedural",
        topics=["style"],
    )
    gone = add_memory(text="User has a cat named Biscuit", scope=Scope(user_id=memory_id), actor=EXTRACTOR)
    # Forgotten by the user themselves: the memories page lists it under "Recently forgotten".
    delete_memory(
        owner=ANYONE, memory_id=gone.id, actor=Actor(ActorKind.USER, memory_id), reason="wrong person"
    )

    working.ensure_session(session_id=TRIP, user_id=memory_id, title="Planning a trip")
    working.ensure_session(session_id="s-empty", user_id=memory_id, title="")
    question = "Where do I live, and what should I avoid eating?"
    working.append_message(session_id=TRIP, role="user", content=question, meta={"turn_id": TRIP_TURN})
    built = build_prompt(user_id=memory_id, session_id=TRIP, message=question, turn_id=TRIP_TURN)
    used = memories_used(built.memories, staff=False)
    assert used, "the reply should show the memories it used"
    working.append_message(
        session_id=TRIP,
        role="assistant",
        content="You live in Porto, near the river, and you should avoid peanuts.",
        meta={"turn_id": TRIP_TURN, "memories": used},
    )
    working.append_message(
        session_id=TRIP,
        role="user",
        content="Thanks! Any hikes near Porto? My friend sent https://www.example.com/trails/portugal/"
        "north/arouca-geopark/passadicos-do-paiva?season=spring&difficulty=moderate",
    )
    working.append_message(session_id=TRIP, role="assistant", content="The Paiva walkways are close by.")
    return home


def test_public_and_user_pages_are_accessible(live_url: str, page: Any) -> None:
    page.goto(f"{live_url}/")
    check_page(page, "a11y-home-signed-out")
    page.goto(f"{live_url}/chat/")
    check_page(page, "a11y-chat-list-signed-out")
    page.goto(f"{live_url}/accounts/signup/")
    check_page(page, "a11y-signup")
    page.fill("input[name=username]", "priya")
    page.fill("input[name=password1]", "pw-priya-12345")
    page.fill("input[name=password2]", "pw-priya-54321")
    page.click("form.stack button[type=submit]")
    page.wait_for_selector(".field-error, .form-errors")
    check_page(page, "a11y-signup-errors")

    user = get_user_model().objects.create_user("priya", password=PASSWORD)
    _seed_user_data(account_memory_id(user.pk))
    page.goto(f"{live_url}/accounts/login/")
    check_page(page, "a11y-login")
    page.fill("input[name=username]", "priya")
    page.fill("input[name=password]", "not-the-password")
    page.click("form.stack button[type=submit]")
    page.wait_for_selector(".field-error, .form-errors")
    check_page(page, "a11y-login-error")

    log_in(page, live_url, "priya", PASSWORD)
    page.goto(f"{live_url}/")
    check_page(page, "a11y-home-signed-in")
    page.goto(f"{live_url}/chat/")
    page.wait_for_selector(".session-list")
    page.locator(".session-list details summary").first.click()
    check_page(page, "a11y-chat-list")

    page.goto(f"{live_url}/chat/{TRIP}/")
    page.wait_for_function("document.getElementById('status').textContent === ''")
    page.click(".memories-used summary")
    page.wait_for_selector(".memories-used li", state="visible")
    check_page(page, "a11y-chat")

    page.goto(f"{live_url}/chat/me/memories/")
    page.wait_for_selector(".memory-group")
    assert page.locator(".memory-group").count() >= 3, "memories of several kinds"
    assert "Biscuit" in str(page.locator("#recently-forgotten").text_content())
    check_page(page, "a11y-my-memories")


def _staff() -> Any:
    user = get_user_model().objects.create_user("support", password=STAFF_PASSWORD, is_staff=True)
    for codename in ("view_memories", "change_memories"):
        user.user_permissions.add(Permission.objects.get(content_type__app_label="memory", codename=codename))
    return user


def test_inspector_pages_are_accessible(live_url: str, page: Any) -> None:
    customer = get_user_model().objects.create_user("priya", password=PASSWORD)
    customer_id = account_memory_id(customer.pk)
    home = _seed_user_data(customer_id)
    for i in range(3):
        add_memory(text=f"Visitor {i} prefers tea", scope=Scope(user_id=f"anon-{i:04x}beef"), actor=EXTRACTOR)
    build_prompt(
        user_id=customer_id, session_id=TRIP, message="What is the user allergic to?", turn_id="01JT2"
    )
    support = _staff()
    log_in(page, live_url, support.username, STAFF_PASSWORD)

    live_pages = {
        "a11y-inspector-overview": "/inspector/",
        "a11y-inspector-user": f"/inspector/users/{customer_id}/",
        "a11y-inspector-memory": f"/inspector/memories/{home.id}/",
    }
    # A keyboard user skips the top bar and the breadcrumbs: the first Tab offers it, visibly.
    page.goto(f"{live_url}/inspector/users/{customer_id}/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    assert page.locator(".skip-link").bounding_box()["y"] >= 0
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('main') !== null")

    for name, path in live_pages.items():
        assert page.goto(f"{live_url}{path}").status == 200, path
        page.wait_for_selector(".feed-status.is-live")
        check_page(page, name)
    assert page.locator(".timeline-entry").count() >= 3, "the memory page shows its history"
    page.fill("#id_text", "User lives in Porto, by the Douro")
    page.click("#save-button")
    page.wait_for_selector(".flash-success")
    check_page(page, "a11y-inspector-memory-saved")
    page.click("#delete-button")
    page.wait_for_selector(".notice-deleted")
    check_page(page, "a11y-inspector-memory-deleted")

    assert page.goto(f"{live_url}/inspector/sessions/{TRIP}/").status == 200
    check_page(page, "a11y-inspector-session")

    page.goto(f"{live_url}/inspector/users/{customer_id}/sandbox")
    page.fill("#id_message", "Where does the user live?")
    page.fill("#sandbox-session", TRIP)
    page.click("text=Run retrieval")
    page.wait_for_selector("text=Assembled messages")
    check_page(page, "a11y-inspector-sandbox")

    page.goto(f"{live_url}/inspector/status/")
    page.wait_for_selector("h1")
    check_page(page, "a11y-inspector-status")

    assert page.goto(f"{live_url}/inspector/users/{customer_id}/erase").status == 200
    check_page(page, "a11y-inspector-erase-confirm")
    page.fill("input[name=confirm]", "someone-else")
    page.click("text=Erase this user")
    page.wait_for_selector("#confirm-error")
    check_page(page, "a11y-inspector-erase-refused")
