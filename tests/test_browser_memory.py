"""A new user meets Engram offline (no model configured), in a real browser: what they say is
learned, what they ask later in a new chat is answered from memory, and their memories page shows
each fact with the words it came from."""

from datetime import UTC, date, datetime
from typing import Any

import pytest

from memory.extraction.rules.events import spoken_date
from memory.types import MemoryType
from memory.worker import Worker
from tests.extraction_helpers import drain, facts
from tests.fixtures_browser import new_chat, say, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def offline(settings: Any) -> None:
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""
    settings.EXTRACTION_DEBOUNCE_SECONDS = 0


def _user_id(page: Any) -> str:
    from django.contrib.sessions.backends.db import SessionStore

    from chat.identity import ANON_SESSION_KEY, anonymous_memory_id

    cookie = next(c for c in page.context.cookies() if c["name"] == "sessionid")
    return anonymous_memory_id(SessionStore(session_key=cookie["value"])[ANON_SESSION_KEY])


def _next(day: int, month: int) -> date:
    today = datetime.now(UTC).date()
    this_year = date(today.year, month, day)
    return this_year if this_year >= today else date(today.year + 1, month, day)


def test_ordinary_statements_are_learned_and_recalled_in_a_later_chat(live_url, page, offline):
    new_chat(page, live_url)
    first = say(page, "Hi! Call me Priya. I'm vegetarian and I'm allergic to peanuts.")
    assert "I'll remember this" in first and "You are vegetarian" in first and "peanuts" in first
    assert "I don't remember anything" not in first, "not beside what it just learned"
    for text in (
        "I'm a nurse at St. Mary's.",
        "My favourite band is Radiohead and I play the cello.",
        "My son Kenji just turned 4.",
        "I switched from coffee to green tea.",
        "My daughter Ana turns 7 on 3 March.",
    ):
        reply = say(page, text)
        assert "I'll remember this" in reply, (text, reply)
    user_id = _user_id(page)
    drain(Worker(worker_id="browser-test"))

    learned = {m.text: m for m in facts(user_id)}
    assert "User works as a nurse at St. Mary's" in learned
    birthday = learned["User's daughter Ana's birthday is 3 March"]
    assert birthday.type == MemoryType.SEMANTIC and birthday.ttl_seconds is None, "a birthday never expires"
    upcoming = _next(3, 3)
    turning = learned[f"User's daughter Ana turns 7 on {spoken_date(upcoming)}"]
    assert turning.event_date is not None and turning.event_date > datetime.now(UTC).timestamp()
    assert (
        turning.ttl_seconds is not None
        and turning.ttl_seconds > turning.event_date - datetime.now(UTC).timestamp()
    )

    new_chat(page, live_url)
    profile = say(page, "What do you remember about me?")
    for value in ("Priya", "vegetarian", "peanuts", "St. Mary's", "Radiohead", "Kenji"):
        assert value in profile, (value, profile)
    assert "I don't" not in profile
    assert "St. Mary's" in say(page, "Where do I work?")
    assert "nurse" in say(page, "What is my job?")
    assert "green tea" in say(page, "What do I drink these days?")
    when = say(page, "When is Ana's birthday?")
    assert when.count("3 March") >= 1 and "(on" not in when, "the date is said once, in words"
    screenshot(page, "offline-recall")

    page.goto(f"{live_url}/chat/me/memories/")
    work = page.locator("li", has_text="You work as a nurse at St. Mary's")
    assert work.count() == 1
    source = work.locator(".memory-source a")
    assert "I'm a nurse at St. Mary's." in str(source.text_content())
    source.click()
    assert page.evaluate("location.hash").startswith("#memory-")
    assert page.locator(":target").count() == 1, "the turn it came from is on the page and highlighted"
    assert page.locator("h2", has_text="Health and food").count() == 1
    screenshot(page, "my-memories-grouped")
